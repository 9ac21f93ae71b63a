"""Check ``bench/frigate_motion.py`` frame for frame against Frigate's real motion detector.

Frigate's code is never part of this repository. To run the check, put the two files from
Frigate's public source in a directory outside the repo (default ``/tmp/frigate-ref``, or
``--ref DIR``)::

    git -C FRIGATE show HEAD:frigate/motion/improved_motion.py > /tmp/frigate-ref/improved_motion.py
    git -C FRIGATE show HEAD:frigate/config/camera/motion.py > /tmp/frigate-ref/motion_config.py
    .venv/bin/python bench/frigate_check.py

Without them the check says it skipped and exits 0. The real ``ImprovedMotionDetector`` is
loaded with small stand-ins for the Frigate modules it imports (PTZ metrics, the runtime
config class, the abstract base, the contour helper), none of which the detection path uses
beyond what the stand-ins provide; the config is Frigate's defaults, read from
``motion_config.py`` itself (and compared with ours). Both detectors see the same mock camera
clips; the check fails on the first frame where their boxes, calibration state or running
average differ.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import sys
import time
import types
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from frigate_motion import FrigateMotion, FrigateMotionConfig

from doorbell.camera.mock import MockScene

CLIPS = ("person", "person_low", "person_dusk", "porch_light", "cloud", "exposure", "rain")
SIZE = (320, 240)


def frigate_defaults(path: Path) -> dict[str, Any]:
    """``Field(default=...)`` of every field of Frigate's ``MotionConfig``, read from source."""
    tree = ast.parse(path.read_text())
    defaults: dict[str, Any] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            call = node.value
            if isinstance(call, ast.Call):
                for keyword in call.keywords:
                    if keyword.arg == "default":
                        defaults[node.target.id] = ast.literal_eval(keyword.value)
    return defaults


def load_reference(ref: Path) -> Any:
    """The real ``frigate.motion.improved_motion`` module, with stand-ins for its imports."""

    def grab_cv2_contours(found: tuple[Any, ...]) -> Any:
        return found[0] if len(found) == 2 else found[1]

    stand_ins: dict[str, dict[str, Any]] = {
        "frigate": {},
        "frigate.camera": {"PTZMetrics": object},
        "frigate.config": {"MotionConfig": object},
        "frigate.config.config": {"RuntimeMotionConfig": object},
        "frigate.motion": {"MotionDetector": object},
        "frigate.util": {},
        "frigate.util.image": {"grab_cv2_contours": grab_cv2_contours},
    }
    for name, attributes in stand_ins.items():
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        module.__path__ = []
        sys.modules[name] = module
    spec = importlib.util.spec_from_file_location(
        "frigate.motion.improved_motion", ref / "improved_motion.py"
    )
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {ref / 'improved_motion.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", type=Path, default=Path("/tmp/frigate-ref"))
    parser.add_argument("--frames", type=int, default=300, help="frames per clip")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if (
        not (args.ref / "improved_motion.py").is_file()
        or not (args.ref / "motion_config.py").is_file()
    ):
        print(f"skipped: no Frigate reference in {args.ref} (see this script's docstring)")
        return 0
    cv2.setNumThreads(1)
    defaults = frigate_defaults(args.ref / "motion_config.py")
    ours = FrigateMotionConfig()
    for key, value in vars(ours).items():
        if defaults.get(key) != value:
            print(f"MISMATCH: default {key}: Frigate {defaults.get(key)!r}, ours {value!r}")
            return 1
    print(f"defaults match Frigate's MotionConfig: {vars(ours)}")
    module = load_reference(args.ref)
    width, height = SIZE
    real_config = types.SimpleNamespace(
        **defaults, rasterized_mask=np.full((height, width), 255, np.uint8)
    )
    total = 0
    seconds = {"ours": 0.0, "frigate": 0.0}
    for clip in CLIPS:
        scene = MockScene(clip, args.seed, width, height, 10, SIZE)
        real = module.ImprovedMotionDetector((height, width), real_config, fps=10)
        mine = FrigateMotion((height, width))
        for index in range(args.frames):
            _, grey, _ = scene.render(index)
            started = time.perf_counter()
            expected = real.detect(grey.copy())
            middle = time.perf_counter()
            got = mine.detect(grey.copy())
            seconds["frigate"] += middle - started
            seconds["ours"] += time.perf_counter() - middle
            same = (
                [tuple(int(v) for v in box) for box in expected] == got
                and real.calibrating == mine.calibrating
                and np.array_equal(real.avg_frame, mine.average)
            )
            if not same:
                print(
                    f"MISMATCH {clip} seed {args.seed} frame {index}: Frigate {expected} "
                    f"(calibrating {real.calibrating}), ours {got} "
                    f"(calibrating {mine.calibrating})"
                )
                return 1
            total += 1
        print(f"{clip:>12}: {args.frames} frames identical (boxes, calibration, average)")
    print(
        f"all {total} frames identical; ms/frame Frigate {1000 * seconds['frigate'] / total:.3f}, "
        f"re-implementation {1000 * seconds['ours'] / total:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
