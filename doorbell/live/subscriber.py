"""Web side of the live feed: receive frames and events, reconnect with backoff."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from doorbell.live.wire import (
    EVENTS_ONLY_REQUEST,
    MAX_HEADER_BYTES,
    MAX_PAYLOAD_BYTES,
    PREFIX,
    LiveError,
    LiveMessage,
)

log = logging.getLogger(__name__)


class LiveSubscriber:
    """Receive live frames and events; reconnect with exponential backoff when cut off.

    ``when_message`` (optional) is called on the subscriber thread for every message: keep
    it short. :attr:`latest_frame` always holds the newest frame; :meth:`wait_for_frame`
    lets many HTTP streams follow it. With ``events_only`` the subscriber asks the publisher
    for events only, right after connecting, and drops any frame sent before that took effect.
    Lifecycle: :meth:`start`, :meth:`close` (or ``with``);
    one named, non-daemon thread, joined on close.
    """

    def __init__(
        self,
        socket_path: str | Path,
        *,
        when_message: Callable[[LiveMessage], None] | None = None,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 5.0,
        poll_s: float = 0.2,
        events_only: bool = False,
    ) -> None:
        self.socket_path = Path(socket_path)
        self.when_message = when_message
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self._poll_s = poll_s
        self.events_only = events_only
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._seq = 0
        self.latest_frame: LiveMessage | None = None
        self.connected = False
        self.connect_count = 0

    def start(self) -> None:
        """Start the subscriber thread (it connects, and reconnects, by itself)."""
        if self._thread is not None:
            raise LiveError("live subscriber already started")
        self._thread = threading.Thread(target=self._run, name="live-subscriber", daemon=False)
        self._thread.start()

    def close(self) -> None:
        """Disconnect and join the thread (within about ``poll_s`` seconds)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._changed:
            self._changed.notify_all()

    def __enter__(self) -> LiveSubscriber:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def wait_for_frame(
        self, after_seq: int = 0, timeout: float | None = None
    ) -> LiveMessage | None:
        """The newest frame with ``seq > after_seq``, waiting up to ``timeout`` seconds."""

        def newer() -> bool:
            frame = self.latest_frame
            return self._stop.is_set() or (frame is not None and frame.seq > after_seq)

        with self._changed:
            self._changed.wait_for(newer, timeout)
        frame = self.latest_frame
        return frame if frame is not None and frame.seq > after_seq else None

    def _run(self) -> None:
        delay = self.backoff_initial_s
        while not self._stop.is_set():
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(self._poll_s)
                sock.connect(str(self.socket_path))
                if self.events_only:
                    sock.sendall(EVENTS_ONLY_REQUEST)
            except OSError:
                sock.close()
                self._stop.wait(delay)
                delay = min(delay * 2, self.backoff_max_s)
                continue
            delay = self.backoff_initial_s
            self.connected = True
            self.connect_count += 1
            try:
                self._receive(sock)
            except (OSError, LiveError, ValueError) as error:
                log.info("live feed interrupted: %s", error)
            finally:
                self.connected = False
                sock.close()

    def _receive(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            prefix = self._read_exactly(sock, PREFIX.size)
            if prefix is None:
                return
            header_length, payload_length = PREFIX.unpack(prefix)
            if header_length > MAX_HEADER_BYTES or payload_length > MAX_PAYLOAD_BYTES:
                raise LiveError(f"live message too large ({header_length}+{payload_length})")
            raw = self._read_exactly(sock, header_length + payload_length)
            if raw is None:
                return
            header = json.loads(raw[:header_length])
            if not isinstance(header, dict) or not isinstance(header.get("kind"), str):
                raise LiveError("live message header is not an object with a kind")
            self._seq += 1
            message = LiveMessage(
                kind=header["kind"],
                time_s=float(header.get("time", 0.0)),
                header=header,
                payload=raw[header_length:],
                seq=self._seq,
            )
            if message.is_frame and self.events_only:
                continue
            if message.is_frame:
                with self._changed:
                    self.latest_frame = message
                    self._changed.notify_all()
            if self.when_message is not None:
                self.when_message(message)

    def _read_exactly(self, sock: socket.socket, size: int) -> bytes | None:
        """``size`` bytes, or None at a clean end of stream or on close()."""
        chunks, remaining = [], size
        while remaining:
            if self._stop.is_set():
                return None
            try:
                chunk = sock.recv(min(remaining, 1 << 16))
            except TimeoutError:
                continue
            if not chunk:
                if remaining != size:
                    raise LiveError("live socket closed in the middle of a message")
                return None
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)
