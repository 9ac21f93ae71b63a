"""The audit log for people: each entry as a sentence, its details as labelled fields.

The log itself keeps its canonical JSON (UTC times, machine names); this module only reads
it. :func:`describe` turns an entry into ``("Clip sealed (28 s, motion)", [("Size",
"1.2 MB"), ...])``; :data:`ACT_KINDS` groups actions for the page's "kind of act" filter;
:func:`plain_verdict` puts the verification verdict in plain words first, the technical
detail after it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: The page's "kind of act" filter: a label and the action prefixes it covers.
ACT_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "viewing": (
        "Viewing and downloads",
        (
            "clip.viewed",
            "clip.downloaded",
            "timeline.viewed",
            "thumbnail.viewed",
            "live.viewed",
            "export.preview_viewed",
            "export.request_viewed",
        ),
    ),
    "requests": ("Requests and exports", ("export.",)),
    "login": ("Unlock and lock", ("web.", "auth.")),
    "settings": ("Settings and keys", ("settings.", "owner.", "keys.")),
    "recording": (
        "Recording",
        ("clip.sealed", "clip.deleted", "recorder.", "camera.", "storage.", "index."),
    ),
    "audit": ("The audit log itself", ("audit.",)),
}

_SIMPLE: dict[str, str] = {
    "web.unlocked": "Owner unlocked",
    "web.unlock_failed": "Unlock failed: wrong passphrase",
    "web.unlock_refused": "Unlock refused (too many attempts)",
    "timeline.viewed": "Timeline viewed",
    "thumbnail.viewed": "Thumbnail viewed",
    "clip.viewed": "Clip watched",
    "clip.downloaded": "Clip downloaded (decrypted)",
    "clip.deleted": "Clip deleted",
    "live.viewed": "Live view watched",
    "settings.changed": "Settings changed",
    "settings.applied": "Settings applied by the recorder",
    "settings.rejected": "Settings rejected by the recorder",
    "owner.passphrase_changed": "Passphrase changed",
    "owner.passphrase_change_failed": "Passphrase change failed: wrong passphrase",
    "owner.passphrase_change_refused": "Passphrase change refused",
    "keys.created": "Keys created (doorbell set up)",
    "keys.passphrase_changed": "Passphrase changed",
    "recorder.start": "Recorder started",
    "recorder.stop": "Recorder stopped",
    "camera.fault": "Camera fault",
    "camera.recovered": "Camera recovered",
    "storage.full": "Storage full",
    "storage.recovered": "Storage usable again",
    "index.reconciled": "Clip index repaired after a restart",
    "audit.log_created": "Audit log created",
    "audit.anchor_created": "Owner anchor written",
    "audit.anchor_reset": "Owner accepted the log as it is (anchor reset)",
    "audit.anchor_missing": "Owner anchor missing at unlock",
    "audit.anchor_mismatch": "Audit log did not match the owner anchor at unlock",
    "audit.cosign_refused": "Cosigning the log refused",
    "audit.accept_failed": "Accepting the log failed: wrong passphrase",
    "audit.accept_refused": "Accepting the log refused",
    "export.request_submitted": "Request {req} submitted",
    "export.request_viewed": "Request {req} opened",
    "export.request_approved": "Request {req} approved",
    "export.request_denied": "Request {req} denied",
    "export.request_expired": "Request {req} expired undecided (denied)",
    "export.preview_viewed": "Redaction preview for {req}",
    "export.step_up_failed": "Approval refused: wrong passphrase",
    "export.step_up_refused": "Approval refused (too many attempts)",
    "export.bundle_ready": "Bundle for {req} ready",
    "export.bundle_failed": "Bundle for {req} failed",
    "export.bundle_sealed": "Bundle for {req} sealed",
    "export.bundle_deleted": "Bundle for {req} deleted",
    "export.bundle_revoked": "Bundle for {req} revoked by the owner",
    "export.download_refused": "Download of {req} refused",
    "export.invitation_created": "Invitation created",
    "export.invitation_revoked": "Invitation withdrawn",
    "export.open_form_changed": "Open request form switched",
    "export.transparency_changed": "Public transparency page switched",
}

#: Detail keys shown with a label (others keep their own name); long values are cut.
_LABELS = {
    "duration_s": "Duration",
    "size_bytes": "Size",
    "size": "Size",
    "trigger": "Trigger",
    "reason": "Reason",
    "clips": "Clips",
    "clips_shown": "Clips shown",
    "filter": "Filter",
    "page": "Page",
    "download": "Download",
    "limit": "Limit",
    "download_limit": "Download limit",
    "bundle_expires_at": "Bundle expires",
    "client": "From address",
    "redaction": "Redaction",
    "faces": "Faces",
    "regions": "Regions",
    "method": "Method",
    "request": "Request",
    "error": "Error",
    "sha256": "SHA-256",
    "bundle_sha256": "Bundle SHA-256",
    "manifest_sha256": "Manifest SHA-256",
    "event": "Event",
    "recovered": "Recovered after a power cut",
    "step_up": "Passphrase asked again",
    "status_link_shown": "Requester's status link shown",
}


#: Detail keys left to the entry as recorded (hashes: for checking, not for reading).
_TECHNICAL = frozenset({"sha256", "bundle_sha256", "manifest_sha256", "root", "proof"})


@dataclass(frozen=True)
class Described:
    """One entry for the page: ``sentence`` first, then ``fields`` (label, value)."""

    sentence: str
    fields: list[tuple[str, str]]


def _human_bytes(value: Any) -> str:
    if not isinstance(value, int | float):
        return str(value)
    size = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"  # pragma: no cover


def _value(key: str, value: Any, when: Callable[[float], str]) -> str:
    if key in ("size_bytes", "size") and isinstance(value, int | float):
        return _human_bytes(value)
    if key == "duration_s" and isinstance(value, int | float):
        return f"{value:.1f} s"
    if key.endswith("_at") and isinstance(value, int | float):
        return when(float(value))
    if key == "redaction" and (value is None or isinstance(value, dict)):
        from doorbell.ui.decisions import redaction_in_words

        return redaction_in_words(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        text = ", ".join(str(v) for v in value[:10])
        return text + (f" and {len(value) - 10} more" if len(value) > 10 else "")
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in list(value.items())[:8])
    return str(value) if value is not None else "-"


def _request_id(entry: dict[str, Any]) -> str:
    subject = str(entry.get("object", ""))
    return subject.removeprefix("request/") or "a request"


def describe(entry: dict[str, Any], when: Callable[[float], str]) -> Described:
    """``entry`` (a decoded audit entry) as a sentence and labelled fields; ``when`` renders
    epoch seconds in the pages' zone."""
    action = str(entry.get("action", ""))
    details = entry.get("details") if isinstance(entry.get("details"), dict) else {}
    facts: dict[str, Any] = details if isinstance(details, dict) else {}
    req = _request_id(entry)
    if action == "clip.sealed":
        duration = facts.get("duration_s")
        trigger = facts.get("trigger", "")
        length = f"{duration:.0f} s" if isinstance(duration, int | float) else "?"
        sentence = f"Clip sealed ({length}, {trigger})" if trigger else f"Clip sealed ({length})"
    elif action == "export.downloaded":
        count, limit = facts.get("download"), facts.get("limit")
        sentence = f"Bundle for {req} downloaded ({count} of {limit})"
    elif action == "export.request_approved" and isinstance(facts.get("clips"), list):
        count = len(facts["clips"])
        sentence = f"Request {req} approved ({count} clip{'' if count == 1 else 's'})"
    elif action == "web.locked":
        why = facts.get("reason", "")
        sentence = {
            "idle": "Locked after inactivity",
            "shutdown": "Locked (web server stopped)",
            "button": "Owner locked",
        }.get(str(why), f"Locked ({why})" if why else "Locked")
    elif action in _SIMPLE:
        sentence = _SIMPLE[action].format(req=req)
    else:
        sentence = action.replace(".", ": ").replace("_", " ").capitalize() or "Unknown entry"
    fields: list[tuple[str, str]] = []
    actor = str(entry.get("actor", ""))
    fields.append(("By", _actor_words(actor)))
    subject = str(entry.get("object", ""))
    if subject and req not in sentence:
        fields.append(("About", subject))
    for key, value in facts.items():
        if (action == "web.locked" and key == "reason") or key in _TECHNICAL:
            continue  # in the sentence, or in the entry as recorded (the disclosure)
        fields.append(
            (_LABELS.get(key, key.replace("_", " ").capitalize()), _value(key, value, when))
        )
    return Described(sentence, fields)


def _actor_words(actor: str) -> str:
    if actor == "owner":
        return "you (the owner)"
    if actor.startswith("requester:"):
        return f"the requester of {actor.removeprefix('requester:')}"
    return {"recorder": "the recorder", "system": "the doorbell", "web": "the web UI"}.get(
        actor, actor or "-"
    )


def plain_verdict(ok: bool, problems: list[str]) -> tuple[str, list[str]]:
    """The verdict in plain words, and notes in plain words for known warnings (the
    technical text stays available behind a disclosure on the page)."""
    if not ok:
        return (
            "The audit log does NOT check out: it was changed, damaged or rolled back. "
            "Keep this device as it is and look at the technical detail below.",
            [],
        )
    notes: list[str] = []
    for problem in problems:
        if "not pinned" in problem:
            continue  # the page checks with the recorded key; the CLI can pin it (detail)
        if "not covered by a checkpoint" in problem:
            notes.append(
                "The newest entries are not signed into a checkpoint yet; that happens "
                "within minutes."
            )
        else:
            notes.append(problem)
    return ("The audit log checks out: nothing was changed or removed.", notes)
