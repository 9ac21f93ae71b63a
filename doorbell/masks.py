"""Polygons to pixels: privacy masks, and the rasterisation motion zones and masks share.

Polygons are given in relative coordinates (0..1 on both axes, origin top-left, as
:class:`doorbell.config.Polygon` holds them), so the same configuration works at any
resolution. Each (polygon set, size) is rasterised once and cached; the cached masks are
read-only arrays.

A **privacy mask** is a region blacked out in an image before anything else sees it: the
encoder, the pre-roll buffer, the live view, thumbnails. :func:`apply_privacy_masks` does
that on BGR and grey images alike. (Motion masks, in :mod:`doorbell.motion`, are a different
thing: areas where movement is ignored but still recorded.)
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

import cv2
import numpy as np

from doorbell.config import Polygon
from doorbell.errors import ConfigError

#: One polygon, normalised: its vertices as (x, y) in 0..1.
PolygonPoints = tuple[tuple[float, float], ...]
#: A polygon as the configuration holds it, or just its (x, y) points in 0..1.
PolygonLike = Polygon | Sequence[Sequence[float]]


def normalise_polygons(polygons: Iterable[PolygonLike]) -> tuple[PolygonPoints, ...]:
    """Turn config :class:`~doorbell.config.Polygon` objects or point lists into hashable tuples.

    Raises :class:`ConfigError` for a polygon with fewer than 3 points or a coordinate outside
    0..1 (the config parser already refuses those; this guards direct callers).
    """
    result = []
    for polygon in polygons:
        points = polygon.points if isinstance(polygon, Polygon) else polygon
        pairs = tuple((float(x), float(y)) for x, y in points)
        if len(pairs) < 3:
            raise ConfigError(f"polygon {pairs!r}: needs at least 3 points")
        if not all(0.0 <= c <= 1.0 for pair in pairs for c in pair):
            raise ConfigError(f"polygon {pairs!r}: coordinates must be within 0..1")
        result.append(pairs)
    return tuple(result)


def polygon_pixels(points: Sequence[tuple[float, float]], width: int, height: int) -> np.ndarray:
    """Vertices of one relative polygon as an int32 (N, 2) array for an image of width x height.

    x = 1.0 maps to the last column (width - 1), like :meth:`doorbell.config.Polygon.to_pixels`,
    so a polygon spanning 0..1 covers every pixel.
    """
    scaled = [
        (min(width - 1, round(x * width)), min(height - 1, round(y * height))) for x, y in points
    ]
    return np.array(scaled, dtype=np.int32)


@functools.lru_cache(maxsize=64)
def _rasterise_cached(polygons: tuple[PolygonPoints, ...], width: int, height: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=np.uint8)
    if polygons:
        cv2.fillPoly(mask, [polygon_pixels(p, width, height) for p in polygons], 255)
    mask.setflags(write=False)
    return mask


def rasterise_polygons(polygons: Iterable[PolygonLike], width: int, height: int) -> np.ndarray:
    """The union of ``polygons`` as a (height, width) uint8 mask: 255 inside, 0 outside.

    Cached per (polygons, size); the returned array is read-only, copy it to modify.
    Polygon edges count as inside (a mask never leaks a one-pixel border).
    """
    if width <= 0 or height <= 0:
        raise ConfigError(f"cannot rasterise polygons for an image of {width}x{height}")
    return _rasterise_cached(normalise_polygons(polygons), int(width), int(height))


@functools.lru_cache(maxsize=64)
def _keep_mask_cached(
    polygons: tuple[PolygonPoints, ...], width: int, height: int, channels: int
) -> np.ndarray:
    # 0 inside the polygons, 255 elsewhere, with as many channels as the image: one
    # bitwise AND then blacks out the polygons, in place or not.
    keep = cv2.bitwise_not(_rasterise_cached(polygons, width, height))
    if channels > 1:
        keep = np.ascontiguousarray(np.repeat(keep[:, :, None], channels, axis=2))
    keep.setflags(write=False)
    return keep


def apply_privacy_masks(
    image: np.ndarray, polygons: Iterable[PolygonLike], *, in_place: bool = False
) -> np.ndarray:
    """Black out every privacy polygon in ``image`` (H x W x 3 BGR or H x W grey, uint8).

    Returns a new array unless ``in_place`` is true (then ``image`` itself, which must be
    writable). With no polygons the image is returned unchanged (a copy unless ``in_place``).
    Raises :class:`ConfigError` for a bad polygon and :class:`ValueError`-derived
    :class:`ConfigError` for an image that is not uint8 grey or 3-channel.
    """
    normalised = normalise_polygons(polygons)
    if (
        image.dtype != np.uint8
        or image.ndim not in (2, 3)
        or (image.ndim == 3 and image.shape[2] != 3)
    ):
        raise ConfigError(
            f"privacy masks need a uint8 grey or BGR image, got {image.dtype} {image.shape}"
        )
    if not normalised:
        return image if in_place else image.copy()
    height, width = image.shape[:2]
    keep = _keep_mask_cached(normalised, width, height, 1 if image.ndim == 2 else 3)
    if in_place:
        np.bitwise_and(image, keep, out=image)
        return image
    return np.bitwise_and(image, keep)


def zone_name(polygon: Polygon, number: int) -> str:
    """The name motion results give a ``[[motion.zones]]`` polygon: its ``name``, or
    ``zone<N>`` when it has none (``number``: its 1-based place in the list)."""
    return polygon.name or f"zone{number}"


def zone_names(polygons: Sequence[Polygon]) -> tuple[str, ...]:
    """The names of ``polygons`` (``motion.zones``) as motion results give them, once each,
    in order (zones sharing a name are one zone)."""
    return tuple(dict.fromkeys(zone_name(p, n) for n, p in enumerate(polygons, start=1)))
