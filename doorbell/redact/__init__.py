"""Redaction on export: faces and owner-drawn regions made unrecognisable before footage leaves.

Public API (for the export bundle builder and the approval page)::

    from doorbell.redact import RedactionSpec, box_polygon, redact_clip, preview_jpeg

    spec = RedactionSpec(regions=[box_polygon(0.6, 0.1, 0.9, 0.4)], faces=True)
    jpeg = preview_jpeg(decrypt(clip, identity), spec, at_s=2.0)     # bytes, in memory
    result = redact_clip(decrypt(clip, identity), sink, spec, progress=on_progress)
    manifest["redaction"] = result.manifest()                      # spec + detector version

Modules: :mod:`.spec` (what and how), :mod:`.faces` (detector and temporal hold),
:mod:`.render` (pixels), :mod:`.pipeline` (decode -> redact -> encode, preview).
Importing this package loads no model and touches no file.
"""

from __future__ import annotations

from doorbell.redact.faces import CenterFaceDetector, FaceBox, FaceDetector, FaceHold
from doorbell.redact.pipeline import RedactionResult, make_detector, preview_jpeg, redact_clip
from doorbell.redact.render import FrameRedactor, pixelate
from doorbell.redact.spec import METHODS, RedactionSpec, box_polygon

__all__ = [
    "METHODS",
    "CenterFaceDetector",
    "FaceBox",
    "FaceDetector",
    "FaceHold",
    "FrameRedactor",
    "RedactionResult",
    "RedactionSpec",
    "box_polygon",
    "make_detector",
    "pixelate",
    "preview_jpeg",
    "redact_clip",
]
