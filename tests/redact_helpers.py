"""Footage with known face positions for redaction tests and benchmarks.

Real faces from scikit-image's bundled test images (``astronaut``: Eileen Collins, NASA,
public domain; ``camera``: the cameraman) are pasted onto mock doorstep scenes. The face
boxes (in the source images' pixels) were measured once by hand on the bundled images.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from doorbell.camera.mock import MockScene
from doorbell.media.video import H264Encoder, Mp4ClipWriter

#: (image loader name, crop of the head and shoulders, face box inside the crop)
_SOURCES = {
    "astronaut": ((140, 20, 310, 230), (40, 42, 130, 160)),
    "camera": ((170, 70, 290, 230), (25, 42, 93, 128)),
}


def face_patch(name: str) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A BGR head crop from the packaged image and the face box inside it (x0, y0, x1, y1)."""
    from skimage import data

    (cx0, cy0, cx1, cy1), box = _SOURCES[name]
    image = getattr(data, name)()
    image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image[:, :, ::-1]
    return np.ascontiguousarray(image[cy0:cy1, cx0:cx1]), box


@dataclass(frozen=True)
class FaceTruth:
    """Face boxes (x0, y0, x1, y1, exclusive) present in one frame."""

    boxes: tuple[tuple[int, int, int, int], ...]


def face_frames(
    count: int,
    width: int = 320,
    height: int = 240,
    fps: float = 15.0,
    *,
    seed: int = 3,
    face_height: int | None = None,
) -> Iterator[tuple[np.ndarray, FaceTruth]]:
    """``count`` frames of a doorstep with the astronaut walking left to right and the
    cameraman standing still on the right, plus ground truth face boxes."""
    scene = MockScene("doorstep", seed, width, height, fps, (width // 2, height // 2))
    face_height = face_height or height // 2
    walker, walker_box = face_patch("astronaut")
    standing, standing_box = face_patch("camera")
    scale_w = face_height / walker.shape[0]
    walker = cv2.resize(walker, None, fx=scale_w, fy=scale_w, interpolation=cv2.INTER_AREA)
    scale_s = 0.7 * face_height / standing.shape[0]
    standing = cv2.resize(standing, None, fx=scale_s, fy=scale_s, interpolation=cv2.INTER_AREA)
    for index in range(count):
        image, _lores, _truth = scene.render(index)
        image = image.copy()
        boxes = []
        span = width * 0.55 - walker.shape[1]
        x = int(width * 0.02 + span * index / max(1, count - 1))
        y = height // 6
        boxes.append(_paste(image, walker, walker_box, x, y, scale_w))
        x2, y2 = int(width * 0.72), height // 3
        boxes.append(_paste(image, standing, standing_box, x2, y2, scale_s))
        yield image, FaceTruth(tuple(boxes))


def _paste(image, patch, box, x, y, scale) -> tuple[int, int, int, int]:
    h, w = patch.shape[:2]
    image[y : y + h, x : x + w] = patch
    bx0, by0, bx1, by1 = (round(v * scale) for v in box)
    return (x + bx0, y + by0, x + bx1, y + by1)


def encode_clip(frames: list[np.ndarray], fps: float = 15.0) -> bytes:
    """A fragmented MP4 of ``frames`` (BGR, all one size), in memory."""
    height, width = frames[0].shape[:2]
    buffer = io.BytesIO()
    with H264Encoder(width, height, fps, bitrate_kbps=3000) as encoder:
        writer = Mp4ClipWriter(NonSeekableSink(buffer), encoder.stream_info)
        for i, frame in enumerate(frames):
            for packet in encoder.encode(frame, i / fps):
                writer.write(packet)
        for packet in encoder.flush():
            writer.write(packet)
        writer.close()
    return buffer.getvalue()


class NonSeekableSink:
    """Write-only wrapper: no seek, no tell, no read (like a pipe or the age encryptor)."""

    def __init__(self, target: io.BytesIO) -> None:
        self._target = target

    def write(self, data: bytes) -> int:
        return self._target.write(data)

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False
