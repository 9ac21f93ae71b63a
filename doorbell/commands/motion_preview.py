"""``doorbell motion-preview``: see what the motion detector sees, to tune zones and masks.

An owner tool, run by hand. It writes **unencrypted** annotated images (PNG frames into a
directory, or one MP4 when ``--out`` ends in ``.mp4``): the owner's zones in green, motion
masks in red, moving objects boxed (yellow inside a zone, cyan outside), the score and the
event state. Privacy masks are already black, as in every recording.

Because the product never stores plaintext images, this command only writes where ``--out``
says, warns every time, and refuses any path inside the data directory. It does not encrypt:
a preview is for looking at now on this machine and deleting, and encrypting it would send the
owner through a decrypt step for every tuning round. Point ``--out`` at a tmpfs
(``/dev/shm/...``) to keep it off the SD card.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import click
import cv2
import numpy as np

from doorbell.commands.options import config_options, load_cli_config
from doorbell.errors import UsageError
from doorbell.fsutil import fsync_dir, temp_path_for, write_file_atomic

VIDEO_SUFFIXES = (".mp4", ".mkv")


def _inside(path: Path, directory: Path) -> bool:
    path, directory = path.resolve(), directory.resolve()
    return path == directory or directory in path.parents


def annotate(main: np.ndarray, result: object, zone: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """A copy of ``main`` with zones, masks, boxes (scaled from lores) and the score drawn."""
    image = main.copy()
    height, width = image.shape[:2]
    zone_big = cv2.resize(zone, (width, height), interpolation=cv2.INTER_NEAREST)
    mask_big = cv2.resize(masks, (width, height), interpolation=cv2.INTER_NEAREST)
    if mask_big.any():
        red = np.zeros_like(image)
        red[:, :] = (0, 0, 255)
        blended = cv2.addWeighted(image, 0.6, red, 0.4, 0)
        np.copyto(image, blended, where=mask_big[:, :, None] > 0)
    contours, _ = cv2.findContours(zone_big, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(image, contours, -1, (0, 200, 0), max(1, width // 400))
    sx, sy = width / zone.shape[1], height / zone.shape[0]
    for x, y, w, h in result.boxes:  # type: ignore[attr-defined]
        colour = (0, 255, 255) if zone[y : y + h, x : x + w].any() else (255, 255, 0)
        top_left = (round(x * sx), round(y * sy))
        bottom_right = (round((x + w) * sx), round((y + h) * sy))
        cv2.rectangle(image, top_left, bottom_right, colour, max(1, width // 320))
    state = "EVENT" if result.is_active else "idle"  # type: ignore[attr-defined]
    if result.global_change:  # type: ignore[attr-defined]
        state += " (light change ignored)"
    text = f"score {result.score:.3f}  {state}"  # type: ignore[attr-defined]
    scale = max(0.4, width / 1600)
    cv2.putText(
        image, text, (8, round(24 * scale / 0.5)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3
    )
    cv2.putText(
        image,
        text,
        (8, round(24 * scale / 0.5)),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        (255, 255, 255),
        1,
    )
    return image


@click.command("motion-preview")
@config_options
@click.option(
    "--frames",
    type=click.IntRange(1, 100_000),
    default=150,
    show_default=True,
    help="How many frames to analyse.",
)
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    required=True,
    help="Directory for PNG frames, or a file ending in .mp4/.mkv.",
)
def motion_preview(config_path: Path | None, data_dir: Path | None, frames: int, out: Path) -> None:
    """Write an annotated preview of motion detection (UNENCRYPTED) for tuning zones.

    Runs the configured camera and motion settings for --frames frames and writes what the
    detector saw to --out. Refuses to write inside the data directory.
    """
    from doorbell.camera import open_camera
    from doorbell.masks import rasterise_polygons
    from doorbell.motion import MotionDetector

    config = load_cli_config(config_path, data_dir)
    if _inside(out, config.data_dir):
        raise UsageError(
            f"--out {out}: inside the data directory {config.data_dir}, where nothing "
            "unencrypted may be written; choose a path elsewhere (e.g. /dev/shm/preview)"
        )
    video = out.suffix.lower() in VIDEO_SUFFIXES
    if video and not out.parent.is_dir():
        raise UsageError(f"--out {out}: directory {out.parent} does not exist")
    if not video:
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {out}: exists and is not a directory")
        out.mkdir(parents=True, exist_ok=True)
    click.echo(
        f"warning: motion-preview writes UNENCRYPTED images to {out}; delete them when done",
        err=True,
    )
    camera_config = dataclasses.replace(config.camera, realtime=False)
    lores_size = (camera_config.lores_width, camera_config.lores_height)
    detector = MotionDetector(config.motion, lores_size)
    zone = rasterise_polygons(
        config.motion.zones or [((0, 0), (1, 0), (1, 1), (0, 1))], *lores_size
    )
    masks = rasterise_polygons(config.motion.masks, *lores_size)
    events = written = 0
    writer = _VideoWriter(out, camera_config) if video else None
    try:
        with open_camera(camera_config, privacy_masks=config.privacy.masks) as camera:
            for frame in camera:
                result = detector.update(frame)
                events += result.started
                image = annotate(frame.main, result, zone, masks)
                if writer is not None:
                    writer.write(image)
                else:
                    ok, png = cv2.imencode(".png", image)
                    if not ok:  # pragma: no cover - encoding a valid uint8 image cannot fail
                        raise UsageError("could not encode a PNG")
                    write_file_atomic(out / f"frame_{frame.index:05d}.png", png.tobytes())
                written += 1
                if written >= frames:
                    break
        if writer is not None:
            writer.finish()
    finally:
        if writer is not None:
            writer.abort()
    click.echo(f"{written} frames, {events} motion event(s) started; wrote {out}")


class _VideoWriter:
    """H.264 into a temp file next to ``path``, renamed into place when finished."""

    def __init__(self, path: Path, camera_config: object) -> None:
        import av

        self.path = path
        self.temp = temp_path_for(path)
        muxer = "matroska" if path.suffix.lower() == ".mkv" else "mp4"
        self.container = av.open(str(self.temp), mode="w", format=muxer)
        fps = int(camera_config.fps)  # type: ignore[attr-defined]
        self.stream = self.container.add_stream("libx264", rate=fps)
        self.stream.width = camera_config.width  # type: ignore[attr-defined]
        self.stream.height = camera_config.height  # type: ignore[attr-defined]
        self.stream.pix_fmt = "yuv420p"
        self.done = False

    def write(self, image: np.ndarray) -> None:
        import av

        for packet in self.stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
            self.container.mux(packet)

    def finish(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()
        os.chmod(self.temp, 0o600)
        with self.temp.open("rb+") as handle:
            os.fsync(handle.fileno())
        self.temp.replace(self.path)
        fsync_dir(self.path.parent)
        self.done = True

    def abort(self) -> None:
        if not self.done:
            self.container.close()
            self.temp.unlink(missing_ok=True)
