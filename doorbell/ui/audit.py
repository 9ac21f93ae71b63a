"""The audit log page: entries newest first (filterable), the verify verdict, the checkpoint.

Verification rehashes the whole log, so its verdict is cached per log size for
:data:`VERIFY_CACHE_S` seconds; "verify now" forces a fresh run.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue

from doorbell.audit.entries import EntryError, decode_entry
from doorbell.errors import AuditError, DoorbellError
from doorbell.ui.sessions import current_owner
from doorbell.ui.state import web_state

bp = Blueprint("audit", __name__)

PAGE_SIZE = 50
VERIFY_CACHE_S = 300.0
#: A filtered view scans at most this many entries back (bounded work per request).
MAX_SCAN = 100_000

_verify_lock = threading.Lock()


def _matches(entry: dict[str, Any], text: str, action: str) -> bool:
    if action and not str(entry.get("action", "")).startswith(action):
        return False
    if text:
        blob = json.dumps(entry, ensure_ascii=False).lower()
        return text.lower() in blob
    return True


def _entries(log: Any, page: int, text: str, action: str) -> tuple[list[dict[str, Any]], bool]:
    """Entries of ``page`` (1-based, newest first) and whether an older page exists."""
    size = log.size
    wanted_from = (page - 1) * PAGE_SIZE
    found: list[dict[str, Any]] = []
    matched = 0
    end = size
    scanned = 0
    while end > 0 and scanned < MAX_SCAN:
        start = max(0, end - 512)
        block = list(log.entries(start))[: end - start]
        for _, leaf in reversed(block):
            scanned += 1
            try:
                entry = decode_entry(leaf)
            except EntryError:
                entry = {"action": "(undecodable)", "index": -1, "details": {}}
            if not _matches(entry, text, action):
                continue
            if matched >= wanted_from:
                if len(found) == PAGE_SIZE:
                    return found, True
                found.append(entry)
            matched += 1
        end = start
    return found, False


def _verdict(state: Any, force: bool) -> dict[str, Any]:
    cache = state.__dict__.setdefault("_verify_cache", {})
    size = state.audit.size
    now = state.clock()
    with _verify_lock:
        cached = cache.get("result")
        if not force and cached and cached["size"] == size and now - cached["at"] < VERIFY_CACHE_S:
            return cached
        try:
            result = state.audit.verify()
            ok = bool(result.ok)
            problems = [result.problem] if result.problem else []
            problems += list(result.warnings)
            summary = result.summary()
        except (AuditError, DoorbellError, ImportError) as exc:
            ok, problems, summary = False, [str(exc)], ""
        cached = {"size": size, "at": now, "ok": ok, "problems": problems, "summary": summary}
        cache["result"] = cached
        return cached


def _replication(state: Any) -> dict[str, Any] | None:
    """The off-site copy's status as the replicator last saved it (issue 22); None when no
    copy is configured. Read from replicate/state.json: rendering never touches the network."""
    import datetime

    from doorbell.replicate.state import read_status

    destination = state.config.replicate.destination
    if not destination:
        return None
    status = read_status(state.config.data_dir)
    if status is None:
        return {"destination": destination, "never": True}

    def when(stamp: float | None) -> str:
        if stamp is None:
            return "never"
        return datetime.datetime.fromtimestamp(stamp, tz=datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")

    return {
        "destination": destination,
        "never": False,
        "connected": status.connected,
        "last_copied": when(status.last_copied_at),
        "last_success": when(status.last_success_at),
        "bytes_behind": status.bytes_behind,
        "error": status.last_error,
        "conflict": status.witness_conflict,
    }


@bp.get("/audit")
def audit_log() -> ResponseReturnValue:
    state = web_state()
    text = request.args.get("q", "")[:100]
    action = request.args.get("action", "")[:100]
    try:
        page = max(1, int(request.args.get("page", "1")))
    except ValueError:
        page = 1
    entries, more = _entries(state.audit, page, text, action)
    latest = state.audit.latest_checkpoint()
    return render_template(
        "audit/log.html",
        entries=entries,
        more=more,
        page=page,
        q=text,
        action=action,
        size=state.audit.size,
        verdict=_verdict(state, request.args.get("verify") == "1"),
        latest_checkpoint=latest.decode() if latest else "",
        cosigned=current_owner().checkpoint,
        replication=_replication(state),
        as_json=lambda value: json.dumps(value, ensure_ascii=False, sort_keys=True),
    )
