"""What every request goes through: the session gate, idle lock, security headers, throttle.

- :func:`public` marks the few views that work without an unlocked session (the unlock page,
  static files, the lock state poll). Everything else is refused without one: a browser
  navigation is redirected to the unlock page, anything else gets 401, never data.
- Idle lock: a session whose owner did nothing for ``web.idle_lock_s`` seconds is locked
  (the identity dropped) before the request is handled. Views marked :func:`passive`
  (live frames, server-sent events, the lock poll), static files and unknown paths do not
  count as activity (a page left open that reloads its CSS must still lock).
- Headers: a strict Content-Security-Policy with no inline script, ``frame-ancestors
  'none'``, no referrer, nosniff, HSTS when serving TLS, and no caching of anything but
  static files.
- :func:`check_host`: only the Host names the owner configured (``web.hosts``) and this
  device's own names and addresses are answered; anything else gets 421 (issue 17: every
  Host was served, and invitation links were built from it). :func:`external_url` builds
  links from the configuration, never from the request's Host.
- :class:`UnlockThrottle`: a growing delay after failed unlocks, per client address
  (flask-limiter adds a flat rate limit on top; :mod:`doorbell.ui.stepup` one check at a time).
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Response, current_app, redirect, request, session, url_for
from werkzeug.wrappers import Response as BaseResponse

from doorbell.config import WebConfig
from doorbell.ui.state import web_state
from doorbell.webserver import address_key

F = TypeVar("F", bound=Callable[..., Any])

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; font-src 'self'; manifest-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def public(view: F) -> F:
    """Mark a view as reachable without an unlocked session."""
    view._doorbell_public = True  # type: ignore[attr-defined]
    return view


def passive(view: F) -> F:
    """Mark a view whose requests do not count as owner activity (polls, streams)."""
    view._doorbell_passive = True  # type: ignore[attr-defined]
    return view


def is_public(endpoint: str | None) -> bool:
    if endpoint is None:
        return True  # 404 / 405: nothing is served
    if endpoint == "static":
        return True
    view = current_app.view_functions.get(endpoint)
    return bool(getattr(view, "_doorbell_public", False))


def _is_passive(endpoint: str | None) -> bool:
    if endpoint in (None, "static"):
        return True  # static files and 404s are not the owner doing something (issue 17)
    view = current_app.view_functions.get(endpoint or "")
    return bool(getattr(view, "_doorbell_passive", False))


def wants_html() -> bool:
    """True for a browser navigation (GET asking for HTML), False for fetch/XHR/media."""
    if request.method != "GET":
        return False
    if request.headers.get("Sec-Fetch-Mode") not in (None, "navigate"):
        return False
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "text/html"


def gate() -> BaseResponse | None:
    """``before_request``: apply the idle lock, then refuse non-public views without a session."""
    state = web_state()
    now = state.clock()
    record = session._get_current_object()  # type: ignore[attr-defined]
    owner = getattr(record, "owner", None)
    if owner is not None and now - record.last_active > state.config.web.idle_lock_s:
        state.lock_session(record, reason="idle")
    if not _is_passive(request.endpoint) and getattr(record, "owner", None) is not None:
        record.last_active = now
    if is_public(request.endpoint) or getattr(record, "owner", None) is not None:
        return None
    if wants_html():
        return redirect(url_for("auth.unlock", next=request.full_path.rstrip("?")))
    return Response("locked: unlock first\n", status=401, mimetype="text/plain")


@functools.lru_cache(maxsize=256)
def _is_own_address(address: str) -> bool:
    """True if ``address`` (an IP literal) is one of this machine's: binding to it works."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    family = socket.AF_INET6 if parsed.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((str(parsed), 0))
    except OSError:
        return False
    return True


def own_names() -> set[str]:
    """This device's own names: localhost, its hostname and hostname.local."""
    hostname = socket.gethostname().lower()
    return {"localhost", hostname, f"{hostname}.local"}


def host_allowed(host: str, configured: tuple[str, ...]) -> bool:
    """Is ``host`` (a Host header, port and IPv6 brackets allowed) one to answer?"""
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1:].split("]", 1)[0]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    name = name.rstrip(".")
    if not name:
        return False
    if name in {c.lower().rstrip(".") for c in configured} or name in own_names():
        return True
    return _is_own_address(name)


def check_host() -> Response | None:
    """``before_request``: 421 for a Host the owner did not configure (see module doc)."""
    config = current_app.extensions["doorbell"].config
    if host_allowed(request.host, config.web.hosts):
        return None
    return Response(
        "misdirected request: this doorbell does not answer to that host name\n",
        status=421,
        mimetype="text/plain",
    )


def external_url(path: str) -> str:
    """An absolute link to ``path`` on this device, built from the app's configuration
    (:func:`device_url`), never from the Host header."""
    return device_url(current_app.extensions["doorbell"].config.web, path)


def device_url(web: WebConfig, path: str) -> str:
    """An absolute link to ``path`` on this device, built from ``web`` (the ``[web]``
    configuration): the first of ``web.hosts``, else the hostname + ``.local``;
    ``web.port``; https when ``web.tls``. The CLI prints links with it too."""
    host = web.hosts[0] if web.hosts else f"{socket.gethostname().lower()}.local"
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if web.tls else "http"
    default = 443 if web.tls else 80
    port = "" if web.port == default else f":{web.port}"
    return f"{scheme}://{host}{port}{path}"


def security_headers(response: Response) -> Response:
    """``after_request``: the headers every response carries."""
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers["X-Frame-Options"] = "DENY"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Cross-Origin-Resource-Policy"] = "same-origin"
    headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), interest-cohort=()"
    if web_state().config.web.tls:
        headers["Strict-Transport-Security"] = "max-age=31536000"
    if request.endpoint != "static":
        headers["Cache-Control"] = "no-store"
        headers["Pragma"] = "no-cache"
    return response


@dataclass
class _Failures:
    count: int = 0
    last_failure: float = 0.0


class UnlockThrottle:
    """Growing delay after failed passphrase checks, per client address (an IPv6 address
    counts per /64, as :func:`doorbell.webserver.address_key`): 1 s, 2 s, 4 s ...

    After ``n`` failures from one address, its next attempt is refused unanswered (no
    passphrase check) until ``min(2**(n-1), max_delay_s)`` seconds after the last failure.
    :meth:`begin` counts an attempt as a failure before the check runs (so parallel
    requests cannot share one free slot); :meth:`succeeded` clears the address.

    There is deliberately no delay on all failures together: one LAN host guessing slowly
    would keep the owner out (review finding 6). A guesser spread over many addresses is
    bounded instead by :mod:`doorbell.ui.stepup` admitting one scrypt check at a time.
    """

    def __init__(self, clock: Callable[[], float], max_delay_s: float = 300.0) -> None:
        self._clock = clock
        self.max_delay_s = max_delay_s
        self._by_client: dict[str, _Failures] = {}
        self._lock = threading.Lock()

    def _delay(self, failures: _Failures) -> float:
        if failures.count <= 0:
            return 0.0
        return min(2.0 ** (failures.count - 1), self.max_delay_s)

    def _wait_locked(self, client: str, now: float) -> float:
        mine = self._by_client.get(client)
        if mine is None:
            return 0.0
        return max(0.0, mine.last_failure + self._delay(mine) - now)

    def wait_s(self, client: str) -> float:
        """Seconds ``client`` must still wait before its next attempt (0: may try now)."""
        client = address_key(client)
        with self._lock:
            return self._wait_locked(client, self._clock())

    def begin(self, client: str) -> float:
        """Start an attempt: the seconds to wait (nothing counted), or 0 after counting this
        attempt as a failure until :meth:`succeeded` says otherwise."""
        client = address_key(client)
        now = self._clock()
        with self._lock:
            wait = self._wait_locked(client, now)
            if wait > 0:
                return wait
            if len(self._by_client) > 4096:  # bounded memory: forget the oldest half
                oldest = sorted(self._by_client, key=lambda k: self._by_client[k].last_failure)
                for key in oldest[:2048]:
                    del self._by_client[key]
            mine = self._by_client.setdefault(client, _Failures())
            mine.count += 1
            mine.last_failure = now
            return 0.0

    def failures(self, client: str) -> int:
        """How many failures ``client`` has on record."""
        client = address_key(client)
        with self._lock:
            mine = self._by_client.get(client)
            return 0 if mine is None else mine.count

    def failed(self, client: str) -> int:
        """Record a failure outside :meth:`begin`; return that client's failure count."""
        client = address_key(client)
        now = self._clock()
        with self._lock:
            mine = self._by_client.setdefault(client, _Failures())
            mine.count += 1
            mine.last_failure = now
            return mine.count

    def succeeded(self, client: str) -> None:
        client = address_key(client)
        with self._lock:
            self._by_client.pop(client, None)
