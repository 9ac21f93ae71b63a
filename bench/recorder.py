"""Recorder cost: CPU seconds per video second vs a bare PyAV libx264 encode, drops, RSS.

Three fresh processes each read the same frames from the mock camera (``doorstep`` scene,
1280x720 at 15 fps by default, 60 s of video, as fast as possible):

* ``camera``   only generates the frames (subtracted from both others),
* ``baseline`` also encodes them with a bare PyAV libx264 context (same preset/bitrate/GOP),
* ``recorder`` runs the whole recorder: motion, pre-roll, encoding, age encryption, index,
  audit log, thumbnails (no live socket).

Reported: CPU s per video s of baseline and recorder net of the camera, their ratio (target
<= 1.15), frames a real-time camera would have dropped (a 4-buffer queue like picamera2's,
simulated from each frame's measured processing time; target 0), peak RSS of the recorder
process (target <= 150 MB). Table on stdout, JSON in bench/results/recorder.json.

    .venv/bin/python bench/recorder.py [--seconds 60] [--width 1280 --height 720 --fps 15]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
CAMERA_BUFFERS = 4


def camera_config(args: argparse.Namespace, data_dir: str) -> dict:
    return {
        "camera": {
            "backend": "mock",
            "scenario": "doorstep",
            "seed": 7,
            "realtime": False,
            "width": args.width,
            "height": args.height,
            "fps": args.fps,
        },
        "storage": {"data_dir": data_dir, "retention_days": 0, "min_free_gb": 0.0},
    }


def frames(config, count: int):
    from doorbell.camera import open_camera

    with open_camera(config.camera) as camera:
        for index, frame in enumerate(camera):
            if index >= count:
                return
            yield frame


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_mode(mode: str, args: argparse.Namespace) -> dict:
    """Run one mode in this process; return its figures."""
    from doorbell.config import parse_config

    count = int(args.seconds * args.fps)
    with tempfile.TemporaryDirectory() as data_dir:
        config = parse_config(camera_config(args, data_dir))
        start = cpu_seconds()
        durations: list[float] = []
        if mode == "camera":
            for _frame in frames(config, count):
                pass
        elif mode == "baseline":
            import av

            context = av.CodecContext.create("libx264", "w")
            context.width, context.height, context.pix_fmt = args.width, args.height, "yuv420p"
            context.time_base = Fraction(1, args.fps)
            context.bit_rate = config.recording.bitrate_kbps * 1000
            context.gop_size = round(config.recording.keyframe_interval_s * args.fps)
            context.options = {"preset": "veryfast", "tune": "zerolatency"}
            context.open()
            for index, frame in enumerate(frames(config, count)):
                video_frame = av.VideoFrame.from_ndarray(frame.main, format="bgr24")
                video_frame.pts = index
                context.encode(video_frame)
            context.encode(None)
        else:
            durations = run_recorder(config, count)
        cpu = cpu_seconds() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "mode": mode,
        "cpu_s": cpu,
        "frames": count,
        "peak_rss_mb": peak_kib / 1024,
        "durations": durations,
    }


def run_recorder(config, count: int) -> list[float]:
    from doorbell.age.identities import X25519Identity
    from doorbell.audit.devicekey import create_device_key, load_device_signer
    from doorbell.audit.log import AuditLog
    from doorbell.errors import CameraEnded
    from doorbell.motion import MotionDetector
    from doorbell.recorder.pipeline import Recorder
    from doorbell.store import Store

    data_dir = config.data_dir
    (data_dir / "keys").mkdir()
    identity = X25519Identity.generate()
    create_device_key(data_dir / "keys", "bench.local/recorder")
    durations: list[float] = []

    class TimedCamera:
        encoded_stream_info = None  # libx264 encodes
        width, height, fps = config.camera.width, config.camera.height, config.camera.fps

        def set_privacy_masks(self, masks) -> None:
            pass  # the bench config has none

        def read(self):
            raise CameraEnded("iterate instead")

        def close(self) -> None:
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def __iter__(self):
            for frame in frames(config, count):
                handed_over = time.perf_counter()
                yield frame  # the recorder processes the frame before asking for the next
                durations.append(time.perf_counter() - handed_over)

    camera = config.camera
    with (
        AuditLog.open(data_dir, signer=load_device_signer(data_dir / "keys")) as audit,
        Store.open(data_dir) as store,
    ):
        recorder = Recorder(
            config,
            camera_factory=TimedCamera,
            detector=MotionDetector(config.motion, (camera.lores_width, camera.lores_height)),
            store=store,
            audit=audit,
            recipients=[identity.recipient],
        )
        recorder.run()
        print(f"recorder sealed {len(recorder.sealed_clips)} clips", file=sys.stderr)
    return durations


def simulated_drops(durations: list[float], fps: float, buffers: int = CAMERA_BUFFERS) -> int:
    """Frames a camera delivering at ``fps`` with ``buffers`` queue slots would drop."""
    interval = 1.0 / fps
    free_at = 0.0  # when the recorder is free to take the next frame
    queue: list[float] = []
    dropped = 0
    for index, cost in enumerate(durations):
        arrival = index * interval
        queue = [t for t in queue if t > arrival]  # frames still waiting
        if len(queue) >= buffers:
            dropped += 1
            continue
        start = max(arrival, free_at)
        free_at = start + cost
        queue.append(start)
    return dropped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument(
        "--mode", choices=["camera", "baseline", "recorder"], help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(run_mode(args.mode, args)))
        return
    results = {}
    for mode in ("camera", "baseline", "recorder"):
        size = ["--width", str(args.width), "--height", str(args.height), "--fps", str(args.fps)]
        command = [sys.executable, __file__, "--mode", mode, "--seconds", str(args.seconds), *size]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        results[mode] = json.loads(output.strip().splitlines()[-1])
    video_s = args.seconds
    camera_cpu = results["camera"]["cpu_s"]
    baseline = (results["baseline"]["cpu_s"] - camera_cpu) / video_s
    recorder = (results["recorder"]["cpu_s"] - camera_cpu) / video_s
    durations = results["recorder"].pop("durations")
    drops = simulated_drops(durations, args.fps)
    worst_ms = max(durations) * 1000 if durations else 0.0
    summary = {
        "video": f"{args.width}x{args.height} @ {args.fps} fps, {video_s:g} s, mock doorstep",
        "camera_cpu_s": round(camera_cpu, 3),
        "baseline_cpu_per_video_s": round(baseline, 4),
        "recorder_cpu_per_video_s": round(recorder, 4),
        "ratio_recorder_to_baseline": round(recorder / baseline, 3),
        "target_ratio": 1.15,
        "simulated_dropped_frames": drops,
        "worst_frame_ms": round(worst_ms, 1),
        "recorder_peak_rss_mb": round(results["recorder"]["peak_rss_mb"], 1),
        "baseline_peak_rss_mb": round(results["baseline"]["peak_rss_mb"], 1),
        "target_rss_mb": 150,
    }
    print(f"{'figure':34} {'value':>12}")
    for key, value in summary.items():
        print(f"{key:34} {value!s:>12}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "recorder.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
