"""Frigate's default motion detector, re-implemented as the baseline of ``bench/motion_eval.py``.

Frigate (https://github.com/blakeblackshear/frigate, MIT licence, Copyright (c) Frigate, Inc.)
detects motion with ``ImprovedMotionDetector`` (``frigate/motion/improved_motion.py``) under the
defaults of ``MotionConfig`` (``frigate/config/camera/motion.py``). This module re-implements
that algorithm from its public source, as read at commit e3fa70189324 (July 2026); no Frigate
code is copied here. It keeps Frigate's library calls (NumPy percentiles, SciPy's Gaussian
filter, OpenCV's running average, threshold, dilation and contours), so it costs what Frigate
costs per frame. ``bench/frigate_check.py`` checks it frame for frame against the real module
when a copy of that file is present outside the repository.

Per frame, on the grey (Y) picture:

1. resize to ``frame_height`` rows (nearest neighbour), keeping the aspect ratio;
2. **improve contrast**: the 4th and 96th percentiles of the picture, averaged over the last
   50 frames (the history starts as 0 and 255), stretch the grey levels to 0..255;
3. masked pixels become 0; a Gaussian blur (sigma 1, radius 1);
4. absolute difference from the running-average frame, **threshold** (over 30), one 3x3
   dilation, external contours; every contour over ``contour_area`` (10) pixels is a motion
   box (scaled back to the input's pixels);
5. **calibration**: while calibrating (from the start, and whenever contours cover over
   ``lightning_threshold`` (80 %) of the picture) the average learns at 0.2 per frame; it stops
   calibrating once contours cover under 5 % with at most 4 boxes. Otherwise the average
   learns at ``frame_alpha`` (0.01) on frames without boxes, and on frames with boxes only
   once boxes were seen 10 frames in a row.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter

#: A motion box as Frigate returns it: (x0, y0, x1, y1) in the input's pixels.
Corners = tuple[int, int, int, int]

_CONTRAST_HISTORY = 50  # frames of percentile history (Frigate's contrast_frame_history)
_CALIBRATING_ALPHA = 0.2
_CALIBRATED_SHARE = 0.05  # contours under this share of the picture ...
_CALIBRATED_BOXES = 4  # ... and at most this many boxes end calibration
_PERSIST_FRAMES = 10  # frames in a row with boxes before the average learns from them


@dataclass(frozen=True)
class FrigateMotionConfig:
    """The defaults of Frigate's ``MotionConfig`` that ``ImprovedMotionDetector`` reads."""

    threshold: int = 30
    lightning_threshold: float = 0.8
    skip_motion_threshold: float | None = None
    improve_contrast: bool = True
    contour_area: int = 10
    frame_alpha: float = 0.01
    frame_height: int = 100


class FrigateMotion:
    """Frigate's ``ImprovedMotionDetector`` with the default config, for grey frames of
    ``frame_shape`` (height, width). ``keep`` (optional, uint8 of ``frame_shape``) is 0 where
    Frigate's motion mask hides the picture; the bench uses none."""

    def __init__(
        self,
        frame_shape: tuple[int, int],
        config: FrigateMotionConfig | None = None,
        keep: np.ndarray | None = None,
    ) -> None:
        self.config = config or FrigateMotionConfig()
        self.frame_shape = frame_shape
        height = self.config.frame_height or frame_shape[0]
        self.resize_factor = frame_shape[0] / height
        self.motion_size = (height, height * frame_shape[1] // frame_shape[0])  # rows, columns
        self.average = np.zeros(self.motion_size, np.float32)
        self.calibrating = True
        self.frames_with_boxes = 0
        self.contrast = np.zeros((_CONTRAST_HISTORY, 2), np.uint8)
        self.contrast[:, 1] = 255
        self.contrast_index = 0
        rows, columns = self.motion_size
        if keep is None:
            self.hidden: tuple[np.ndarray, ...] | None = None
        else:
            small = cv2.resize(keep, (columns, rows), interpolation=cv2.INTER_AREA)
            self.hidden = np.nonzero(small == 0)

    def detect(self, grey: np.ndarray) -> list[Corners]:
        """Motion boxes of one grey frame (``frame_shape``, uint8), in its pixels."""
        rows, columns = self.motion_size
        small = cv2.resize(
            grey[: self.frame_shape[0], : self.frame_shape[1]],
            (columns, rows),
            interpolation=cv2.INTER_NEAREST,
        )
        if self.config.improve_contrast:
            small = self._stretch(small)
        if self.hidden is not None:
            small[self.hidden] = 0
        small = gaussian_filter(small, sigma=1, radius=1)
        delta = cv2.absdiff(small, cv2.convertScaleAbs(self.average))
        _, over = cv2.threshold(delta, self.config.threshold, 255, cv2.THRESH_BINARY)
        grown = cv2.dilate(over, np.ones((3, 3), np.uint8))
        contours, _ = cv2.findContours(grown, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        boxes: list[Corners] = []
        covered = 0.0
        scale = self.resize_factor
        for contour in contours:
            area = cv2.contourArea(contour)
            covered += area
            if area > self.config.contour_area:
                x, y, w, h = cv2.boundingRect(contour)
                boxes.append(
                    (int(x * scale), int(y * scale), int((x + w) * scale), int((y + h) * scale))
                )
        share = covered / (rows * columns)
        skip = self.config.skip_motion_threshold
        if skip is not None and share > skip:
            self.calibrating = True
            return []
        if share < _CALIBRATED_SHARE and len(boxes) <= _CALIBRATED_BOXES:
            self.calibrating = False
        if share > self.config.lightning_threshold:
            self.calibrating = True
        alpha = _CALIBRATING_ALPHA if self.calibrating else self.config.frame_alpha
        if boxes:
            self.frames_with_boxes += 1
            if self.frames_with_boxes >= _PERSIST_FRAMES:
                cv2.accumulateWeighted(small, self.average, alpha)
        else:
            cv2.accumulateWeighted(small, self.average, alpha)
            self.frames_with_boxes = 0
        return boxes

    def _stretch(self, small: np.ndarray) -> np.ndarray:
        low = np.percentile(small, 4).astype(np.uint8)
        high = np.percentile(small, 96).astype(np.uint8)
        if low >= high:  # one colour: leave it (and the history) alone
            return small
        self.contrast[self.contrast_index] = (low, high)
        self.contrast_index = (self.contrast_index + 1) % _CONTRAST_HISTORY
        mean_low, mean_high = np.mean(self.contrast, axis=0)
        clipped = np.clip(small, mean_low, mean_high)
        return (((clipped - mean_low) / (mean_high - mean_low)) * 255).astype(np.uint8)
