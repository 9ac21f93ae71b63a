"""systemd glue: sd_notify messages, the watchdog interval, and SIGTERM/SIGINT as a stop event.

The recorder runs as a ``Type=notify`` service::

    [Service]
    Type=notify
    NotifyAccess=main
    WatchdogSec=30          # a hung camera loop gets the process restarted
    TimeoutStopSec=20       # time to seal the open clip after SIGTERM
    Restart=on-failure

It sends ``READY=1`` once the camera delivers frames, ``WATCHDOG=1`` from the main loop
(rate-limited by :class:`Watchdog`), ``STATUS=...`` lines people see in ``systemctl status``,
and ``STOPPING=1`` when it begins to shut down. Outside systemd (no ``$NOTIFY_SOCKET``) every
call is a no-op, so the same code runs in a terminal, in tests and in the demo.

:class:`StopSignals` turns SIGTERM and SIGINT into a :class:`threading.Event` the main loop
checks, so the recorder seals the open clip and exits 0 instead of dying mid-write.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any

from doorbell.errors import UsageError

log = logging.getLogger(__name__)


def _notify_address(env: Mapping[str, str]) -> str | None:
    address = env.get("NOTIFY_SOCKET", "")
    if not address:
        return None
    if address.startswith("@"):  # abstract namespace socket
        return "\0" + address[1:]
    if address.startswith("/"):
        return address
    log.warning("NOTIFY_SOCKET=%r is not a unix socket path; not notifying systemd", address)
    return None


def notify(*fields: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``fields`` (e.g. ``"READY=1"``, ``"STATUS=recording"``) to systemd in one datagram.

    Returns True if sent, False when not running under systemd or the send failed (logged:
    a notification problem must not take the recorder down; the watchdog will tell).
    """
    address = _notify_address(os.environ if env is None else env)
    if address is None:
        return False
    message = "\n".join(fields).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message)
    except OSError as error:
        log.warning("cannot notify systemd (%s): %s", fields[0] if fields else "", error)
        return False
    return True


def _one_line(text: str) -> str:
    return " ".join(text.split())


class Notifier:
    """The four messages the recorder sends, bound to one environment (``os.environ``)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = env

    @property
    def enabled(self) -> bool:
        """True when running under systemd with a notify socket."""
        return _notify_address(os.environ if self._env is None else self._env) is not None

    def ready(self, status: str | None = None) -> bool:
        """The service is up (send it after the camera's first frame)."""
        fields = ["READY=1"] + ([f"STATUS={_one_line(status)}"] if status else [])
        return notify(*fields, env=self._env)

    def watchdog(self) -> bool:
        """Still alive (send at least every :func:`watchdog_interval` seconds)."""
        return notify("WATCHDOG=1", env=self._env)

    def status(self, text: str) -> bool:
        """A one-line status for ``systemctl status`` (newlines are flattened)."""
        return notify(f"STATUS={_one_line(text)}", env=self._env)

    def stopping(self, status: str | None = None) -> bool:
        """Shutting down (sealing the open clip)."""
        fields = ["STOPPING=1"] + ([f"STATUS={_one_line(status)}"] if status else [])
        return notify(*fields, env=self._env)


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between watchdog pings: half of systemd's ``WatchdogSec``, or None if off.

    Reads ``$WATCHDOG_USEC`` (and ``$WATCHDOG_PID``: a watchdog meant for another process,
    e.g. a parent shell, is ignored). Malformed values count as off, with a warning.
    """
    env = os.environ if env is None else env
    raw = env.get("WATCHDOG_USEC", "")
    if not raw:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(raw)
    except ValueError:
        log.warning("WATCHDOG_USEC=%r is not a number; watchdog pings off", raw)
        return None
    if usec <= 0:
        return None
    return usec / 2_000_000


class Watchdog:
    """Rate-limited ``WATCHDOG=1``: call :meth:`kick` every loop turn, it pings when due."""

    def __init__(
        self,
        notifier: Notifier,
        interval_s: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._notifier = notifier
        self.interval_s = interval_s
        self._clock = clock
        self._last: float | None = None

    def kick(self) -> bool:
        """Ping if ``interval_s`` passed since the last ping; True if a ping was sent."""
        if self.interval_s is None:
            return False
        now = self._clock()
        if self._last is not None and now - self._last < self.interval_s:
            return False
        self._last = now
        return self._notifier.watchdog()


class StopSignals:
    """While active, SIGTERM and SIGINT set :attr:`event` instead of killing the process.

    Use as a context manager in the main thread around the main loop; the previous handlers
    come back on exit. A second SIGINT while already stopping raises KeyboardInterrupt (a
    second Ctrl-C means "now"). Raises :class:`UsageError` outside the main thread.
    """

    def __init__(
        self,
        signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT),
        event: threading.Event | None = None,
    ) -> None:
        self.signals = signals
        self.event = event if event is not None else threading.Event()
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def stop_requested(self) -> bool:
        return self.event.is_set()

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            raise UsageError("StopSignals must be installed from the main thread")
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum
        self.event.set()
