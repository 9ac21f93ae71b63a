"""Motion detector evaluation on the mock camera's scripted scenarios (ground truth per frame).

For every scenario and seed, frames are rendered once at 320x240 (main = lores), 10 fps, and fed
to our :class:`doorbell.motion.MotionDetector` and to **Frigate's default motion detector**
(``ImprovedMotionDetector`` with the default ``MotionConfig``, re-implemented in
``bench/frigate_motion.py`` and checked frame for frame against the real module by
``bench/frigate_check.py``). Frigate has no motion zones, so its boxes count when they overlap
the owner's zone, and the same debounce (``trigger_frames``) and cool-down (``cooldown_s``) turn
them into events. The first ``WARMUP_FRAMES`` (Frigate calibrates from a black average) are
fed but not scored. Reported per scenario:

* event recall: share of person visits (runs of ``truth.event_active`` in which the person
  covers at least 0.5 % of the zone) during which the detector was active;
* false events per hour: activations starting while no person is in view (a ghost left by a
  visitor who stood still is one);
* false-recording time: share of the frames with nobody in view for ``cooldown_s`` + 1 s (the
  usual tail after a visit) during which the detector was active;
* onset latency: frames from the first frame the person's box covers 0.5 % of the zone to the
  activation (median, 90th percentile and worst);
* ms/frame of each detector alone, single-threaded (``cv2.setNumThreads(1)``), timed on the
  same frame one right after the other, in alternating order, so a busy machine slows both
  alike; the table shows the median per-frame time (a shared machine preempts a process now
  and then, which inflates a mean but not a median), the JSON also the mean, and ``ratio`` is
  ours / Frigate (medians), which must stay at most 1/3.

Seeds are split: ``--split tune`` (seeds 1..N) is what parameters were tuned on; ``--split
test`` (the default, seeds 1001..1000+N) is what is reported; ``--split heldout`` (seeds
2001..2000+N) is a second held-out set. Run::

    .venv/bin/python bench/motion_eval.py                       # test seeds, a few minutes
    .venv/bin/python bench/motion_eval.py --split heldout --seeds 8
    .venv/bin/python bench/motion_eval.py --split tune --seeds 3 --minutes 1 --scenarios person_low
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from frigate_motion import FrigateMotion

from doorbell.camera.mock import MockScene
from doorbell.camera.synthetic.episodes import NUISANCE_SCENARIOS, PERSON_SCENARIOS
from doorbell.camera.synthetic.scene import DOORSTEP_ZONE
from doorbell.config import MotionConfig
from doorbell.masks import rasterise_polygons
from doorbell.motion import MotionDetector

FPS = 10
SIZE = (320, 240)
TARGETS = {
    "recall": 1.0,
    "false_per_hour": 0.0,
    "false_recording_overall": 0.02,
    "false_recording_each": 0.05,
    "onset_frames": 5,
    "speed_ratio": 1 / 3,
}
WARMUP_FRAMES = 50  # fed to both detectors, not scored: Frigate calibrates from a black frame
TAIL_SLACK_S = 1.0  # after a visit, cooldown_s plus this is the usual tail, not false recording
SPLITS = {"tune": 1, "test": 1001, "heldout": 2001}


class FrigateEvents:
    """Frigate's default detector, its boxes judged against the zone, our debounce/cool-down."""

    def __init__(self, config: MotionConfig, zone: np.ndarray) -> None:
        self.config = config
        self.detector = FrigateMotion(zone.shape)
        # a box overlaps the zone when the zone's integral over the box is nonzero
        self.zone_sum = cv2.integral(zone // 255)
        self.run, self.active, self.last = 0, False, -1e9

    def detect(self, grey: np.ndarray) -> list[tuple[int, int, int, int]]:
        return self.detector.detect(grey)

    def step(self, boxes: list[tuple[int, int, int, int]], timestamp: float) -> bool:
        s = self.zone_sum
        motion = any(s[y1, x1] - s[y0, x1] - s[y1, x0] + s[y0, x0] > 0 for x0, y0, x1, y1 in boxes)
        if motion:
            self.run += 1
            self.last = timestamp
            if self.run >= self.config.trigger_frames:
                self.active = True
        else:
            self.run = 0
            if self.active and timestamp - self.last >= self.config.cooldown_s:
                self.active = False
        return self.active


@dataclass
class Tally:
    frames: int = 0
    events: int = 0
    detected: int = 0
    false_triggers: int = 0
    empty_frames: int = 0
    false_recording_frames: int = 0
    onsets: list[int] = field(default_factory=list)
    seconds: float = 0.0
    frame_ms: list[float] = field(default_factory=list)

    def add_run(self, truth: list[bool], active: list[bool], covered: list[bool]) -> None:
        self.frames += len(truth)
        # an event is a person visit that reaches the zone (covers 0.5 % of it); a walk along
        # the sidewalk, or one cut off by the end of the footage before the path, is not
        spans = [(a, b) for a, b in _runs(truth) if any(covered[a:b])]
        self.events += len(spans)
        for start, end in spans:
            if any(active[start:end]):
                self.detected += 1
                cover = next((i for i in range(start, end) if covered[i]), None)
                if cover is not None:
                    first = next(i for i in range(start, end) if active[i])
                    self.onsets.append(max(0, first - cover))
        for start, _ in _runs(active):
            if not truth[start]:
                self.false_triggers += 1
        # frames with nobody in view for longer than the cool-down's tail after a visit
        tail = round((MotionConfig().cooldown_s + TAIL_SLACK_S) * FPS)
        since_person = tail + 1
        for present, on in zip(truth, active, strict=True):
            since_person = 0 if present else since_person + 1
            if since_person > tail:
                self.empty_frames += 1
                self.false_recording_frames += on

    def summary(self) -> dict[str, float | int | None]:
        hours = self.frames / FPS / 3600
        return {
            "events": self.events,
            "recall": round(self.detected / self.events, 4) if self.events else None,
            "false_triggers": self.false_triggers,
            "false_per_hour": round(self.false_triggers / hours, 2),
            "empty_frames": self.empty_frames,
            "false_recording": (
                round(self.false_recording_frames / self.empty_frames, 4)
                if self.empty_frames
                else None
            ),
            "false_recording_frames": self.false_recording_frames,
            "onset_median": statistics.median(self.onsets) if self.onsets else None,
            "onset_max": max(self.onsets) if self.onsets else None,
            "onset_p90": float(np.percentile(self.onsets, 90)) if self.onsets else None,
            "ms_per_frame": (round(float(np.median(self.frame_ms)), 4) if self.frame_ms else None),
            "ms_per_frame_mean": round(1000 * self.seconds / self.frames, 4)
            if self.frames
            else None,
        }


def _runs(flags: list[bool]) -> list[tuple[int, int]]:
    runs, start = [], None
    for i, flag in enumerate(flags):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, len(flags)))
    return runs


def evaluate(scenario: str, seeds: list[int], frames: int, config: MotionConfig) -> dict:
    zone = rasterise_polygons(config.zones, *SIZE)
    zone_area = int(np.count_nonzero(zone))
    ours, base = Tally(), Tally()
    for seed in seeds:
        scene = MockScene(scenario, seed, *SIZE, FPS, SIZE)
        detector = MotionDetector(config, SIZE)
        frigate = FrigateEvents(config, zone)
        truth, covered, active_ours, active_base = [], [], [], []
        for index in range(frames):
            _, lores, frame_truth = scene.render(index)
            timestamp = index / FPS
            # same frame, back to back, alternating who goes first: equal machine load
            if index % 2:
                started = time.perf_counter()
                result = detector.update_image(lores, timestamp)
                middle = time.perf_counter()
                boxes = frigate.detect(lores)
                ended = time.perf_counter()
                ours_s, base_s = middle - started, ended - middle
            else:
                started = time.perf_counter()
                boxes = frigate.detect(lores)
                middle = time.perf_counter()
                result = detector.update_image(lores, timestamp)
                ended = time.perf_counter()
                ours_s, base_s = ended - middle, middle - started
            base_active = frigate.step(boxes, timestamp)
            if index < WARMUP_FRAMES:
                continue
            ours.seconds += ours_s
            base.seconds += base_s
            ours.frame_ms.append(1000 * ours_s)
            base.frame_ms.append(1000 * base_s)
            active_ours.append(result.is_active)
            active_base.append(base_active)
            truth.append(frame_truth.event_active)
            cover = 0
            for (x, y, w, h), label in zip(frame_truth.boxes, frame_truth.labels, strict=True):
                if label == "person":
                    cover = max(cover, int(np.count_nonzero(zone[y : y + h, x : x + w])))
            covered.append(cover >= 0.005 * zone_area)
        ours.add_run(truth, active_ours, covered)
        base.add_run(truth, active_base, covered)
    row: dict[str, Any] = {"ours": ours.summary(), "frigate": base.summary()}
    row["speed_ratio"] = round(row["ours"]["ms_per_frame"] / row["frigate"]["ms_per_frame"], 3)
    row["_tallies"] = (ours, base)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=tuple(SPLITS), default="test")
    parser.add_argument("--seeds", type=int, default=4, help="seeds per scenario")
    parser.add_argument("--minutes", type=float, default=2.0, help="footage per seed")
    parser.add_argument("--scenarios", nargs="*", default=None)
    parser.add_argument("--out", type=Path, default=None, help="JSON (default: bench/results/)")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    config = MotionConfig(zones=(DOORSTEP_ZONE,))
    first = SPLITS[args.split]
    seeds = list(range(first, first + args.seeds))
    frames = WARMUP_FRAMES + int(args.minutes * 60 * FPS)
    scenarios = args.scenarios or [*PERSON_SCENARIOS, *NUISANCE_SCENARIOS]
    rows = {}
    columns = (
        "scenario",
        "events",
        "recall",
        "false/h",
        "false rec %",
        "onset med/p90/max",
        "ms/frame",
        "ratio",
    )
    widths = (13, 6, 11, 13, 11, 21, 13, 6)
    print(f"split={args.split} seeds={seeds} {args.minutes:g} min/seed, {FPS} fps, {SIZE}")
    print("each cell: ours | Frigate's default motion detector (same zone, debounce, cool-down)")
    print(" ".join(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True)))
    tallies: dict[str, tuple[Tally, Tally]] = {}
    for scenario in scenarios:
        row = evaluate(scenario, seeds, frames, config)
        tallies[scenario] = row.pop("_tallies")
        rows[scenario] = row
        print(_table_row(scenario, row, widths), flush=True)
    overall = _overall(tallies)
    all_ours = [ms for ours, _ in tallies.values() for ms in ours.frame_ms]
    all_base = [ms for _, base in tallies.values() for ms in base.frame_ms]
    speed = {
        "ours_ms": round(float(np.median(all_ours)), 4),
        "frigate_ms": round(float(np.median(all_base)), 4),
    }
    speed["ratio"] = round(speed["ours_ms"] / speed["frigate_ms"], 3)
    print(
        f"all frames: ours {speed['ours_ms']:.3g} ms/frame, Frigate {speed['frigate_ms']:.3g}, "
        f"ratio {speed['ratio']:.2f} (median per-frame times)"
    )
    for name, (o, b) in overall.items():
        print(
            f"{name}: false recording {_pct(o['false_recording'])} | {_pct(b['false_recording'])},"
            f" false events/h {_fmt(o['false_per_hour'])} | {_fmt(b['false_per_hour'])}"
        )
    verdict = _targets(rows, overall, speed)
    for line in verdict["lines"]:
        print(line)
    out = args.out or Path(__file__).parent / "results" / f"motion_eval_{args.split}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "split": args.split,
        "seeds": seeds,
        "minutes_per_seed": args.minutes,
        "warmup_frames": WARMUP_FRAMES,
        "fps": FPS,
        "size": SIZE,
        "config": {k: v for k, v in vars(config).items() if k != "zones"},
        "targets": TARGETS,
        "scenarios": rows,
        "overall": {name: {"ours": o, "frigate": b} for name, (o, b) in overall.items()},
        "speed": speed,
        "targets_met": verdict["met"],
    }
    out.write_text(json.dumps(document, indent=2, default=str))
    print(f"wrote {out}")
    return 0


def _table_row(scenario: str, row: dict, widths: tuple[int, ...]) -> str:
    o, b = row["ours"], row["frigate"]

    def pair(key: str) -> str:
        return f"{_fmt(o[key])} | {_fmt(b[key])}"

    onset = (
        f"{_fmt(o['onset_median'])}/{_fmt(o['onset_p90'])}/{_fmt(o['onset_max'])} | "
        f"{_fmt(b['onset_median'])}/{_fmt(b['onset_p90'])}/{_fmt(b['onset_max'])}"
    )
    cells = (
        scenario,
        o["events"],
        pair("recall"),
        pair("false_per_hour"),
        f"{_pct(o['false_recording'])} | {_pct(b['false_recording'])}",
        onset,
        pair("ms_per_frame"),
        f"{row['speed_ratio']:.2f}",
    )
    return " ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True))


def _overall(tallies: dict[str, tuple[Tally, Tally]]) -> dict[str, tuple[dict, dict]]:
    """Pooled false recording and false events over the nuisance and over all scenarios."""
    groups = {
        "nuisance scenarios": [s for s in tallies if s in NUISANCE_SCENARIOS],
        "all scenarios": list(tallies),
    }
    result = {}
    for name, members in groups.items():
        if not members:
            continue
        pooled = []
        for side in (0, 1):
            total = Tally()
            for scenario in members:
                part = tallies[scenario][side]
                total.frames += part.frames
                total.false_triggers += part.false_triggers
                total.empty_frames += part.empty_frames
                total.false_recording_frames += part.false_recording_frames
            summary = total.summary()
            pooled.append(
                {k: summary[k] for k in ("false_per_hour", "false_recording", "empty_frames")}
            )
        result[name] = (pooled[0], pooled[1])
    return result


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _targets(rows: dict, overall: dict, speed: dict) -> dict:
    met, lines = {}, []
    for scenario, row in rows.items():
        o = row["ours"]
        if scenario in PERSON_SCENARIOS:
            met[f"{scenario}.recall"] = o["recall"] is not None and o["recall"] >= TARGETS["recall"]
        met[f"{scenario}.false_per_hour"] = o["false_per_hour"] <= TARGETS["false_per_hour"]
        if o["false_recording"] is not None:
            met[f"{scenario}.false_recording"] = (
                o["false_recording"] <= TARGETS["false_recording_each"]
            )
    for name, (o, _) in overall.items():
        if o["false_recording"] is not None:
            met[f"{name}.false_recording"] = (
                o["false_recording"] <= TARGETS["false_recording_overall"]
            )
    met["speed_ratio"] = speed["ratio"] <= TARGETS["speed_ratio"]
    failed = [k for k, ok in met.items() if not ok]
    lines.append(
        f"targets met: {sum(met.values())}/{len(met)}"
        + (f"; missed: {', '.join(failed)}" if failed else "")
    )
    onsets = [
        f"{s} {row['ours']['onset_max']}"
        for s, row in rows.items()
        if row["ours"]["onset_max"] is not None
        and row["ours"]["onset_max"] > TARGETS["onset_frames"]
    ]
    if onsets:
        lines.append(
            f"worst onset over {TARGETS['onset_frames']} frames (not a target): "
            + ", ".join(onsets)
        )
    return {"met": met, "lines": lines}


if __name__ == "__main__":
    sys.exit(main())
