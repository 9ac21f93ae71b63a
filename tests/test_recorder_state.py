"""The recorder's event state machine: start, extend, post-roll, split at keyframes, rings."""

from __future__ import annotations

from doorbell.recorder.clipstate import EventStateMachine


def decisions(machine: EventStateMachine, frames) -> list[tuple[float, str]]:
    out = []
    for t, motion, ring, keyframe in frames:
        decision = machine.step(t, motion=motion, ring=ring, keyframe=keyframe)
        if decision:
            out.append((t, decision))
    return out


def timeline(seconds: float, fps: int = 10, *, motion=(), ring=(), keyframe_every: int = 10):
    """Frames as (t, motion, ring, keyframe); motion/ring are lists of (start, end) seconds."""
    frames = []
    for i in range(int(seconds * fps)):
        t = i / fps
        m = any(a <= t < b for a, b in motion)
        r = any(a <= t < b for a, b in ring)
        frames.append((t, m, r, i % keyframe_every == 0))
    return frames


def test_idle_without_activity() -> None:
    machine = EventStateMachine(post_roll_s=5, max_clip_s=60)
    assert decisions(machine, timeline(30)) == []
    assert not machine.recording


def test_motion_starts_then_seals_after_post_roll() -> None:
    machine = EventStateMachine(post_roll_s=5, max_clip_s=60)
    got = decisions(machine, timeline(30, motion=[(10, 12)]))
    assert got == [(10.0, "start"), (16.9, "seal")]  # last motion frame 11.9 + 5 s
    assert machine.trigger == "motion"


def test_motion_during_post_roll_extends_the_clip() -> None:
    machine = EventStateMachine(post_roll_s=5, max_clip_s=60)
    got = decisions(machine, timeline(40, motion=[(10, 12), (15, 16)]))
    assert got == [(10.0, "start"), (20.9, "seal")]


def test_ring_starts_an_event_without_motion_and_extends_one() -> None:
    machine = EventStateMachine(post_roll_s=5, max_clip_s=60)
    got = decisions(machine, timeline(30, ring=[(3, 3.1)]))
    assert got == [(3.0, "start"), (8.0, "seal")]
    assert machine.trigger == "ring"
    machine = EventStateMachine(post_roll_s=5, max_clip_s=60)
    got = decisions(machine, timeline(40, motion=[(10, 11)], ring=[(14, 14.1)]))
    assert got == [(10.0, "start"), (19.0, "seal")]


def test_long_event_splits_at_keyframes_without_gaps() -> None:
    machine = EventStateMachine(post_roll_s=2, max_clip_s=10)
    got = decisions(machine, timeline(40, motion=[(5, 30)], keyframe_every=15))
    # splits only on keyframe frames (every 1.5 s) once 10 s of clip time passed
    assert got[0] == (5.0, "start")
    splits = [t for t, d in got if d == "split"]
    assert splits == [15.0, 25.5]
    assert got[-1] == (31.9, "seal")


def test_clip_start_time_counts_pre_roll_for_splitting() -> None:
    machine = EventStateMachine(post_roll_s=2, max_clip_s=10)
    assert machine.step(5.0, motion=True, ring=False, keyframe=False) == "start"
    machine.clip_started(2.0)  # three seconds of pre-roll
    assert machine.step(12.0, motion=True, ring=False, keyframe=True) == "split"
