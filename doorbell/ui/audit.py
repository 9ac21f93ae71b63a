"""The audit log page: entries newest first, the verify verdict, the checkpoint.

Entries read as sentences with labelled details (:mod:`doorbell.ui.auditwords`), in the
pages' time zone; the log keeps UTC inside. Filters: kind of act (``kind``), a date range
(``from``/``to``, local dates, inclusive), free text (``q``) and an action prefix
(``action``). The verdict comes in plain words first, the technical detail behind a
disclosure.

Verification rehashes the whole log, so its verdict is cached per log size for
:data:`VERIFY_CACHE_S` seconds; "verify now" forces a fresh run.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue

from doorbell.audit.entries import EntryError, decode_entry
from doorbell.errors import AuditError, DoorbellError
from doorbell.ui.auditwords import ACT_KINDS, describe, plain_verdict
from doorbell.ui.sessions import current_owner
from doorbell.ui.state import local_time, web_state

bp = Blueprint("audit", __name__)

PAGE_SIZE = 25
VERIFY_CACHE_S = 300.0
#: A filtered view scans at most this many entries back (bounded work per request).
MAX_SCAN = 100_000

_verify_lock = threading.Lock()


@dataclass(frozen=True)
class EntryFilter:
    """Which entries the page shows (all of them when every part is empty)."""

    text: str = ""
    action: str = ""
    kind: str = ""
    since: float | None = None  # epoch seconds, inclusive
    until: float | None = None  # epoch seconds, exclusive


def _entry_time(entry: dict[str, Any]) -> float | None:
    try:
        text = str(entry.get("time", "")).replace("Z", "+00:00")
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _matches(entry: dict[str, Any], wanted: EntryFilter) -> bool:
    text, action = wanted.text, wanted.action
    name = str(entry.get("action", ""))
    if action and not name.startswith(action):
        return False
    if wanted.kind:
        prefixes = ACT_KINDS[wanted.kind][1]
        if not any(name == p or (p.endswith(".") and name.startswith(p)) for p in prefixes):
            return False
    if wanted.since is not None or wanted.until is not None:
        moment = _entry_time(entry)
        if moment is None:
            return False
        if wanted.since is not None and moment < wanted.since:
            return False
        if wanted.until is not None and moment >= wanted.until:
            return False
    if text:
        blob = json.dumps(entry, ensure_ascii=False).lower()
        return text.lower() in blob
    return True


def _entries(log: Any, page: int, wanted: EntryFilter) -> tuple[list[dict[str, Any]], bool]:
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
            if not _matches(entry, wanted):
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
    from doorbell.replicate.state import read_status

    destination = state.config.replicate.destination
    if not destination:
        return None
    status = read_status(state.config.data_dir)
    if status is None:
        return {"destination": destination, "never": True}

    def when(stamp: float | None) -> str:
        return "never" if stamp is None else local_time().format(stamp, seconds=True)

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


def _local_day(text: str, local: Any, *, next_day: bool = False) -> tuple[float | None, str]:
    """Epoch seconds of the start of a local date ``YYYY-MM-DD`` (or of the day after)."""
    try:
        day = datetime.strptime(text[:10], "%Y-%m-%d")
    except ValueError:
        return None, ""
    if next_day:
        day += timedelta(days=1)
    return local.parse_input(day.strftime("%Y-%m-%dT%H:%M")), text[:10]


@bp.get("/audit")
def audit_log() -> ResponseReturnValue:
    state = web_state()
    local = local_time()
    text = request.args.get("q", "")[:100]
    action = request.args.get("action", "")[:100]
    kind = request.args.get("kind", "")
    if kind not in ACT_KINDS:
        kind = ""
    since, day_from = _local_day(request.args.get("from", ""), local)
    until, day_to = _local_day(request.args.get("to", ""), local, next_day=True)
    wanted = EntryFilter(text=text, action=action, kind=kind, since=since, until=until)
    try:
        page = max(1, int(request.args.get("page", "1")))
    except ValueError:
        page = 1
    entries, more = _entries(state.audit, page, wanted)
    latest = state.audit.latest_checkpoint()
    verdict = _verdict(state, request.args.get("verify") == "1")
    headline, notes = plain_verdict(verdict["ok"], verdict["problems"])
    query = {"q": text, "action": action, "kind": kind, "from": day_from, "to": day_to}
    rows = []
    for entry in entries:
        moment = _entry_time(entry)
        rows.append(
            {
                "entry": entry,
                "when": local.format(moment, seconds=True) if moment is not None else "?",
                "described": describe(entry, local.format),
            }
        )
    return render_template(
        "audit/log.html",
        rows=rows,
        more=more,
        page=page,
        query={k: v for k, v in query.items() if v},
        q=text,
        action=action,
        kind=kind,
        day_from=day_from,
        day_to=day_to,
        act_kinds=ACT_KINDS,
        size=state.audit.size,
        verdict=verdict,
        headline=headline,
        notes=notes,
        latest_checkpoint=latest.decode() if latest else "",
        cosigned=current_owner().checkpoint,
        replication=_replication(state),
        as_json=lambda value: json.dumps(value, ensure_ascii=False, sort_keys=True),
    )
