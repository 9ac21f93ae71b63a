"""When to start, split and seal clips: the recorder's event state machine, pure logic.

No I/O, no clock of its own: the recorder feeds it frame times and flags. Kept apart from
:mod:`doorbell.recorder.pipeline` so the rules read (and are tested) on their own.
"""

from __future__ import annotations

#: frame times are floats: 16.9 - 11.9 must count as 5 seconds
_EPSILON_S = 1e-6


class EventStateMachine:
    """When to start, split and seal clips. Pure: feed it times and flags, it answers.

    ``step`` is called once per frame with the frame time (seconds), whether motion is
    active, whether the doorbell rang, and whether this frame's packet is a keyframe. It
    returns "start", "split", "seal" or None. A ring starts an event, or extends the current
    one, exactly like motion. A clip is split at the first keyframe at or after
    ``max_clip_s`` of clip time, so consecutive clips meet without a gap.
    """

    def __init__(self, *, post_roll_s: float, max_clip_s: float) -> None:
        self.post_roll_s = post_roll_s
        self.max_clip_s = max_clip_s
        self.recording = False
        self.trigger = ""
        self._last_activity = 0.0
        self._clip_start = 0.0

    def clip_started(self, first_packet_time_s: float) -> None:
        """Tell the machine where the open clip really starts (pre-roll included)."""
        self._clip_start = first_packet_time_s

    def step(self, t: float, *, motion: bool, ring: bool, keyframe: bool) -> str | None:
        active = motion or ring
        if not self.recording:
            if not active:
                return None
            self.recording = True
            self.trigger = "ring" if ring else "motion"
            self._last_activity = t
            self._clip_start = t
            return "start"
        if active:
            self._last_activity = t
        if t - self._last_activity >= self.post_roll_s - _EPSILON_S:
            self.recording = False
            return "seal"
        if keyframe and t - self._clip_start >= self.max_clip_s - _EPSILON_S:
            self._clip_start = t
            return "split"
        return None
