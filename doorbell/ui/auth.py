"""Unlock, lock, and the browser's check that the audit log never shrank or forked.

Unlock: the passphrase unwraps the owner key (in this process's memory, for this session
only; checked through :mod:`doorbell.ui.stepup`: one scrypt at a time, throttled, audited);
the session id is rotated; ``web.unlocked`` is audited *before* the session holds the key.
Then the log is checked against the owner anchor (:mod:`doorbell.audit.anchor`) and only
if it matches does the owner cosign the current checkpoint and the anchor move on. If the
anchor is missing or the log does not match it, nothing is cosigned, ``audit.anchor_missing``
or ``audit.anchor_mismatch`` is audited and every page shows a warning for this session;
the footage stays reachable. ``POST /audit/accept`` (passphrase again) lets the owner take
the log as it is as the new reference (``audit.anchor_reset``).

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
import re
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue

from doorbell.audit.anchor import ANCHOR_OBJECT
from doorbell.audit.merkle import verify_consistency
from doorbell.audit.note import parse_checkpoint, parse_note
from doorbell.errors import AuditError, PassphraseError, StorageError
from doorbell.keys import OWNER_COSIGNER_NAME
from doorbell.ui.guard import passive, public
from doorbell.ui.sessions import UnlockedOwner, current_owner, current_session
from doorbell.ui.state import web_state
from doorbell.ui.stepup import PassphraseRefused, check_passphrase

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)


#: What a ``next`` target may be: a local absolute path (and query), printable ASCII only.
_LOCAL_PATH = re.compile(r"/(?![/\\])[!-~]*")


def _safe_next(target: str | None) -> str:
    """Only local paths: never an open redirect.

    Browsers drop tabs and newlines inside URLs and read ``\\`` as ``/``, so ``/\t/evil``
    would become ``//evil``: the target must be ``/`` followed by printable ASCII without
    whitespace or backslash, not ``//``, with no scheme or host once parsed.
    """
    if not target or _LOCAL_PATH.fullmatch(target) is None or "\\" in target:
        return url_for("events.timeline")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return url_for("events.timeline")
    return target


@bp.get("/unlock")
@public
def unlock() -> ResponseReturnValue:
    if getattr(session, "owner", None) is not None:
        return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/unlock.html", next=request.args.get("next", ""), error=None)


@bp.post("/unlock")
@public
def unlock_post() -> ResponseReturnValue:
    state = web_state()
    client = request.remote_addr or "unknown"
    next_url = request.form.get("next", "")
    try:
        keys = check_passphrase(
            state,
            request.form.get("passphrase", ""),
            client,
            actor="unknown",
            failed_action="web.unlock_failed",
            refused_action="web.unlock_refused",
        )
    except PassphraseRefused as exc:
        page = render_template("auth/unlock.html", next=next_url, error=str(exc))
        return page, 429, {"Retry-After": str(int(exc.retry_s) + 1)}
    except PassphraseError:
        log.info("unlock failed from %s", client)
        message = "That passphrase did not unlock the owner key."
        return render_template("auth/unlock.html", next=next_url, error=message), 401
    record = current_session()
    state.sessions.rotate(record)
    record.clear()
    # Audit first: if the entry cannot be written, the session must not be unlocked.
    state.record("owner", "web.unlocked", "", {"client": client})
    owner = UnlockedOwner(keys.identity, keys.cosigning_key, state.clock())
    record.owner = owner
    record.last_active = state.clock()
    witness = _witness(state)
    owner.checkpoint = witness if witness is not None else _cosign(state, keys)
    state.last_cosign = state.clock()
    return redirect(_safe_next(next_url))


def _witness(state: Any) -> dict[str, Any] | None:
    """The off-site copy (issue 22) as a witness, before cosigning: a log behind or forked
    from the copy's checkpoints is not cosigned, is audited (``audit.witness_mismatch``) and
    shows the anchor-mismatch banner. None: no copy configured, unreachable, or it agrees."""
    from doorbell.replicate.witness import unlock_witness_check

    found = unlock_witness_check(state.config, state.audit)
    if found is not None:
        log.error("audit log disagrees with the off-site copy: %s", found["error"])
        state.record("owner", "audit.witness_mismatch", "", {"reason": found["error"][:500]})
    return found


def cosign_as_owner(state: Any, keys: Any) -> dict[str, Any]:
    """Check the log against the owner anchor and cosign (see :func:`_cosign`); used by the
    web process's periodic cosignature while unlocked."""
    return _cosign(state, keys)


def _cosign(state: Any, keys: Any, *, accept: bool = False) -> dict[str, Any]:
    """Check the log against the owner anchor, cosign, move the anchor on.

    Any refusal (anchor missing, log rewritten or rolled back, fork) is audited loudly (by
    :func:`doorbell.audit.anchor.owner_cosign`, the same check ``doorbell requests approve``
    runs) and kept in the session to show as a warning on every page; nothing is cosigned
    then. ``accept``: the owner explicitly takes the log as it is now as the new reference.
    """
    from doorbell.audit.anchor import AnchorError, AnchorMissing, owner_cosign
    from doorbell.keys import derive_owner_anchor_key

    try:
        note = owner_cosign(
            state.audit,
            derive_owner_anchor_key(keys.identity),
            keys.cosigning_key,
            OWNER_COSIGNER_NAME,
            accept=accept,
            clock=state.wall_clock,
        )
    except AnchorMissing as exc:
        log.warning("owner anchor missing: %s", exc)
        return {"error": str(exc), "anchor": "missing"}
    except AnchorError as exc:
        log.error("audit log does not match the owner anchor: %s", exc)
        return {"error": str(exc), "anchor": "mismatch"}
    except (AuditError, StorageError) as exc:
        return {"error": str(exc), "anchor": "refused"}
    checkpoint = parse_checkpoint(parse_note(note).text)
    return {
        "size": checkpoint.size,
        "root": base64.b64encode(checkpoint.root_hash).decode(),
        "note": note.decode(),
    }


@bp.post("/audit/accept")
def accept_log() -> ResponseReturnValue:
    """After a warning: the owner (passphrase again) takes the log as it is as the reference."""
    state = web_state()
    client = request.remote_addr or "unknown"
    owner = current_owner()
    try:
        keys = check_passphrase(
            state,
            request.form.get("passphrase", ""),
            client,
            actor="owner",
            failed_action="audit.accept_failed",
            refused_action="audit.accept_refused",
        )
    except PassphraseRefused as exc:
        return render_template("error.html", status=429, message=str(exc)), 429
    except PassphraseError as exc:
        return render_template("error.html", status=401, message=str(exc)), 401
    previous = owner.checkpoint.get("error", "")
    state.record(
        "owner",
        "audit.anchor_reset",
        ANCHOR_OBJECT,
        {"client": client, "previous_problem": previous[:500]},
    )
    owner.checkpoint = _cosign(state, keys, accept=True)
    return redirect(url_for("audit.audit_log"))


@bp.post("/lock")
def lock() -> ResponseReturnValue:
    state = web_state()
    record = current_session()
    state.lock_session(record, reason="button")
    state.sessions.rotate(record)
    return redirect(url_for("auth.unlock"))


@bp.get("/session")
@public
@passive
def session_state() -> ResponseReturnValue:
    """Lock state for the page's poll (no data): {"unlocked": bool, "idle_left_s": n}."""
    state = web_state()
    owner = getattr(session, "owner", None)
    if owner is None:
        return jsonify(unlocked=False, idle_left_s=0)
    left = state.config.web.idle_lock_s - (state.clock() - current_session().last_active)
    return jsonify(unlocked=True, idle_left_s=max(0, int(left)))


@bp.get("/checkpoint/consistency")
@passive
def consistency() -> ResponseReturnValue:
    """Is the log now an extension of the browser's stored checkpoint (``size``, ``root``)?"""
    state = web_state()
    owner = current_session().owner
    current = owner.checkpoint if owner else {}
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
    answer: dict[str, Any] = {
        "old_size": old_size,
        "new_size": new_size,
        "new_root": current.get("root", ""),
    }
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
