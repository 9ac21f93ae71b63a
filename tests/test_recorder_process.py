"""`doorbell recorder` as a real process: file camera to exit 0, kill -9 mid-clip, stock age."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from age_tty import run_with_tty
from conftest import require_tool
from recorder_helpers import (
    HEIGHT,
    WIDTH,
    clip_indexes,
    decrypt_bytes,
    draw_index,
    make_owner,
    plaintext_hits,
)

from doorbell.media.fmp4 import playable_prefix_length
from doorbell.media.video import decode_frames
from doorbell.store import Store


def doorbell(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from doorbell.cli import main; sys.exit(main())",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def run_doorbell(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    process = doorbell(*args)
    out, err = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def write_config(path: Path, data_dir: Path, camera: str, **recording: float) -> Path:
    rec = {
        "pre_roll_s": 1.0,
        "post_roll_s": 1.0,
        "keyframe_interval_s": 0.5,
        "fsync_interval_s": 0.5,
        **recording,
    }
    lines = [
        "[camera]",
        camera,
        f"width = {WIDTH}\nheight = {HEIGHT}\nfps = 10\nlores_width = 160\nlores_height = 120",
        "[recording]",
        *[f"{key} = {value}" for key, value in rec.items()],
        "[storage]",
        f'data_dir = "{data_dir}"\nretention_days = 0\nmin_free_gb = 0.0',
        "[live]",
        f'socket_path = "{data_dir / "live.sock"}"',
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_video(path: Path, frames: int) -> None:
    """A test input clip: a person-sized block walks in from frame 20 to 60."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 10)
        for index in range(frames):
            image = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
            if 20 <= index < 60:
                x = 40 + (index - 20) * 4
                image[60:220, x : x + 60] = (30, 200, 240)
            draw_index(image, index)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def test_file_camera_runs_to_the_end_and_exits_zero(tmp_path: Path, data_dir: Path) -> None:
    identity = make_owner(data_dir)
    video = tmp_path / "input.mp4"
    write_video(video, 100)
    camera = f'backend = "file"\npath = "{video}"\nrealtime = false'
    config = write_config(tmp_path / "doorbell.toml", data_dir, camera)
    process = doorbell("recorder", "--config", str(config), "--no-live")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert "recorder: stopped after 100 frames, 1 clip(s)" in out
    with Store.open(data_dir) as store:
        (clip,) = store.clips()
    indexes = clip_indexes(data_dir / clip.path, identity)
    assert indexes[0] <= 20 and indexes[-1] >= 59
    assert plaintext_hits(data_dir) == []


def test_kill_9_mid_clip_keeps_a_playable_interrupted_clip(tmp_path: Path, data_dir: Path) -> None:
    identity = make_owner(data_dir)
    camera = 'backend = "mock"\nscenario = "doorstep"\nrealtime = true'
    config = write_config(tmp_path / "doorbell.toml", data_dir, camera, post_roll_s=60.0)
    process = doorbell("recorder", "--config", str(config), "--no-live")
    try:
        time.sleep(2.0)
        process.send_signal(signal.SIGUSR1)  # a ring starts a clip, post-roll keeps it open
        deadline = time.monotonic() + 30
        clip_file = None
        while time.monotonic() < deadline:
            found = list((data_dir / "clips").rglob("*.mp4.age"))
            if found and found[0].stat().st_size > 20_000:
                clip_file = found[0]
                break
            time.sleep(0.2)
        assert clip_file is not None, "no clip grew on disk"
        time.sleep(1.5)  # a few fsync intervals
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.communicate(timeout=30)
    with Store.open(data_dir) as store:
        report = store.reconcile()
        (clip,) = store.clips()
    assert report.clips_marked_interrupted == (clip.id,)
    assert clip.interrupted and clip.size_bytes > 0
    data = decrypt_bytes(data_dir / clip.path, identity, allow_truncated=True)
    playable = playable_prefix_length(io.BytesIO(data), len(data))
    assert 0 < playable <= len(data)
    frames = list(decode_frames(data[:playable]))
    assert len(frames) >= 10, "the authenticated prefix plays"
    indexes = [f.image.shape for f in frames]
    assert indexes[0] == (HEIGHT, WIDTH, 3)
    assert plaintext_hits(data_dir) == []


def test_stock_age_opens_a_recorded_clip_with_the_owner_key_file(
    tmp_path: Path, data_dir: Path
) -> None:
    """The owner never needs doorbell: `age -d -i keys/owner.key.age clip.mp4.age` works."""
    age = require_tool("age")
    passphrase = "quiet-lantern-maple-orbit-7"
    passphrase_file = tmp_path / "passphrase"
    passphrase_file.write_text(passphrase + "\n")
    passphrase_file.chmod(0o600)
    init = run_doorbell(
        "init",
        "--data-dir",
        str(data_dir),
        "--passphrase-file",
        str(passphrase_file),
        "--owner-key-work-factor",
        "10",
    )
    assert init.returncode == 0, init.stderr
    video = tmp_path / "input.mp4"
    write_video(video, 80)
    camera = f'backend = "file"\npath = "{video}"\nrealtime = false'
    config = write_config(tmp_path / "doorbell.toml", data_dir, camera)
    process = run_doorbell("recorder", "--config", str(config), "--no-live")
    assert process.returncode == 0, process.stderr
    with Store.open(data_dir) as store:
        (clip,) = store.clips()
    out = tmp_path / "clip.mp4"
    key_file = data_dir / "keys" / "owner.key.age"
    code, shown = run_with_tty(
        [age, "-d", "-i", str(key_file), "-o", str(out), str(data_dir / clip.path)], [passphrase]
    )
    assert code == 0, shown
    frames = list(decode_frames(out.read_bytes()))
    assert len(frames) >= 40
