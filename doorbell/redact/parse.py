"""Owner input -> :class:`RedactionSpec`: the approval form, the preview query, CLI flags.

Everything here is strict, because it decides what leaves the device: unknown methods,
non-finite or out-of-range coordinates, degenerate boxes, too many shapes or corners, and
oversized JSON are refused with a :class:`RedactionError` naming the field, never clamped or
silently dropped. Coordinates are relative (0..1, origin top-left) and rounded to 4 decimals
(a tenth of a pixel at 1280 wide), which also keeps the spec small enough for the audit entry
that records the approval.

Form fields (names shared by ``web/templates/exports/review.html`` and ``exports.js``):

* ``redact_faces``: ``on`` to blur faces automatically.
* ``redact_method``: ``pixelate`` (default) or ``fill``.
* ``regions`` / ``keep``: JSON lists of polygons, each a list of ``[x, y]`` corners (3..16);
  ``regions`` are redacted, everything outside the union of ``keep`` is redacted.
* ``box_x0``, ``box_y0``, ``box_x1``, ``box_y1`` and ``box_kind`` (``redact`` or ``keep``):
  one more box typed by hand (the keyboard fallback; all four empty = no box).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from doorbell.errors import RedactionError
from doorbell.masks import PolygonPoints
from doorbell.redact.spec import METHODS, RedactionSpec, box_polygon

__all__ = [
    "MAX_CORNERS",
    "MAX_SHAPES",
    "parse_box",
    "parse_polygons",
    "spec_from_cli",
    "spec_from_form",
]

#: At most this many shapes (regions and keep together) per export.
MAX_SHAPES = 16
#: At most this many corners per polygon.
MAX_CORNERS = 16
#: Longest JSON text accepted for ``regions`` or ``keep`` (characters).
MAX_JSON_CHARS = 8192
_BOX_FIELDS = ("box_x0", "box_y0", "box_x1", "box_y1")


def _coordinate(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RedactionError(f"{where}: not a number")
    try:
        number = float(value)
    except ValueError:
        raise RedactionError(f"{where}: {str(value)[:20]!r} is not a number") from None
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        raise RedactionError(f"{where}: {number:g} is outside 0..1 (coordinates are relative)")
    return round(number, 4)


def parse_box(text: str, what: str = "box") -> PolygonPoints:
    """``"x0,y0,x1,y1"`` (relative: left, top, right, bottom) as a 4-corner polygon.

    Raises :class:`RedactionError` if it is not four numbers in 0..1 with left < right and
    top < bottom.
    """
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 4 or not all(parts):
        raise RedactionError(f"{what} {str(text)[:40]!r}: want x0,y0,x1,y1 (four numbers 0..1)")
    x0, y0, x1, y1 = (_coordinate(p, f"{what} {text!r}") for p in parts)
    return _box(x0, y0, x1, y1, what)


def _box(x0: float, y0: float, x1: float, y1: float, what: str) -> PolygonPoints:
    if not (x0 < x1 and y0 < y1):
        raise RedactionError(
            f"{what} ({x0:g}, {y0:g}, {x1:g}, {y1:g}): left must be < right and top < bottom"
        )
    return box_polygon(x0, y0, x1, y1)


def parse_polygons(text: str | None, what: str) -> tuple[PolygonPoints, ...]:
    """A JSON list of polygons (each a list of 3..16 ``[x, y]`` corners in 0..1).

    Empty or missing text is no polygon. Raises :class:`RedactionError` naming ``what``.
    """
    if text is None or not str(text).strip():
        return ()
    if len(text) > MAX_JSON_CHARS:
        raise RedactionError(f"{what}: too long (at most {MAX_JSON_CHARS} characters)")
    if text.count("[") - text.count("[]") > 1 + MAX_SHAPES * (1 + MAX_CORNERS):
        raise RedactionError(f"{what}: too many shapes or corners")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as error:  # RecursionError: absurd nesting
        raise RedactionError(f"{what}: not valid JSON ({str(error)[:80]})") from None
    if not isinstance(data, list):
        raise RedactionError(f"{what}: want a list of polygons")
    if len(data) > MAX_SHAPES:
        raise RedactionError(f"{what}: at most {MAX_SHAPES} shapes")
    polygons = []
    for number, polygon in enumerate(data, start=1):
        where = f"{what} shape {number}"
        if not isinstance(polygon, list) or not 3 <= len(polygon) <= MAX_CORNERS:
            raise RedactionError(f"{where}: want a list of 3 to {MAX_CORNERS} [x, y] corners")
        points = []
        for corner in polygon:
            if not isinstance(corner, list) or len(corner) != 2:
                raise RedactionError(f"{where}: each corner is [x, y]")
            points.append((_coordinate(corner[0], where), _coordinate(corner[1], where)))
        if _area(points) < 1e-6:
            raise RedactionError(f"{where}: has no area")
        polygons.append(tuple(points))
    return tuple(polygons)


def _area(points: list[tuple[float, float]]) -> float:
    twice = sum(
        x0 * y1 - x1 * y0
        for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1], strict=True)
    )
    return abs(twice) / 2


def _method(value: Any) -> str:
    method = value or "pixelate"
    if method not in METHODS:
        raise RedactionError(
            f"redact_method: {str(method)[:20]!r} is not one of {', '.join(METHODS)}"
        )
    return str(method)


def _spec(
    regions: Iterable[PolygonPoints], keep: Iterable[PolygonPoints], faces: bool, method: str
) -> RedactionSpec:
    regions, keep = tuple(regions), tuple(keep)
    if len(regions) + len(keep) > MAX_SHAPES:
        raise RedactionError(f"at most {MAX_SHAPES} regions and kept regions together")
    return RedactionSpec(regions=regions, keep=keep, faces=faces, method=method)


def spec_from_form(form: Mapping[str, Any]) -> RedactionSpec:
    """The spec the owner chose on the approval page (or sent with a preview request).

    ``form`` maps field names (see the module docstring) to strings. The result may be empty
    (:attr:`RedactionSpec.is_empty`): nothing is redacted. Raises :class:`RedactionError`.
    """
    regions = list(parse_polygons(form.get("regions"), "regions"))
    keep = list(parse_polygons(form.get("keep"), "keep"))
    typed = [str(form.get(name) or "").strip() for name in _BOX_FIELDS]
    if any(typed):
        if not all(typed):
            raise RedactionError("box: give all four of x0, y0, x1, y1 (or none)")
        kind = form.get("box_kind") or "redact"
        if kind not in ("redact", "keep"):
            raise RedactionError("box_kind: redact or keep")
        x0, y0, x1, y1 = (
            _coordinate(v, f"box {name[-2:]}") for v, name in zip(typed, _BOX_FIELDS, strict=True)
        )
        (keep if kind == "keep" else regions).append(_box(x0, y0, x1, y1, "box"))
    faces = form.get("redact_faces") in ("on", "1", "true", "yes")
    return _spec(regions, keep, faces, _method(form.get("redact_method")))


def spec_from_cli(
    *, faces: bool, regions: Iterable[str], keep: Iterable[str], method: str | None
) -> RedactionSpec:
    """The spec from ``doorbell requests approve`` flags (boxes as ``x0,y0,x1,y1``).

    Raises :class:`RedactionError`.
    """
    redact = [parse_box(text, "--redact-region") for text in regions]
    kept = [parse_box(text, "--keep-region") for text in keep]
    return _spec(redact, kept, faces, _method(method))
