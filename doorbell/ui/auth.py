"""Unlock, lock, and the browser's check that the audit log never shrank or forked.

Unlock: the passphrase unwraps the owner key (in this process's memory, for this session
only); the session id is rotated; the owner cosigns the current audit checkpoint. Failures
are audited with the client address and slow the next attempt down (see
:class:`doorbell.ui.guard.UnlockThrottle`), under a flat flask-limiter rate limit.

Consistency: the browser keeps the last cosigned checkpoint it saw (size and root, in
``localStorage``) and asks ``/checkpoint/consistency?size=&root=`` after each unlock. The
server builds the consistency proof from that size to now and verifies it against the root
*the browser supplied*: a log that was rolled back or rewritten since the browser last
looked fails here, whatever the server's own tables now say. Why verify on the server and
not in JavaScript: the JavaScript comes from this same server, so checking in the browser
would not defend against a compromised server either; what it must defend against is a log
changed on disk, and for that the server-side check is as good and reuses the tested RFC
9162 verifier instead of a second, untested one in JS. The proof is returned too, for
anyone who wants to check it independently.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

from flask import (
    Blueprint,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from doorbell.audit.merkle import verify_consistency
from doorbell.audit.note import parse_checkpoint, parse_note
from doorbell.errors import AgeError, AuditError, KeyFileError, PassphraseError
from doorbell.keys import OWNER_COSIGNER_NAME
from doorbell.ui.guard import passive, public
from doorbell.ui.sessions import UnlockedOwner, current_session

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)

MAX_PASSPHRASE_CHARS = 1024


def _state() -> Any:
    return current_app.extensions["doorbell"]


def _safe_next(target: str | None) -> str:
    """Only local paths: never an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("events.timeline")
    return target


@bp.get("/unlock")
@public
def unlock() -> Any:
    if getattr(session, "owner", None) is not None:
        return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/unlock.html", next=request.args.get("next", ""), error=None)


@bp.post("/unlock")
@public
def unlock_post() -> Any:
    state = _state()
    client = request.remote_addr or "unknown"
    next_url = request.form.get("next", "")
    with state.limiter.limit(current_app.config.get("DOORBELL_UNLOCK_RATE", "10 per minute")):
        wait = state.throttle.wait_s(client)
        if wait > 0:
            message = f"Too many wrong passphrases. Wait {int(wait) + 1} s and try again."
            page = render_template("auth/unlock.html", next=next_url, error=message)
            return page, 429, {"Retry-After": str(int(wait) + 1)}
        passphrase = request.form.get("passphrase", "")
        try:
            if not passphrase or len(passphrase) > MAX_PASSPHRASE_CHARS:
                raise PassphraseError("empty or overlong passphrase")
            keys = state.vault.unlock(passphrase)
        except (PassphraseError, AgeError, KeyFileError) as exc:
            failures = state.throttle.failed(client)
            state.record(
                "unknown", "web.unlock_failed", "", {"client": client, "failures": failures}
            )
            log.info("unlock failed from %s (%s)", client, type(exc).__name__)
            message = "That passphrase did not unlock the owner key."
            return render_template("auth/unlock.html", next=next_url, error=message), 401
    state.throttle.succeeded(client)
    record = current_session()
    state.sessions.rotate(record)
    record.clear()
    owner = UnlockedOwner(keys.identity, keys.cosigning_key, state.clock())
    record.owner = owner
    record.last_active = state.clock()
    state.record("owner", "web.unlocked", "", {"client": client})
    owner.checkpoint = _cosign(state, keys.cosigning_key)
    return redirect(_safe_next(next_url))


def _cosign(state: Any, cosigning_key: Any) -> dict[str, Any]:
    """Cosign the current checkpoint; a refusal (rollback, fork) is kept to show loudly."""
    try:
        note = state.audit.cosign(cosigning_key, OWNER_COSIGNER_NAME)
    except AuditError as exc:
        state.record("owner", "audit.cosign_refused", "", {"reason": str(exc)[:500]})
        return {"error": str(exc)}
    checkpoint = parse_checkpoint(parse_note(note).text)
    return {
        "size": checkpoint.size,
        "root": base64.b64encode(checkpoint.root_hash).decode(),
        "note": note.decode(),
    }


@bp.post("/lock")
def lock() -> Any:
    state = _state()
    record = current_session()
    state.lock_session(record, reason="button")
    state.sessions.rotate(record)
    return redirect(url_for("auth.unlock"))


@bp.get("/session")
@public
@passive
def session_state() -> Any:
    """Lock state for the page's poll (no data): {"unlocked": bool, "idle_left_s": n}."""
    state = _state()
    owner = getattr(session, "owner", None)
    if owner is None:
        return jsonify(unlocked=False, idle_left_s=0)
    left = state.config.web.idle_lock_s - (state.clock() - session.last_active)
    return jsonify(unlocked=True, idle_left_s=max(0, int(left)))


@bp.get("/checkpoint/consistency")
@passive
def consistency() -> Any:
    """Is the log now an extension of the browser's stored checkpoint (``size``, ``root``)?"""
    state = _state()
    current = session.owner.checkpoint if session.owner else {}
    try:
        old_size = int(request.args.get("size", ""))
        old_root = base64.b64decode(request.args.get("root", ""), validate=True)
    except (ValueError, binascii.Error):
        return jsonify(ok=False, verdict="bad-request", message="size and root are required"), 400
    if old_size < 0 or len(old_root) != 32:
        return jsonify(ok=False, verdict="bad-request", message="bad size or root"), 400
    if "error" in current:
        return jsonify(ok=False, verdict="cosign-refused", message=current["error"])
    new_size = int(current.get("size", 0))
    new_root = base64.b64decode(current.get("root", ""))
    answer: dict[str, Any] = {"old_size": old_size, "new_size": new_size,
                              "new_root": current.get("root", "")}  # fmt: skip
    if old_size > new_size:
        message = f"The audit log shrank from {old_size} to {new_size} entries since you looked."
        return jsonify(ok=False, verdict="shrank", message=message, **answer)
    if old_size == 0:
        return jsonify(ok=True, verdict="ok", proof=[], **answer)
    try:
        proof = state.audit.consistency_proof(old_size, new_size)
        verify_consistency(old_size, new_size, old_root, new_root, proof)
    except AuditError as exc:
        message = (
            f"The audit log is not an extension of the one you saw at {old_size} entries: "
            f"history was rewritten ({exc})."
        )
        return jsonify(ok=False, verdict="forked", message=message, **answer)
    encoded = [base64.b64encode(p).decode() for p in proof]
    return jsonify(ok=True, verdict="ok", proof=encoded, **answer)
