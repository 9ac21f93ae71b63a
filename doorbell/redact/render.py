"""Pixels: irreversible redaction of owner regions and face boxes in one BGR frame.

``pixelate`` shrinks an area to a coarse grid (each cell one colour, the area mean), adds a
random offset per cell and channel, and blows it back up with nearest-neighbour: no detail
finer than a cell survives, and the noise hides even the exact cell means. ``fill`` paints a
solid colour. There is no light Gaussian blur (a deconvolution can undo one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from doorbell.masks import rasterise_polygons
from doorbell.redact.faces import FaceBox, pad_box
from doorbell.redact.spec import RedactionSpec

__all__ = ["FrameRedactor", "pixelate"]


def pixelate(area: np.ndarray, cell_px: float, noise: int, rng: np.random.Generator) -> np.ndarray:
    """A pixelated copy of ``area`` (H x W x 3 uint8): cells of about ``cell_px`` pixels,
    each offset by uniform noise in ``-noise..noise`` per channel."""
    height, width = area.shape[:2]
    cells_x = max(1, math.ceil(width / cell_px))
    cells_y = max(1, math.ceil(height / cell_px))
    small = cv2.resize(area, (cells_x, cells_y), interpolation=cv2.INTER_AREA)
    if noise:
        jitter = rng.integers(-noise, noise + 1, small.shape, dtype=np.int16)
        small = np.clip(small.astype(np.int16) + jitter, 0, 255).astype(np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)


class FrameRedactor:
    """Applies a :class:`RedactionSpec` to frames of one size (regions cached per size).

    ``rng`` draws the pixelation noise (default: seeded from the OS, so two exports of the same
    clip differ and the noise cannot be replayed).
    """

    def __init__(
        self,
        spec: RedactionSpec,
        width: int,
        height: int,
        *,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.spec = spec
        self.width, self.height = width, height
        self.rng = rng if rng is not None else np.random.default_rng()
        mask = np.zeros((height, width), dtype=np.uint8)
        if spec.regions:
            mask |= rasterise_polygons(spec.regions, width, height)
        if spec.keep:
            mask |= np.asarray(
                cv2.bitwise_not(rasterise_polygons(spec.keep, width, height)), np.uint8
            )
        self.region_mask: np.ndarray | None = mask.astype(bool) if mask.any() else None
        # cv2.copyTo with a uint8 mask is ~100x faster than numpy's masked copy at 720p
        self._region_mask_u8 = mask if mask.any() else None
        self._fill = np.full((height, width, 3), spec.fill_bgr, dtype=np.uint8)
        self.region_cell_px = max(2.0, spec.cell_fraction * width)

    def redact(self, image: np.ndarray, faces: Sequence[FaceBox] = ()) -> np.ndarray:
        """Redact ``image`` (H x W x 3 BGR uint8) in place and return it.

        Regions first, then each face box grown by the spec's padding.
        """
        spec = self.spec
        if self._region_mask_u8 is not None:
            if spec.method == "fill":
                covered = self._fill
            else:
                covered = pixelate(image, self.region_cell_px, spec.noise, self.rng)
            cv2.copyTo(covered, self._region_mask_u8, image)
        for x0, y0, x1, y1 in self.face_rectangles(faces):
            if spec.method == "fill":
                image[y0:y1, x0:x1] = spec.fill_bgr
            else:
                cell = max(2.0, max(x1 - x0, y1 - y0) / spec.face_cells)
                image[y0:y1, x0:x1] = pixelate(image[y0:y1, x0:x1], cell, spec.noise, self.rng)
        return image

    def face_rectangles(self, faces: Sequence[FaceBox]) -> list[tuple[int, int, int, int]]:
        """The padded pixel rectangles (x0, y0, x1, y1) that :meth:`redact` covers for faces."""
        rects = []
        for face in faces:
            x0, y0, x1, y1 = pad_box(face, self.spec.face_padding, self.width, self.height)
            if x1 > x0 and y1 > y0:
                rects.append((x0, y0, x1, y1))
        return rects

    def coverage_mask(self, faces: Sequence[FaceBox] = ()) -> np.ndarray:
        """Boolean (H, W) mask of every pixel :meth:`redact` replaces for these faces."""
        mask = (
            self.region_mask.copy()
            if self.region_mask is not None
            else np.zeros((self.height, self.width), dtype=bool)
        )
        for x0, y0, x1, y1 in self.face_rectangles(faces):
            mask[y0:y1, x0:x1] = True
        return mask
