"""sd_notify over a real datagram socket, the watchdog interval, and signals as a stop event."""

from __future__ import annotations

import os
import signal
import socket
import threading
from pathlib import Path

import pytest

from doorbell.errors import UsageError
from doorbell.service import Notifier, StopSignals, Watchdog, notify, watchdog_interval


@pytest.fixture
def notify_socket(tmp_path: Path):
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    yield str(path), sock
    sock.close()


def received(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_ready_watchdog_status_stopping(notify_socket):
    path, sock = notify_socket
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready("recording, 15 fps")
    assert received(sock) == ["READY=1", "STATUS=recording, 15 fps"]
    assert notifier.watchdog()
    assert received(sock) == ["WATCHDOG=1"]
    assert notifier.status("camera fault:\nretrying in 2 s")
    assert received(sock) == ["STATUS=camera fault: retrying in 2 s"]
    assert notifier.stopping("sealing clip")
    assert received(sock) == ["STOPPING=1", "STATUS=sealing clip"]


def test_abstract_socket():
    name = f"doorbell-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        assert notify("READY=1", env={"NOTIFY_SOCKET": "@" + name})
        assert received(sock) == ["READY=1"]
    finally:
        sock.close()


def test_no_op_without_systemd(tmp_path):
    assert not Notifier({}).enabled
    assert not Notifier({}).ready()
    assert not notify("READY=1", env={"NOTIFY_SOCKET": "vsock:2:1234"})
    # a vanished socket is logged, not raised
    assert not notify("WATCHDOG=1", env={"NOTIFY_SOCKET": str(tmp_path / "gone")})


def test_watchdog_interval():
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())})
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None


def test_watchdog_pings_at_most_once_per_interval(notify_socket):
    path, sock = notify_socket
    now = [0.0]
    watchdog = Watchdog(Notifier({"NOTIFY_SOCKET": path}), 5.0, clock=lambda: now[0])
    sent = []
    for step in range(21):  # 10 seconds in half-second loop turns
        now[0] = step * 0.5
        sent.append(watchdog.kick())
    assert sent.count(True) == 3  # at 0, 5 and 10 s
    assert [received(sock) for _ in range(3)] == [["WATCHDOG=1"]] * 3
    assert not Watchdog(Notifier({}), None).kick()


def test_sigterm_sets_the_stop_event_and_handlers_come_back():
    before = signal.getsignal(signal.SIGTERM)
    with StopSignals() as stop:
        assert not stop.stop_requested
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.event.wait(2)
        assert stop.received == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


def test_second_sigint_means_now():
    with StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.event.wait(2)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            stop.event.wait(0.5)  # the handler runs here at the latest


def test_only_from_main_thread():
    errors = []

    def install() -> None:
        try:
            StopSignals().__enter__()
        except UsageError as error:
            errors.append(error)

    thread = threading.Thread(target=install, name="not-main")
    thread.start()
    thread.join()
    assert errors
