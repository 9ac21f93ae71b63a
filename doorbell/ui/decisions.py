"""The approval page's words: what the owner chose, what pressing "Approve" shares, what an
approved request shared. Pure functions of a request, its clips and the form; the view
(:mod:`doorbell.ui.exports`) renders them, ``web/static/exports.js`` keeps the summary
current while the owner changes the form.
"""

from __future__ import annotations

import json
from typing import Any

from werkzeug.datastructures import MultiDict

#: A request's status as the owner reads it.
STATUS_WORDS = {
    "pending": "waiting for you",
    "approved": "approved",
    "denied": "denied",
    "expired": "expired undecided",
    "delivered": "downloaded",
    "closed": "closed",
}
SOURCE_WORDS = {
    "invitation": "by your invitation",
    "open_form": "through the open form",
    "owner": "entered by you",
    "self": "your own export",
}
#: Form fields of the approval that are kept (re-shown) when the approval is refused.
_BOX_FIELDS = ("box_x0", "box_y0", "box_x1", "box_y1")


def chosen_on_form(form: Any, config: Any) -> dict[str, Any]:
    """The owner's choices on the approval form, to show again after a refusal. A first
    visit (empty form) chooses nothing: no clip, no redaction, the configured defaults."""
    if form is None:
        form = MultiDict()
    chosen: dict[str, Any] = {
        "clips": set(form.getlist("clip")),
        "faces": form.get("redact_faces") in ("on", "1", "true", "yes"),
        "method": form.get("redact_method", "pixelate"),
        "regions": form.get("regions", "")[:20_000],
        "keep": form.get("keep", "")[:20_000],
        "box_kind": form.get("box_kind", "redact"),
        "days": form.get("days") or f"{config.bundle_expiry_days:g}",
        "limit": form.get("download_limit") or str(config.download_limit),
        "deny_reason": form.get("reason", "")[:1000],
    }
    for name in _BOX_FIELDS:
        chosen[name] = form.get(name, "")[:32]
    return chosen


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def approval_summary(found: Any, clips: list[Any], chosen: dict[str, Any]) -> str:
    """What pressing "Approve" will share, in one sentence (exports.js keeps it current)."""
    picked = [c for c in clips if c.id in chosen["clips"]]
    if not picked:
        return "No clip chosen yet: tick the clips to share."
    seconds = sum(c.duration_s or 0 for c in picked)
    parts = [f"{_plural(len(picked), 'clip')}, {seconds:.0f} s"]
    if chosen["faces"]:
        parts.append("faces blurred" if chosen["method"] != "fill" else "faces filled")
    regions = _count_shapes(chosen["regions"]) + (
        1 if all(chosen[n] for n in _BOX_FIELDS) and chosen["box_kind"] != "keep" else 0
    )
    keep = _count_shapes(chosen["keep"]) + (
        1 if all(chosen[n] for n in _BOX_FIELDS) and chosen["box_kind"] == "keep" else 0
    )
    if regions:
        parts.append(_plural(regions, "region") + " redacted")
    if keep:
        parts.append(_plural(keep, "kept area"))
    if len(parts) == 1:
        parts.append("no redaction")
    who = found.fields.requester + (
        f", {found.fields.organisation}" if found.fields.organisation else ""
    )
    parts.append(f"to {who}")
    parts.append(f"expires in {chosen['days']} days")
    parts.append(_plural(int(chosen["limit"]) if chosen["limit"].isdigit() else 0, "download"))
    return ", ".join(parts) + "."


def _count_shapes(text: str) -> int:
    try:
        shapes = json.loads(text) if text else []
    except ValueError:
        return 0
    return len(shapes) if isinstance(shapes, list) else 0


def redaction_in_words(redaction: dict[str, Any] | None) -> str:
    """An approved request's redaction (the spec's dict) for people."""
    if not redaction:
        return "none: the clips are shared as recorded"
    what = redaction.get("what", {})
    method = redaction.get("method", {}).get("name", "pixelate")
    parts = []
    if what.get("faces"):
        parts.append("faces")
    if what.get("regions"):
        parts.append(_plural(len(what["regions"]), "region"))
    if what.get("keep"):
        parts.append(f"everything outside {_plural(len(what['keep']), 'kept area')}")
    if not parts:
        return "none: the clips are shared as recorded"
    verb = "filled black" if method == "fill" else "pixelated"
    return f"{' and '.join(parts)} {verb}"
