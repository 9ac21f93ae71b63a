"""What to redact and how: :class:`RedactionSpec`, serialisable for the bundle manifest.

Regions are in relative coordinates (0..1 on both axes, origin top-left), like config
polygons, so the spec the owner draws on a preview works at the clip's real resolution.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from doorbell.errors import RedactionError
from doorbell.masks import PolygonPoints, normalise_polygons

__all__ = ["METHODS", "RedactionSpec", "box_polygon"]

#: ``pixelate``: coarse cells (each one colour) plus per-cell noise; ``fill``: solid colour.
#: Both are irreversible: no detail finer than a cell survives, and the noise hides even the
#: cell means. A light Gaussian blur is deliberately not offered (deconvolution undoes it).
METHODS = ("pixelate", "fill")

SPEC_VERSION = 1


def box_polygon(x0: float, y0: float, x1: float, y1: float) -> PolygonPoints:
    """A relative box (left, top, right, bottom in 0..1) as a 4-point polygon.

    Raises :class:`RedactionError` if the box is empty or outside 0..1.
    """
    if not (0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0):
        raise RedactionError(
            f"box ({x0}, {y0}, {x1}, {y1}): needs 0 <= left < right <= 1, same for y"
        )
    return ((x0, y0), (x1, y0), (x1, y1), (x0, y1))


def _polygons(value: Any, what: str) -> tuple[PolygonPoints, ...]:
    try:
        return normalise_polygons(value)
    except (ValueError, TypeError) as error:
        raise RedactionError(f"{what}: {error}") from error


@dataclass(frozen=True)
class RedactionSpec:
    """Everything that decides what a redacted export looks like.

    * ``regions``: polygons (relative, 3+ points each; :func:`box_polygon` for boxes) redacted
      in every frame.
    * ``keep``: if given, everything OUTSIDE the union of these polygons is redacted too
      ("blur everything but my doorstep").
    * ``faces``: detect and redact faces automatically.
    * ``method``: one of :data:`METHODS`. ``cell_fraction``: pixelation cell size as a fraction
      of the frame width for regions (faces use at most ``face_cells`` cells across the box).
      ``noise``: amplitude (0..127) of the per-cell random offset added to pixelated cells.
    * ``face_padding``: each face box grows by this fraction of its size on every side.
    * ``detect_every``: run the detector on every n-th frame (1 = every frame).
    * ``hold_frames``: a detection covers that many frames before and after its own frame, so a
      face stays hidden between detections and across short misses (>= ``detect_every``).
    * ``min_score``: detector confidence threshold (0..1); ``detect_width``: width in pixels the
      frame is scaled to for detection (rounded to a multiple of 32).
    * ``detector``/``detector_version``: filled in by the face detector when a clip is
      redacted (see :meth:`with_detector`), so the manifest says exactly which model ran.

    Raises :class:`RedactionError` on construction for out-of-range values.
    """

    regions: tuple[PolygonPoints, ...] = ()
    keep: tuple[PolygonPoints, ...] = ()
    faces: bool = True
    method: str = "pixelate"
    cell_fraction: float = 1 / 40
    face_cells: int = 6
    noise: int = 40
    fill_bgr: tuple[int, int, int] = (0, 0, 0)
    face_padding: float = 0.3
    detect_every: int = 2
    hold_frames: int = 4
    min_score: float = 0.4
    detect_width: int = 640
    detector: str = "centerface"
    detector_version: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regions", _polygons(self.regions, "regions"))
        object.__setattr__(self, "keep", _polygons(self.keep, "keep"))
        problems = []
        if self.method not in METHODS:
            problems.append(f"method {self.method!r} is not one of {', '.join(METHODS)}")
        if not 0.0 < self.cell_fraction <= 0.5:
            problems.append(f"cell_fraction {self.cell_fraction} must be in (0, 0.5]")
        if not 1 <= self.face_cells <= 32:
            problems.append(f"face_cells {self.face_cells} must be in 1..32")
        if not 0 <= self.noise <= 127:
            problems.append(f"noise {self.noise} must be in 0..127")
        if not 0.0 <= self.face_padding <= 2.0:
            problems.append(f"face_padding {self.face_padding} must be in 0..2")
        if self.detect_every < 1:
            problems.append(f"detect_every {self.detect_every} must be >= 1")
        if self.hold_frames < self.detect_every:
            problems.append(f"hold_frames {self.hold_frames} must be >= detect_every")
        if not 0.0 < self.min_score < 1.0:
            problems.append(f"min_score {self.min_score} must be in (0, 1)")
        if not 64 <= self.detect_width <= 4096:
            problems.append(f"detect_width {self.detect_width} must be in 64..4096")
        if len(self.fill_bgr) != 3 or not all(0 <= c <= 255 for c in self.fill_bgr):
            problems.append(f"fill_bgr {self.fill_bgr} must be three values in 0..255")
        if problems:
            raise RedactionError("invalid redaction spec: " + "; ".join(problems))

    @property
    def is_empty(self) -> bool:
        """True when nothing at all would be redacted."""
        return not (self.regions or self.keep or self.faces)

    def with_detector(self, name: str, version: str) -> RedactionSpec:
        """A copy naming the detector (name and version, e.g. a package version + model hash)."""
        return _replace(self, detector=name, detector_version=version)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description for the bundle manifest (lists, not tuples)."""
        return {
            "version": SPEC_VERSION,
            "what": {
                "regions": [[list(p) for p in poly] for poly in self.regions],
                "keep": [[list(p) for p in poly] for poly in self.keep],
                "faces": self.faces,
            },
            "method": {
                "name": self.method,
                "cell_fraction": self.cell_fraction,
                "face_cells": self.face_cells,
                "noise": self.noise,
                "fill_bgr": list(self.fill_bgr),
            },
            "faces": {
                "detector": self.detector if self.faces else None,
                "detector_version": self.detector_version if self.faces else None,
                "padding": self.face_padding,
                "detect_every": self.detect_every,
                "hold_frames": self.hold_frames,
                "min_score": self.min_score,
                "detect_width": self.detect_width,
            },
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RedactionSpec:
        """Inverse of :meth:`to_dict`. Raises :class:`RedactionError` on a malformed dict."""
        try:
            if data.get("version") != SPEC_VERSION:
                raise RedactionError(f"redaction spec version {data.get('version')!r} unknown")
            what, method, faces = data["what"], data["method"], data["faces"]
            return cls(
                regions=_tuples(what["regions"]),
                keep=_tuples(what["keep"]),
                faces=bool(what["faces"]),
                method=method["name"],
                cell_fraction=float(method["cell_fraction"]),
                face_cells=int(method["face_cells"]),
                noise=int(method["noise"]),
                fill_bgr=tuple(int(c) for c in method["fill_bgr"]),  # type: ignore[arg-type]
                face_padding=float(faces["padding"]),
                detect_every=int(faces["detect_every"]),
                hold_frames=int(faces["hold_frames"]),
                min_score=float(faces["min_score"]),
                detect_width=int(faces["detect_width"]),
                detector=faces["detector"] or "centerface",
                detector_version=faces["detector_version"] or "",
                extra=dict(data.get("extra", {})),
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise RedactionError(f"malformed redaction spec: {error!r}") from error


def _tuples(polygons: Sequence[Sequence[Sequence[float]]]) -> tuple[PolygonPoints, ...]:
    return tuple(tuple((float(x), float(y)) for x, y in poly) for poly in polygons)


def _replace(spec: RedactionSpec, **changes: Any) -> RedactionSpec:
    import dataclasses

    return dataclasses.replace(spec, **changes)
