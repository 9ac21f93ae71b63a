"""The web UI's HTTP server: cheroot, hardened against a hostile device on the home network.

cheroot alone lets one LAN host make the UI unreachable or exhaust a Pi Zero's memory
(issue 17, findings 4 and 5). :class:`GuardedServer` adds:

- **A header limit**: request line plus headers at most :data:`MAX_HEADER_BYTES` (64 KiB);
  more is answered 413/414 and the connection closed, never buffered.
- **A header deadline**: the request line and headers (and, with TLS, the handshake before
  them) must arrive within :data:`HEADER_DEADLINE_S` of the connection becoming readable,
  however slowly they trickle in; a socket timeout alone is reset by every byte.
- **A request deadline**: the whole request, body included, must arrive within
  :data:`REQUEST_DEADLINE_S` of its start; a body trickled a byte at a time held its worker
  for ever (security review of issue 17).
- **The TLS handshake in a worker thread, not the acceptor**: cheroot shakes hands in its
  single accepting thread, so one silent connection stalled every other for its timeout.
- **A per-address connection cap**: at most :data:`MAX_CONNECTIONS_PER_ADDRESS` open
  connections from one IPv4 address or IPv6 /64; further ones are closed at accept.

So one address holds at most ``MAX_CONNECTIONS_PER_ADDRESS`` of the ``THREADS`` workers,
each for at most ``REQUEST_DEADLINE_S`` per request it never finishes sending
(``HEADER_DEADLINE_S`` if it never finishes the headers).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from cheroot import server as cheroot_server
from cheroot import wsgi
from cheroot.makefile import MakeFile, StreamReader
from cheroot.ssl.builtin import BuiltinSSLAdapter

log = logging.getLogger(__name__)

#: Longest request line plus headers accepted, in bytes.
MAX_HEADER_BYTES = 64 * 1024
#: Seconds a connection has, once readable, for the TLS handshake, request line and headers.
HEADER_DEADLINE_S = 10.0
#: Seconds one request has from its first byte to its last body byte (enough for
#: MAX_CONTENT_LENGTH, 256 KiB, at 9 KB/s); a socket timeout alone is reset by every byte.
REQUEST_DEADLINE_S = 30.0
#: Open connections one address (IPv4, or IPv6 /64) may hold at once.
MAX_CONNECTIONS_PER_ADDRESS = 8


def address_key(address: str) -> str:
    """The unit a limit applies to: an IPv4 address, or the /64 of an IPv6 address
    (a single LAN host can use every address of its /64)."""
    try:
        parsed = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(parsed) >> 64 << 64, 64)))
    return str(parsed)


class ConnectionCounter:
    """Open connections per address key, with a cap. Thread-safe."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def admit(self, key: str) -> bool:
        """Count one more connection for ``key``, or return False (nothing counted) at the cap."""
        with self._lock:
            count = self._open.get(key, 0)
            if count >= self.cap:
                return False
            self._open[key] = count + 1
            return True

    def release(self, key: str) -> None:
        with self._lock:
            count = self._open.get(key, 0) - 1
            if count > 0:
                self._open[key] = count
            else:
                self._open.pop(key, None)

    def open_connections(self, key: str) -> int:
        with self._lock:
            return self._open.get(key, 0)


class _DeadlineSocketIO(socket.SocketIO):
    """Raw reads that give up at the connection's deadline (each read waits at most until it)."""

    def __init__(self, sock: socket.socket, deadline: Callable[[], float | None]) -> None:
        super().__init__(sock, "rb")
        self._deadline = deadline
        self._socket = sock

    def readinto(self, buffer: Any) -> int | None:
        deadline = self._deadline()
        if deadline is None:
            return super().readinto(buffer)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out")
        previous = self._socket.gettimeout()
        self._socket.settimeout(remaining if previous is None else min(previous, remaining))
        try:
            return super().readinto(buffer)
        finally:
            self._socket.settimeout(previous)


class _DeadlineReader(StreamReader):
    def __init__(self, sock: socket.socket, deadline: Callable[[], float | None]) -> None:
        # StreamReader's own __init__ would build a plain SocketIO; skip to its base class.
        super(StreamReader, self).__init__(_DeadlineSocketIO(sock, deadline), 8192)
        self.bytes_read = 0


class _DeadlineRequest(cheroot_server.HTTPRequest):
    """Reads the request line and headers under the header deadline, and the whole request,
    body included, under the request deadline (both counted from the request's start)."""

    def parse_request(self) -> None:
        conn: GuardedConnection = self.conn
        started = time.monotonic()
        conn.request_deadline = started + REQUEST_DEADLINE_S
        conn.header_deadline = started + HEADER_DEADLINE_S
        try:
            super().parse_request()
        finally:
            conn.header_deadline = None
            if not self.ready:  # refused: no body will be read
                conn.request_deadline = None

    def respond(self) -> None:
        try:
            super().respond()
        finally:
            conn: GuardedConnection = self.conn
            conn.request_deadline = None


class GuardedConnection(cheroot_server.HTTPConnection):
    """One connection: counted per address; handshake, headers and body under deadlines."""

    RequestHandlerClass = _DeadlineRequest

    def __init__(self, server: Any, sock: Any, makefile: Any = None) -> None:
        self.header_deadline: float | None = None
        self.request_deadline: float | None = None
        super().__init__(server, sock, makefile or MakeFile)
        self.rfile.close()  # cheroot's reader, replaced by one that honours the deadlines
        self.rfile = _DeadlineReader(sock, self.read_deadline)
        try:
            peer = sock.getpeername()[0]
        except OSError:
            peer = "unknown"
        self.address_key = address_key(str(peer))
        self._counted = server.connection_counter.admit(self.address_key)
        self._needs_handshake = hasattr(sock, "do_handshake")

    def read_deadline(self) -> float | None:
        """The earliest deadline in force for a read (None between requests)."""
        deadlines = [d for d in (self.header_deadline, self.request_deadline) if d is not None]
        return min(deadlines, default=None)

    def communicate(self) -> bool:
        if not self._counted:
            return False  # over the cap (raced past the acceptor's check): just close
        if self._needs_handshake:
            self._needs_handshake = False
            if not self._handshake():
                return False
        return bool(super().communicate())

    def _handshake(self) -> bool:
        previous = self.socket.gettimeout()
        self.socket.settimeout(HEADER_DEADLINE_S)
        try:
            self.socket.do_handshake()
        except (OSError, ValueError) as exc:
            log.debug("TLS handshake with %s failed: %s", self.address_key, exc)
            return False
        finally:
            self.socket.settimeout(previous)
        return True

    def close(self) -> None:
        if self._counted:
            self._counted = False
            self.server.connection_counter.release(self.address_key)
        super().close()


class DeferredHandshakeAdapter(BuiltinSSLAdapter):
    """TLS whose handshake runs in the worker thread (see :class:`GuardedConnection`)."""

    def wrap(self, sock: socket.socket) -> tuple[Any, dict[str, str]]:
        wrapped = self.context.wrap_socket(sock, do_handshake_on_connect=False, server_side=True)
        return wrapped, {"wsgi.url_scheme": "https", "HTTPS": "on"}


class _CappedListener:
    """The listening socket as the acceptor sees it: over-cap connections closed at once."""

    def __init__(self, listener: socket.socket, counter: ConnectionCounter) -> None:
        self._listener = listener
        self._counter = counter

    def accept(self) -> tuple[socket.socket, Any]:
        sock, addr = self._listener.accept()
        key = address_key(str(addr[0])) if isinstance(addr, tuple) else "unix"
        if self._counter.open_connections(key) >= self._counter.cap:
            sock.close()
            raise TimeoutError("over the per-address connection cap")  # cheroot: skip it
        return sock, addr


class GuardedServer(wsgi.Server):
    """cheroot's WSGI server with the limits of this module."""

    ConnectionClass = GuardedConnection
    max_request_header_size = MAX_HEADER_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connection_counter = ConnectionCounter(MAX_CONNECTIONS_PER_ADDRESS)

    def prepare(self) -> None:
        super().prepare()
        manager = getattr(self, "_connections")  # noqa: B009 - cheroot's, made by prepare()
        accept_from = manager._from_server_socket
        counter = self.connection_counter

        def from_server_socket(server_socket: socket.socket) -> Any:
            return accept_from(_CappedListener(server_socket, counter))

        manager._from_server_socket = from_server_socket
