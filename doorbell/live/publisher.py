"""Recorder side of the live feed: serve frames and events to subscribers, never block.

See :mod:`doorbell.live` for the access model and the drop policy.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import stat
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from doorbell.live.wire import EVENT_KINDS, EVENTS_ONLY_REQUEST, FRAME, LiveError, encode_message

log = logging.getLogger(__name__)


class _Connection:
    """One subscriber as seen by the publisher: socket plus a bounded send queue."""

    def __init__(self, sock: socket.socket, now: float) -> None:
        self.sock = sock
        self.queue: deque[tuple[bool, bytes]] = deque()  # (is_frame, wire bytes)
        self.current: memoryview | None = None
        self.queued_bytes = 0
        self.last_progress = now
        self.events_only = False  # the subscriber asked for no frames (the notifier)

    @property
    def has_pending(self) -> bool:
        return self.current is not None or bool(self.queue)

    def send_some(self, now: float) -> None:
        """Send as much as the socket takes now. Raises OSError if the peer is gone."""
        while True:
            if self.current is None:
                if not self.queue:
                    return
                _, data = self.queue.popleft()
                self.queued_bytes -= len(data)
                self.current = memoryview(data)
            try:
                sent = self.sock.send(self.current)
            except BlockingIOError:
                return
            self.last_progress = now
            self.current = self.current[sent:] if sent < len(self.current) else None


class LivePublisher:
    """Serve live frames and events on a unix socket to any number of subscribers.

    ``max_pending_frames`` frames wait per subscriber (older ones are dropped);
    ``max_pending_bytes`` and ``stall_timeout_s`` bound how far one may fall behind before it
    is disconnected. Lifecycle: :meth:`start`, :meth:`close` (or ``with``); one named,
    non-daemon I/O thread, joined on close.
    """

    def __init__(
        self,
        socket_path: str | Path,
        *,
        group: str | int | None = None,
        mode: int = 0o660,
        max_pending_frames: int = 2,
        max_pending_bytes: int = 2 << 20,
        stall_timeout_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.socket_path = Path(socket_path)
        self.group = group
        self.mode = mode
        self.max_pending_frames = max_pending_frames
        self.max_pending_bytes = max_pending_bytes
        self.stall_timeout_s = stall_timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._connections: list[_Connection] = []
        self._dead: list[_Connection] = []
        self._listener: socket.socket | None = None
        self._wake_reader: socket.socket | None = None
        self._wake_writer: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._inode: int | None = None
        self.dropped_frames = 0
        self.dropped_subscribers = 0

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._connections)

    def start(self) -> None:
        """Create the socket (replacing a stale one) and start the I/O thread.

        Raises :class:`LiveError` if another publisher is serving the path, or the path is
        not a socket, or the socket cannot be created.
        """
        if self._thread is not None:
            raise LiveError("live publisher already started")
        self._listener = self._bind()
        wake_reader, wake_writer = socket.socketpair()
        wake_reader.setblocking(False)
        wake_writer.setblocking(False)
        self._wake_reader, self._wake_writer = wake_reader, wake_writer
        self._thread = threading.Thread(target=self._run, name="live-publisher", daemon=False)
        self._thread.start()

    def publish_frame(self, jpeg: bytes, *, time_s: float, width: int, height: int) -> None:
        """Queue a JPEG frame for every subscriber. Never blocks on a subscriber."""
        header = {"kind": FRAME, "time": time_s, "width": width, "height": height}
        self._publish(True, encode_message(header, jpeg))

    def publish_event(self, kind: str, *, time_s: float, **fields: Any) -> None:
        """Queue an event (one of :data:`EVENT_KINDS`, with small JSON-able fields)."""
        if kind not in EVENT_KINDS:
            raise LiveError(f"unknown live event kind {kind!r} (known: {', '.join(EVENT_KINDS)})")
        self._publish(False, encode_message({**fields, "kind": kind, "time": time_s}))

    def close(self) -> None:
        """Stop the I/O thread, disconnect subscribers, remove the socket file if ours."""
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        self._wake()
        thread.join()
        self._thread = None
        with self._lock:
            for connection in self._connections + self._dead:
                connection.sock.close()
            self._connections.clear()
            self._dead.clear()
        for sock in (self._listener, self._wake_reader, self._wake_writer):
            if sock is not None:
                sock.close()
        with contextlib.suppress(FileNotFoundError):
            if os.lstat(self.socket_path).st_ino == self._inode:
                self.socket_path.unlink()

    def __enter__(self) -> LivePublisher:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- internals -----------------------------------------------------------------------

    def _bind(self) -> socket.socket:
        path = self.socket_path
        if len(os.fsencode(path)) >= 108:
            raise LiveError(f"{path}: too long for a unix socket path (108 bytes max)")
        if not path.parent.is_dir():
            raise LiveError(f"{path.parent}: directory for the live socket does not exist")
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            info = None
        if info is not None:
            if not stat.S_ISSOCK(info.st_mode):
                raise LiveError(f"{path}: exists and is not a socket; refusing to replace it")
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                try:
                    probe.connect(str(path))
                except OSError:
                    log.info("replacing stale live socket %s", path)
                else:
                    raise LiveError(f"{path}: another recorder is already publishing there")
        # Bind under a temporary name, set mode and group, then rename over the final name:
        # subscribers never see the socket with looser permissions, and a stale file is
        # replaced atomically.
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(temp))
            os.chmod(temp, self.mode)
            if self.group is not None:
                os.chown(temp, -1, _gid(self.group))
            listener.listen(8)
            listener.setblocking(False)
            os.replace(temp, path)
            self._inode = os.lstat(path).st_ino
        except OSError as error:
            listener.close()
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            raise LiveError(f"{path}: cannot create the live socket: {error}") from error
        return listener

    def _publish(self, is_frame: bool, data: bytes) -> None:
        with self._lock:
            for connection in self._connections:
                if is_frame and connection.events_only:
                    continue
                if is_frame:
                    frames = [item for item in connection.queue if item[0]]
                    while len(frames) >= self.max_pending_frames and frames:
                        oldest = frames.pop(0)
                        connection.queue.remove(oldest)
                        connection.queued_bytes -= len(oldest[1])
                        self.dropped_frames += 1
                connection.queue.append((is_frame, data))
                connection.queued_bytes += len(data)
        self._wake()

    def _wake(self) -> None:
        if self._wake_writer is not None:
            with contextlib.suppress(BlockingIOError, OSError):
                self._wake_writer.send(b"\0")

    def _run(self) -> None:
        if self._listener is None or self._wake_reader is None:  # pragma: no cover
            raise LiveError("live publisher not started")
        selector = selectors.DefaultSelector()
        selector.register(self._listener, selectors.EVENT_READ, "accept")
        selector.register(self._wake_reader, selectors.EVENT_READ, "wake")
        interest: dict[_Connection, int] = {}
        try:
            while not self._stopping:
                for key, _events in selector.select(timeout=1.0):
                    if key.data == "accept":
                        self._accept()
                    elif key.data == "wake":
                        with contextlib.suppress(BlockingIOError):
                            key.fileobj.recv(4096)  # type: ignore[union-attr]
                    else:  # a subscriber hung up, or asked for events only
                        self._check_peer(key.data)
                self._flush_all(selector, interest)
        finally:
            selector.close()

    def _accept(self) -> None:
        try:
            sock, _ = self._listener.accept()  # type: ignore[union-attr]
        except BlockingIOError:
            return
        sock.setblocking(False)
        with self._lock:
            self._connections.append(_Connection(sock, self._clock()))
        # the web UI connecting is routine (a live page opened): not worth a terminal line
        log.debug("live subscriber connected (%d now)", self.subscriber_count)

    def _check_peer(self, connection: _Connection) -> None:
        try:
            data = connection.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(connection, "disconnected")
        elif EVENTS_ONLY_REQUEST in data:
            with self._lock:
                connection.events_only = True
                connection.queue = deque(item for item in connection.queue if not item[0])
                connection.queued_bytes = sum(len(item[1]) for item in connection.queue)

    def _flush_all(
        self, selector: selectors.BaseSelector, interest: dict[_Connection, int]
    ) -> None:
        now = self._clock()
        with self._lock:
            connections = list(self._connections)
            for connection in connections:
                try:
                    connection.send_some(now)
                except OSError:
                    self._drop_locked(connection, "disconnected")
                    continue
                if connection.queued_bytes > self.max_pending_bytes:
                    self._drop_locked(connection, "too far behind")
                elif (
                    connection.has_pending and now - connection.last_progress > self.stall_timeout_s
                ):
                    self._drop_locked(connection, "stalled")
            alive = set(self._connections)
        for connection in list(interest):
            if connection not in alive:
                with contextlib.suppress(KeyError, ValueError):
                    selector.unregister(connection.sock)
                del interest[connection]
        with self._lock:  # close only once unregistered, so a reused fd number is no problem
            dead, self._dead = self._dead, []
        for connection in dead:
            connection.sock.close()
        for connection in alive:
            wanted = selectors.EVENT_READ | (selectors.EVENT_WRITE if connection.has_pending else 0)
            if connection not in interest:
                selector.register(connection.sock, wanted, connection)
            elif interest[connection] != wanted:
                selector.modify(connection.sock, wanted, connection)
            interest[connection] = wanted

    def _drop(self, connection: _Connection, reason: str) -> None:
        with self._lock:
            self._drop_locked(connection, reason)

    def _drop_locked(self, connection: _Connection, reason: str) -> None:
        if connection in self._connections:
            self._connections.remove(connection)
            if reason != "disconnected":
                self.dropped_subscribers += 1
            level = logging.DEBUG if reason == "disconnected" else logging.INFO
            log.log(level, "live subscriber %s; dropped", reason)
            self._dead.append(connection)


def _gid(group: str | int) -> int:
    if isinstance(group, int):
        return group
    import grp

    try:
        return grp.getgrnam(group).gr_gid
    except KeyError as error:
        raise LiveError(f"group {group!r} does not exist (create it at install time)") from error
