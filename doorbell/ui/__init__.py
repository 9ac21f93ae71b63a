"""The owner's web UI: :func:`create_app` and one blueprint per feature.

Blueprints: :mod:`~doorbell.ui.auth` (unlock, lock, checkpoint consistency),
:mod:`~doorbell.ui.events` (timeline, thumbnails, playback), :mod:`~doorbell.ui.live`
(live view, server-sent events), :mod:`~doorbell.ui.audit` (the log and its verdict),
:mod:`~doorbell.ui.settings` (configuration and passphrase). Templates and static files live
in ``web/`` (the repository) or ``doorbell/web`` (inside the wheel).

Nothing happens at import time: :func:`create_app` builds the app, opens the index and the
audit log of the data dir, and returns. :func:`close_app` closes them.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask, render_template
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from doorbell.config import Config
from doorbell.datadir import DataDir
from doorbell.errors import KeyFileError
from doorbell.store import IndexReader, Store
from doorbell.ui.guard import UnlockThrottle, check_host, gate, security_headers
from doorbell.ui.sessions import (
    MemorySession,
    MemorySessionInterface,
    SessionStore,
    reuse_signed_csrf,
)
from doorbell.ui.state import LiveFeed
from doorbell.ui.unlockgate import FailureLedger, PassphraseGate
from doorbell.ui.vault import Vault
from doorbell.webserver import address_key

if TYPE_CHECKING:
    from doorbell.audit.log import AuditLog

log = logging.getLogger(__name__)

#: Largest request body accepted (forms, polygons); uploads are not a thing here.
MAX_CONTENT_LENGTH = 256 * 1024
#: Flat rate limit on unlock attempts per client address (flask-limiter, in memory).
UNLOCK_RATE_LIMIT = "10 per minute"
#: While unlocked, the owner cosigns the grown log at least this often (seconds), so that a
#: compromised recorder holding device.key can rewrite at most this much unseen (issue 17).
COSIGN_EVERY_S = 180.0


def web_root() -> Path:
    """Where templates/ and static/ are: inside the package (wheel) or next to it (repo)."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "web", package.parent / "web"):
        if (candidate / "templates").is_dir():
            return candidate
    raise FileNotFoundError(f"web/ assets not found next to {package}; reinstall doorbell")


@dataclass
class WebState:
    """Everything the blueprints share, kept in ``app.extensions["doorbell"]``."""

    config: Config
    data_dir: Path
    clock: Callable[[], float]
    wall_clock: Callable[[], float]
    vault: Vault
    store: Store
    audit: AuditLog
    sessions: SessionStore
    throttle: UnlockThrottle
    limiter: Limiter
    timeline: IndexReader
    live: LiveFeed
    #: admits one owner-passphrase check (scrypt, 256 MiB) at a time, fairly: ui/unlockgate.py
    passphrase_gate: PassphraseGate
    #: wrong and refused passphrase checks, audited in summary per burst: ui/unlockgate.py
    failure_ledger: FailureLedger
    tls_fingerprint: str = ""
    config_lock: threading.Lock = field(default_factory=threading.Lock)
    sweeper: IdleSweeper | None = None
    #: monotonic time of the last cosignature made by :meth:`cosign_while_unlocked`
    last_cosign: float = 0.0

    def record(
        self, actor: str, action: str, object: str = "", details: dict[str, Any] | None = None
    ) -> None:
        """Append an audit entry (failures propagate: an unaudited view must not happen)."""
        self.audit.append(actor, action, object, details or {})

    def lock_session(self, record: MemorySession, *, reason: str) -> None:
        """Drop the owner identity from ``record`` and audit why."""
        if record.owner is None:
            return
        record.owner = None
        record.clear()  # new CSRF token too
        self.record("owner", "web.locked", "", {"reason": reason})

    def session_locked(self, record: MemorySession, reason: str) -> None:
        """The session store locked ``record`` by itself (evicted, shutdown): audit it."""
        record.clear()
        self.record("owner", "web.locked", "", {"reason": reason})

    def sweep_idle(self) -> int:
        """Lock every session idle for longer than ``web.idle_lock_s``; return how many.

        Run periodically by :class:`IdleSweeper`, so an idle identity leaves memory without
        waiting for that browser's next request.
        """
        now = self.clock()
        count = 0
        for record in self.sessions.unlocked_sessions():
            if now - record.last_active > self.config.web.idle_lock_s:
                self.lock_session(record, reason="idle")
                count += 1
        return count

    def cosign_while_unlocked(self) -> bool:
        """Cosign the log as the owner if it grew and :data:`COSIGN_EVERY_S` passed since the
        last time, with the keys of the most recently active unlocked session (through the
        same anchor checks as at unlock). Returns True if a cosignature was attempted."""
        now = self.clock()
        if now - self.last_cosign < COSIGN_EVERY_S:
            return False
        sessions = [
            s
            for s in self.sessions.unlocked_sessions()
            if s.owner is not None and "error" not in s.owner.checkpoint
        ]
        if not sessions:
            return False
        record = max(sessions, key=lambda s: s.last_active)
        owner = record.owner
        if owner is None or int(owner.checkpoint.get("size", 0)) >= self.audit.size:
            return False
        from doorbell.ui.auth import cosign_as_owner
        from doorbell.ui.vault import OwnerKeys

        self.last_cosign = now
        result = cosign_as_owner(self, OwnerKeys(owner.identity, owner.cosigning_key))
        for other in sessions:
            if other.owner is not None:
                other.owner.checkpoint = result
        return True


class IdleSweeper:
    """A named daemon thread calling :meth:`WebState.sweep_idle` every ``interval_s``."""

    def __init__(self, state: WebState, interval_s: float) -> None:
        self._state = state
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="web-idle-sweep", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._state.sweep_idle()
                self._state.cosign_while_unlocked()
                self._state.failure_ledger.flush()
            except Exception:  # an audit failure must not end the sweeping
                log.exception("idle sweep failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)


def _tls_fingerprint(data_dir: Path) -> str:
    from doorbell.tls import certificate_fingerprint

    try:
        return certificate_fingerprint(DataDir(data_dir).tls_cert)
    except (OSError, ValueError):
        return ""


def _open_audit(data_dir: Path, config: Config, clock: Callable[[], float]) -> AuditLog:
    from doorbell.audit.devicekey import load_device_signer
    from doorbell.audit.log import AuditLog

    try:
        signer = load_device_signer(DataDir(data_dir).keys)
    except KeyFileError as exc:
        log.warning("audit: appending without signing (%s); the recorder signs", exc)
        signer = None
    return AuditLog.open(
        data_dir,
        signer=signer,
        clock=clock,
        checkpoint_interval_s=config.audit.checkpoint_interval_s,
    )


def create_app(
    config: Config,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
    vault: Vault | None = None,
    live: LiveFeed | None = None,
    secret_key: bytes | None = None,
) -> Flask:
    """Build the owner's web app for ``config`` (``data_dir`` overrides the config's).

    ``clock`` (monotonic seconds) drives the idle lock and unlock delays; ``wall_clock``
    (epoch seconds) dates audit entries and pages. ``vault`` defaults to the key file of
    the data dir; ``live`` to a subscriber of ``config.live.socket_path`` (started lazily).
    Raises :class:`doorbell.errors.StorageError` if the data dir or its index is unusable.
    """
    from doorbell.live.socketpath import resolve_live_socket
    from doorbell.settingsfile import with_owner_settings
    from doorbell.ui import audit, auth, events, settings
    from doorbell.ui import live as live_view
    from doorbell.ui.vault import KeyFileVault

    root = Path(data_dir) if data_dir is not None else config.data_dir
    if data_dir is not None:
        config = config.with_data_dir(root)
    config = with_owner_settings(config)  # <data_dir>/settings.toml, saved by this UI
    assets = web_root()
    app = Flask(
        "doorbell.ui",
        template_folder=str(assets / "templates"),
        static_folder=str(assets / "static"),
        static_url_path="/static",
    )
    app.config.update(
        # Only flask-wtf uses this (to sign its token); sessions themselves are server-side.
        SECRET_KEY=secret_key or secrets.token_bytes(32),
        SESSION_COOKIE_NAME="__Host-doorbell" if config.web.tls else "doorbell",
        SESSION_COOKIE_SECURE=config.web.tls,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        MAX_CONTENT_LENGTH=MAX_CONTENT_LENGTH,
        MAX_FORM_MEMORY_SIZE=MAX_CONTENT_LENGTH,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the server-side session
        # The referrer check of flask-wtf cannot work with Referrer-Policy: no-referrer; the
        # token plus the SameSite=Strict session cookie stop cross-site posts.
        WTF_CSRF_SSL_STRICT=False,
        SEND_FILE_MAX_AGE_DEFAULT=300,
        TEMPLATES_AUTO_RELOAD=False,
    )
    store = Store.open(root, clock=wall_clock)
    sessions = SessionStore(clock)
    app.session_interface = MemorySessionInterface(sessions)
    # Host first (a foreign Host gets nothing, not even a session); then the session gate,
    # before the CSRF check: without a session the answer is 401 or a redirect.
    app.before_request(check_host)
    app.before_request(gate)
    CSRFProtect(app)
    app.before_request(reuse_signed_csrf)
    limiter = Limiter(
        key_func=lambda: _client_address(),
        app=app,
        storage_uri="memory://",
        default_limits=[],
        headers_enabled=False,
    )
    audit_log = _open_audit(root, config, wall_clock)

    def record(actor: str, action: str, object: str, details: dict[str, Any]) -> None:
        audit_log.append(actor, action, object, details)  # as WebState.record

    state = WebState(
        config=config,
        data_dir=root,
        clock=clock,
        wall_clock=wall_clock,
        vault=vault if vault is not None else KeyFileVault(root),
        store=store,
        audit=audit_log,
        sessions=sessions,
        throttle=UnlockThrottle(clock),
        limiter=limiter,
        timeline=IndexReader(root),
        live=live if live is not None else live_view.LiveHub(str(resolve_live_socket(config).path)),
        tls_fingerprint=_tls_fingerprint(root),
        passphrase_gate=PassphraseGate(clock),
        failure_ledger=FailureLedger(record, clock, wall_clock),
    )
    app.extensions["doorbell"] = state
    from doorbell.localtime import LocalTime

    local_time = LocalTime.from_setting(config.web.timezone)
    app.extensions["doorbell_localtime"] = local_time
    app.add_template_filter(local_time.format, "localtime")
    app.add_template_filter(local_time.format_clock, "localclock")
    sessions.on_lock = state.session_locked
    state.sweeper = IdleSweeper(state, max(1.0, min(30.0, config.web.idle_lock_s / 4)))
    state.sweeper.start()
    app.after_request(security_headers)
    for blueprint in (auth.bp, events.bp, live_view.bp, audit.bp, settings.bp):
        app.register_blueprint(blueprint)
    from doorbell.ui import notifications

    app.register_blueprint(notifications.bp)
    from doorbell.ui import exports as exports_view

    exports_view.install(app)  # requests (portal), exports, transparency

    @app.context_processor
    def globals_for_templates() -> dict[str, Any]:
        from flask import session

        return {
            "unlocked": getattr(session, "owner", None) is not None,
            "tls_fingerprint": state.tls_fingerprint,
            "idle_lock_s": config.web.idle_lock_s,
            "time_zone": local_time.name(wall_clock()),
            "time_zone_key": local_time.key,
        }

    @app.errorhandler(CSRFError)
    def csrf_refused(error: CSRFError) -> Any:
        return render_template("error.html", status=400, message=error.description), 400

    @app.errorhandler(RateLimitExceeded)
    def rate_limited(error: RateLimitExceeded) -> Any:
        message = "Too many unlock attempts. Wait a minute and try again."
        return render_template("error.html", status=429, message=message), 429

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:
        if error.code in (206, 304, 416) or error.code is None or error.code < 400:
            return error
        message = "There is no page at this address." if error.code == 404 else error.description
        return render_template("error.html", status=error.code, message=message), error.code

    return app


def _client_address() -> str:
    from flask import request

    # Keyed like every other per-address limit: a host can use every address of its /64.
    return address_key(request.remote_addr or "unknown")


def close_app(app: Flask) -> None:
    """Lock every session and close the live feed, the audit log and the index."""
    state: WebState = app.extensions["doorbell"]
    if state.sweeper is not None:
        state.sweeper.stop()
    try:
        state.failure_ledger.flush(everything=True)
    except Exception:  # the log may be what failed; closing must go on
        log.exception("could not audit the last burst of failed passphrase checks")
    state.sessions.lock_all("shutdown")
    if "doorbell_exports" in app.extensions:
        app.extensions["doorbell_exports"].close()
    state.live.close()
    state.audit.close()
    state.timeline.close()
    state.store.close()
