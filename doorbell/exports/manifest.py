"""The bundle's ``manifest.json``: one typed definition for the writer and the reader.

:mod:`.bundle` builds a :class:`Manifest` and writes :meth:`Manifest.to_bytes`;
:mod:`.verify` reads one back with :meth:`Manifest.from_bytes`, which refuses anything that
is not exactly this shape (a missing, extra or mistyped field is an error naming its path).
Every field is described in ``docs/formats.md``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeAlias

from doorbell.errors import DoorbellError

FORMAT = "doorbell-export/2"
#: A JSON value (what redaction descriptions are: plain JSON from :mod:`doorbell.redact`).
JSON: TypeAlias = "bool | int | float | str | list[JSON] | dict[str, JSON] | None"


class ManifestError(DoorbellError, ValueError):
    """``manifest.json`` is not a valid manifest; ``path`` names the field."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


class _Fields:
    """Typed access to one JSON object, naming the path of whatever is wrong."""

    def __init__(self, value: object, path: str, keys: tuple[str, ...]) -> None:
        if not isinstance(value, dict):
            raise ManifestError(path, "must be an object")
        extra = sorted(set(value) - set(keys))
        missing = sorted(set(keys) - set(value))
        if extra or missing:
            raise ManifestError(
                path, f"fields missing: {missing or '-'}; fields not in the format: {extra or '-'}"
            )
        self._value: dict[str, object] = value
        self._path = path

    def raw(self, key: str) -> object:
        return self._value[key]

    def text(self, key: str) -> str:
        value = self._value[key]
        if not isinstance(value, str):
            raise ManifestError(f"{self._path}.{key}", "must be a string")
        return value

    def optional_text(self, key: str) -> str | None:
        return None if self._value[key] is None else self.text(key)

    def number(self, key: str) -> float:
        value = self._value[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ManifestError(f"{self._path}.{key}", "must be a number")
        return float(value)

    def optional_number(self, key: str) -> float | None:
        return None if self._value[key] is None else self.number(key)

    def integer(self, key: str) -> int:
        value = self._value[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise ManifestError(f"{self._path}.{key}", "must be an integer")
        return value

    def flag(self, key: str) -> bool:
        value = self._value[key]
        if not isinstance(value, bool):
            raise ManifestError(f"{self._path}.{key}", "must be true or false")
        return value

    def texts(self, key: str) -> tuple[str, ...]:
        value = self._value[key]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ManifestError(f"{self._path}.{key}", "must be a list of strings")
        return tuple(str(v) for v in value)

    def json_object(self, key: str) -> dict[str, JSON] | None:
        value = self._value[key]
        if value is not None and not isinstance(value, dict):
            raise ManifestError(f"{self._path}.{key}", "must be an object or null")
        return value

    def sha256(self, key: str) -> str:
        value = self.text(key)
        if len(value) != 64 or value.strip("0123456789abcdef"):
            raise ManifestError(f"{self._path}.{key}", "must be a lower-case hex SHA-256")
        return value


@dataclass(frozen=True)
class ManifestRequest:
    """The request as submitted: every field of its signed ``export.request_submitted``
    entry (``submitted_at`` is that entry's ``time``, ``submission_index`` its index)."""

    id: str
    submitted_at: str
    submission_index: int
    source: str
    invitation: str | None
    requester: str
    organisation: str
    contact: str
    kind: str
    legal_basis: str
    legal_reference: str
    window_start: float
    window_end: float
    reason: str
    delivery: str
    recipient: str | None

    def submitted_fields(self) -> dict[str, object]:
        """The fields as the submission entry's ``details`` name them."""
        return {
            "source": self.source,
            "invitation": self.invitation,
            "requester": self.requester,
            "organisation": self.organisation,
            "contact": self.contact,
            "kind": self.kind,
            "legal_basis": self.legal_basis,
            "legal_reference": self.legal_reference,
            "window": [self.window_start, self.window_end],
            "reason": self.reason,
            "delivery": self.delivery,
            "recipient": self.recipient,
        }

    def to_json(self) -> dict[str, JSON]:
        return {
            "id": self.id,
            "submitted_at": self.submitted_at,
            "submission_index": self.submission_index,
            "source": self.source,
            "invitation": self.invitation,
            "requester": self.requester,
            "organisation": self.organisation,
            "contact": self.contact,
            "kind": self.kind,
            "legal_basis": self.legal_basis,
            "legal_reference": self.legal_reference,
            "window": {"start": self.window_start, "end": self.window_end},
            "reason": self.reason,
            "delivery": self.delivery,
            "recipient": self.recipient,
        }

    @classmethod
    def from_json(cls, value: object) -> ManifestRequest:
        keys = (
            "id",
            "submitted_at",
            "submission_index",
            "source",
            "invitation",
            "requester",
            "organisation",
            "contact",
            "kind",
            "legal_basis",
            "legal_reference",
            "window",
            "reason",
            "delivery",
            "recipient",
        )
        f = _Fields(value, "request", keys)
        window = _Fields(f.raw("window"), "request.window", ("start", "end"))
        return cls(
            id=f.text("id"),
            submitted_at=f.text("submitted_at"),
            submission_index=f.integer("submission_index"),
            source=f.text("source"),
            invitation=f.optional_text("invitation"),
            requester=f.text("requester"),
            organisation=f.text("organisation"),
            contact=f.text("contact"),
            kind=f.text("kind"),
            legal_basis=f.text("legal_basis"),
            legal_reference=f.text("legal_reference"),
            window_start=window.number("start"),
            window_end=window.number("end"),
            reason=f.text("reason"),
            delivery=f.text("delivery"),
            recipient=f.optional_text("recipient"),
        )


@dataclass(frozen=True)
class ManifestDecision:
    """The owner's approval, as its ``export.request_approved`` entry (index
    ``approval_index``, time ``decided_at``) states it."""

    decided_at: str
    approval_index: int
    clips: tuple[str, ...]
    bundle_expires_at: float
    download_limit: int
    redaction: dict[str, JSON] | None
    includes_later_footage: bool

    def to_json(self) -> dict[str, JSON]:
        return {
            "outcome": "approved",
            "by": "owner",
            "decided_at": self.decided_at,
            "approval_index": self.approval_index,
            "clips": list(self.clips),
            "bundle_expires_at": self.bundle_expires_at,
            "download_limit": self.download_limit,
            "redaction": self.redaction,
            "includes_later_footage": self.includes_later_footage,
        }

    @classmethod
    def from_json(cls, value: object) -> ManifestDecision:
        keys = (
            "outcome",
            "by",
            "decided_at",
            "approval_index",
            "clips",
            "bundle_expires_at",
            "download_limit",
            "redaction",
            "includes_later_footage",
        )
        f = _Fields(value, "decision", keys)
        if f.raw("outcome") != "approved" or f.raw("by") != "owner":
            raise ManifestError("decision", "outcome must be 'approved', by 'owner'")
        return cls(
            decided_at=f.text("decided_at"),
            approval_index=f.integer("approval_index"),
            clips=f.texts("clips"),
            bundle_expires_at=f.number("bundle_expires_at"),
            download_limit=f.integer("download_limit"),
            redaction=f.json_object("redaction"),
            includes_later_footage=f.flag("includes_later_footage"),
        )


@dataclass(frozen=True)
class ManifestClip:
    """One delivered clip: the file (``sha256``, ``size``) and its origin on the device:
    the encrypted original (``source_sha256``, ``source_size``) that the device's
    ``clip.sealed`` entry at ``sealed_index`` (time ``sealed_at``) logged."""

    id: str
    file: str
    sha256: str
    size: int
    started_at: float
    ended_at: float | None
    duration_s: float
    interrupted: bool
    trigger: str
    source_sha256: str
    source_size: int
    sealed_index: int
    sealed_at: str
    after_request: bool
    redaction: dict[str, JSON] | None
    interrupted_prefix: dict[str, JSON] | None

    def to_json(self) -> dict[str, JSON]:
        return {
            "id": self.id,
            "file": self.file,
            "sha256": self.sha256,
            "size": self.size,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration_s": self.duration_s,
            "interrupted": self.interrupted,
            "trigger": self.trigger,
            "source_sha256": self.source_sha256,
            "source_size": self.source_size,
            "sealed_index": self.sealed_index,
            "sealed_at": self.sealed_at,
            "after_request": self.after_request,
            "redaction": self.redaction,
            "interrupted_prefix": self.interrupted_prefix,
        }

    @classmethod
    def from_json(cls, value: object, number: int) -> ManifestClip:
        f = _Fields(value, f"clips[{number}]", tuple(cls.__dataclass_fields__))
        return cls(
            id=f.text("id"),
            file=f.text("file"),
            sha256=f.sha256("sha256"),
            size=f.integer("size"),
            started_at=f.number("started_at"),
            ended_at=f.optional_number("ended_at"),
            duration_s=f.number("duration_s"),
            interrupted=f.flag("interrupted"),
            trigger=f.text("trigger"),
            source_sha256=f.sha256("source_sha256"),
            source_size=f.integer("source_size"),
            sealed_index=f.integer("sealed_index"),
            sealed_at=f.text("sealed_at"),
            after_request=f.flag("after_request"),
            redaction=f.json_object("redaction"),
            interrupted_prefix=f.json_object("interrupted_prefix"),
        )


@dataclass(frozen=True)
class Manifest:
    """``manifest.json`` (format :data:`FORMAT`)."""

    request: ManifestRequest
    decision: ManifestDecision
    clips: tuple[ManifestClip, ...]
    time_start: float
    time_end: float
    device_vkey: str
    verify_txt_sha256: str

    def to_bytes(self) -> bytes:
        """Canonical bytes: indented JSON, keys sorted, one final newline."""
        document: dict[str, JSON] = {
            "format": FORMAT,
            "request": self.request.to_json(),
            "decision": self.decision.to_json(),
            "clips": [clip.to_json() for clip in self.clips],
            "time_range": {"start": self.time_start, "end": self.time_end},
            "device_vkey": self.device_vkey,
            "verify_txt_sha256": self.verify_txt_sha256,
            "audit": dict(AUDIT_FILES),
        }
        return json.dumps(document, indent=2, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        """Parse and check the shape; raises :class:`ManifestError` naming the field."""
        try:
            document = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ManifestError("manifest", f"not valid JSON ({exc})") from exc
        keys = (
            "format",
            "request",
            "decision",
            "clips",
            "time_range",
            "device_vkey",
            "verify_txt_sha256",
            "audit",
        )
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ManifestError("format", f"not a {FORMAT} manifest")
        f = _Fields(document, "manifest", keys)
        clips = f.raw("clips")
        if not isinstance(clips, list):
            raise ManifestError("clips", "must be a list")
        time_range = _Fields(f.raw("time_range"), "time_range", ("start", "end"))
        if f.raw("audit") != dict(AUDIT_FILES):
            raise ManifestError("audit", "must name the audit files of the format")
        return cls(
            request=ManifestRequest.from_json(f.raw("request")),
            decision=ManifestDecision.from_json(f.raw("decision")),
            clips=tuple(ManifestClip.from_json(c, n) for n, c in enumerate(clips)),
            time_start=time_range.number("start"),
            time_end=time_range.number("end"),
            device_vkey=f.text("device_vkey"),
            verify_txt_sha256=f.sha256("verify_txt_sha256"),
        )


AUDIT_FILES: Mapping[str, str] = {
    "entries": "audit/entries.jsonl",
    "checkpoint": "audit/checkpoint.note",
    "proofs": "audit/proofs.json",
}
