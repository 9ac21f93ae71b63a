"""The clip thumbnail shows who came: the frame with the largest moving object within
THUMBNAIL_WINDOW_S of the trigger (not the trigger frame, usually an empty doorstep with a
tiny figure), encrypted like every thumbnail; the camera has already burned the privacy
masks into every frame the recorder sees."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
from recorder_helpers import (
    IndexCamera,
    decrypt_bytes,
    make_owner,
    plaintext_hits,
    read_index,
    recorder_config,
)
from test_recorder import record

from doorbell.recorder.pipeline import THUMBNAIL_WINDOW_S
from doorbell.store import Store


@dataclasses.dataclass
class BoxMotion:
    is_active: bool
    score: float
    zones: tuple[str, ...]
    boxes: tuple[tuple[int, int, int, int], ...]


class GrowingVisitor:
    """Motion on frames ``active``; the moving box of frame i is ``sizes.get(i, 4)`` px wide."""

    def __init__(self, active: set[int], sizes: dict[int, int]) -> None:
        self.active, self.sizes = active, sizes

    def update(self, frame) -> BoxMotion:
        on = frame.index in self.active
        side = self.sizes.get(frame.index, 4) if on else 0
        boxes = ((10, 10, side, side),) if on else ()
        return BoxMotion(is_active=on, score=1.0 if on else 0.0, zones=(), boxes=boxes)


def thumbnail_index(data_dir: Path, identity) -> int:
    with Store.open(data_dir) as store:
        (clip,) = store.clips()
    assert clip.thumb_path
    jpeg = decrypt_bytes(data_dir / clip.thumb_path, identity)
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return read_index(image)


def test_thumbnail_is_the_frame_with_the_largest_moving_object(data_dir: Path) -> None:
    identity = make_owner(data_dir)
    # 10 fps; motion from frame 50; the visitor is biggest on frame 62 (1.2 s in), and an
    # even bigger box at frame 90 (4 s in) is past the window and must not count.
    assert THUMBNAIL_WINDOW_S < 4.0
    sizes = {50: 4, 55: 20, 62: 60, 70: 30, 90: 100}
    record(data_dir, IndexCamera(160), GrowingVisitor(set(range(50, 100)), sizes))
    assert thumbnail_index(data_dir, identity) == 62
    assert plaintext_hits(data_dir) == []


def test_short_clip_gets_its_best_frame_at_sealing(data_dir: Path) -> None:
    identity = make_owner(data_dir)
    config = recorder_config(data_dir)
    record(
        data_dir,
        IndexCamera(62),  # the camera ends 1.2 s after the trigger: sealed inside the window
        GrowingVisitor(set(range(50, 62)), {50: 4, 53: 40, 57: 10}),
        config=config,
    )
    assert thumbnail_index(data_dir, identity) == 53


def test_without_boxes_the_trigger_frame_stays(data_dir: Path) -> None:
    identity = make_owner(data_dir)
    record(data_dir, IndexCamera(120), GrowingVisitor(set(range(50, 60)), {}))
    # every frame has the same 4 px box: the first (the trigger) is kept
    assert thumbnail_index(data_dir, identity) == 50
