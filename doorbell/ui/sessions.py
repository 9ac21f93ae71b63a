"""Server-side sessions held in this process's memory only.

The browser's cookie carries one thing: an opaque random id (32 bytes from :mod:`secrets`).
Everything else (the CSRF token, the unlocked owner identity, the last activity time) stays
in a :class:`MemorySession` in this process. So a restart locks every session (nothing to
resume from), a stolen cookie jar holds no key material, and the cookie is useless once the
session is locked or the server restarts.

Flask's own ``session`` object *is* our :class:`MemorySession` (through
:class:`MemorySessionInterface`), so flask-wtf keeps its CSRF token server-side too.

Anonymous sessions (someone who only loaded the unlock page or the requester portal) are
not kept here at all (issue 17, finding 3: 600 anonymous ``GET /unlock`` used to evict the
owner's own pre-unlock session, whose CSRF token then went missing). Their few values (the
CSRF token) travel in the cookie itself, signed with the app's secret key and dated
(``a.`` + an :mod:`itsdangerous` token, valid :data:`ANONYMOUS_TTL_S`); only an unlocked
session has server-side state. So no number of anonymous visitors can push anyone out.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.datastructures import CallbackDict

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from doorbell.age.identities import X25519Identity

#: Anonymous (never unlocked) sessions kept at most; the oldest go first.
MAX_ANONYMOUS_SESSIONS = 512
#: An anonymous session unused for this long (seconds) is forgotten (its signed cookie
#: expires after as long).
ANONYMOUS_TTL_S = 3600.0
#: Prefix of a cookie that carries a signed anonymous session instead of an id.
ANONYMOUS_PREFIX = "a."
#: Largest anonymous cookie accepted or written (it holds a CSRF token, a few fields).
MAX_ANONYMOUS_COOKIE = 2048
#: Unlocked sessions kept at most (one owner, a few devices); the oldest are locked first.
MAX_UNLOCKED_SESSIONS = 16


@dataclass
class UnlockedOwner:
    """What an unlocked session holds: the owner's age identity and cosigning key.

    ``identity`` decrypts clips and thumbnails; ``cosigning_key`` (Ed25519) cosigns audit
    checkpoints. Both live only here, in memory, until the session locks.
    """

    identity: X25519Identity
    cosigning_key: Ed25519PrivateKey
    unlocked_at: float
    #: the checkpoint cosigned at this unlock: {"size": int, "root": hex, "note": str}
    checkpoint: dict[str, Any] = field(default_factory=dict)


class MemorySession(CallbackDict, SessionMixin):
    """One server-side session: a dict (for Flask and flask-wtf) plus the owner slot."""

    def __init__(self, sid: str, now: float, initial: dict[str, Any] | None = None) -> None:
        def on_update(_: CallbackDict) -> None:
            self.modified = True

        super().__init__(initial or {}, on_update)
        self.sid = sid
        self.created_at = now
        self.last_seen = now
        #: last time the owner did something (passive polling does not count)
        self.last_active = now
        self.owner: UnlockedOwner | None = None
        #: (raw CSRF token, its signed form) of an unlocked session: see reuse_signed_csrf
        self.signed_csrf: tuple[str, str] | None = None
        self.modified = False
        #: the cookie must be (re)sent: new session or a rotated id
        self.send_cookie = False

    @property
    def unlocked(self) -> bool:
        return self.owner is not None


def current_session() -> MemorySession:
    """This request's :class:`MemorySession` itself (not Flask's proxy to it)."""
    from flask import session

    record = session._get_current_object()  # type: ignore[attr-defined]
    if not isinstance(record, MemorySession):  # pragma: no cover - our interface made it
        raise TypeError("the session is not a doorbell MemorySession")
    return record


def reuse_signed_csrf() -> None:
    """``before_request`` (after flask-wtf's check): an unlocked session's pages reuse the
    signed CSRF token of its earlier pages instead of signing it again on every page.

    flask-wtf signs the session's raw token anew for each request (an :mod:`itsdangerous`
    serializer per call): about an eighth of a timeline view's CPU under load (issue 17).
    With ``WTF_CSRF_TIME_LIMIT = None`` the signed token's date is never checked, so the
    first signed form of a raw token stays valid as long as the raw token does. The pair is
    kept on the server-side session and compared with the raw token on every request: a
    new raw token (a lock clears the session) gets a freshly signed one. Anonymous sessions
    (signed cookies, not kept here) are left alone.
    """
    from flask import g, session
    from flask_wtf.csrf import generate_csrf

    record = session._get_current_object()  # type: ignore[attr-defined]
    if not isinstance(record, MemorySession) or record.owner is None:
        return
    raw = record.get("csrf_token")
    if record.signed_csrf is not None and raw is not None and record.signed_csrf[0] == raw:
        g.csrf_token = record.signed_csrf[1]  # what generate_csrf() returns for this request
        return
    signed = generate_csrf()  # signs the session's raw token (made now if there is none)
    if raw is not None and record.get("csrf_token") == raw:  # not cleared meanwhile (a lock)
        record.signed_csrf = (raw, signed)


class SessionStore:
    """All sessions of this process, by id. Thread-safe."""

    def __init__(
        self,
        clock: Callable[[], float],
        on_lock: Callable[[MemorySession, str], None] | None = None,
    ) -> None:
        self._clock = clock
        self._sessions: OrderedDict[str, MemorySession] = OrderedDict()
        self._lock = threading.Lock()
        #: called (outside the store's lock) for every session this store locks by itself
        self.on_lock = on_lock

    def _locked(self, records: list[MemorySession], reason: str) -> None:
        if self.on_lock is not None:
            for record in records:
                self.on_lock(record, reason)

    def get(self, sid: str) -> MemorySession | None:
        """The live session with this id, or None (unknown, or an expired anonymous one)."""
        now = self._clock()
        with self._lock:
            found = self._sessions.get(sid)
            if found is None:
                return None
            if found.owner is None and now - found.last_seen > ANONYMOUS_TTL_S:
                del self._sessions[sid]
                return None
            found.last_seen = now
            self._sessions.move_to_end(sid)
            return found

    def new(self) -> MemorySession:
        """A fresh, not yet stored session with a new random id."""
        created = MemorySession(secrets.token_urlsafe(32), self._clock())
        created.send_cookie = True
        return created

    def keep(self, record: MemorySession) -> None:
        """Store ``record`` (again) under its id, evicting the oldest beyond the caps."""
        with self._lock:
            self._sessions[record.sid] = record
            self._sessions.move_to_end(record.sid)
            evicted = self._evict()
        self._locked(evicted, "evicted")

    def rotate(self, record: MemorySession) -> None:
        """Give ``record`` a new id (at unlock and lock: no session fixation)."""
        with self._lock:
            self._sessions.pop(record.sid, None)
            record.sid = secrets.token_urlsafe(32)
            record.send_cookie = True
            self._sessions[record.sid] = record

    def drop(self, record: MemorySession) -> None:
        with self._lock:
            self._sessions.pop(record.sid, None)

    def lock_all(self, reason: str = "shutdown") -> int:
        """Lock every unlocked session (each reported to ``on_lock``); return how many."""
        with self._lock:
            locked = []
            for record in self._sessions.values():
                if record.owner is not None:
                    record.owner = None
                    locked.append(record)
        self._locked(locked, reason)
        return len(locked)

    def unlocked_sessions(self) -> list[MemorySession]:
        with self._lock:
            return [s for s in self._sessions.values() if s.owner is not None]

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def _evict(self) -> list[MemorySession]:
        anonymous = [sid for sid, s in self._sessions.items() if s.owner is None]
        for sid in anonymous[: max(0, len(anonymous) - MAX_ANONYMOUS_SESSIONS)]:
            del self._sessions[sid]
        unlocked = [sid for sid, s in self._sessions.items() if s.owner is not None]
        evicted = []
        for sid in unlocked[: max(0, len(unlocked) - MAX_UNLOCKED_SESSIONS)]:
            self._sessions[sid].owner = None
            evicted.append(self._sessions[sid])
        return evicted


class MemorySessionInterface(SessionInterface):
    """Flask session interface over a :class:`SessionStore`: the cookie holds the id of an
    unlocked session, or a signed anonymous session (module doc)."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    def _signer(self, app: Flask) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(app.secret_key or b"", salt="doorbell-anonymous-session")

    def open_session(self, app: Flask, request: Request) -> MemorySession:
        value = request.cookies.get(self.get_cookie_name(app))
        if value and value.startswith(ANONYMOUS_PREFIX) and len(value) <= MAX_ANONYMOUS_COOKIE:
            try:
                data = self._signer(app).loads(
                    value[len(ANONYMOUS_PREFIX) :], max_age=int(ANONYMOUS_TTL_S)
                )
            except BadSignature:
                data = None
            if isinstance(data, dict):
                record = self.store.new()
                record.update(data)
                record.modified = False
                record.send_cookie = False
                return record
        elif value:
            found = self.store.get(value)
            if found is not None:
                return found
        return self.store.new()

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not isinstance(session, MemorySession):  # pragma: no cover - Flask gave us ours
            return
        name = self.get_cookie_name(app)
        if session.owner is None:
            self.store.drop(session)  # locked just now: nothing of it stays server-side
            if not session or not (session.modified or session.send_cookie):
                return  # nothing worth a cookie (a static file, a refused request)
            value = ANONYMOUS_PREFIX + self._signer(app).dumps(dict(session))
            if len(value) > MAX_ANONYMOUS_COOKIE:  # pragma: no cover - only a CSRF token
                raise ValueError("anonymous session too large for its cookie")
            session.send_cookie = False
        else:
            self.store.keep(session)
            if not session.send_cookie:
                response.vary.add("Cookie")
                return
            value = session.sid
            session.send_cookie = False
        response.set_cookie(
            name,
            value,
            httponly=True,
            secure=self.get_cookie_secure(app),
            samesite=self.get_cookie_samesite(app),
            path="/",
        )
        response.vary.add("Cookie")


def current_owner() -> UnlockedOwner:
    """The unlocked owner of this request's session; 401 if it is locked.

    Views behind the session gate (:func:`doorbell.ui.guard.gate`) only run unlocked, so the
    401 here is a second line, never the first.
    """
    from flask import abort

    owner = current_session().owner
    if owner is None:
        abort(401)
    return owner
