"""Live feed over a unix socket: frames, events, slow subscribers, reconnects, the socket."""

from __future__ import annotations

import os
import socket
import stat
import threading
import time
from pathlib import Path

import pytest

from doorbell.live import LiveError, LiveMessage, LivePublisher, LiveSubscriber, encode_message

JPEG = b"\xff\xd8\xff" + b"j" * 5000


def wait_until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    return tmp_path / "live.sock"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[LiveMessage] = []
        self.lock = threading.Lock()

    def __call__(self, message: LiveMessage) -> None:
        with self.lock:
            self.messages.append(message)

    def kinds(self) -> list[str]:
        with self.lock:
            return [m.kind for m in self.messages]


def test_frames_and_events_arrive_in_order(sock_path):
    inbox = Inbox()
    with LivePublisher(sock_path) as publisher, LiveSubscriber(sock_path, when_message=inbox):
        assert wait_until(lambda: publisher.subscriber_count == 1)
        publisher.publish_event("motion_start", time_s=1.0, zones=["porch"])
        publisher.publish_frame(JPEG, time_s=1.1, width=640, height=360)
        publisher.publish_event("ring", time_s=1.2)
        publisher.publish_event("clip_sealed", time_s=9.0, clip_id="c1")
        assert wait_until(lambda: len(inbox.kinds()) == 4)
    assert inbox.kinds() == ["motion_start", "frame", "ring", "clip_sealed"]
    motion, frame, _, sealed = inbox.messages
    assert motion.header["zones"] == ["porch"] and motion.time_s == 1.0
    assert frame.payload == JPEG and frame.header["width"] == 640 and frame.is_frame
    assert sealed.header["clip_id"] == "c1"


def test_wait_for_frame_follows_the_newest(sock_path):
    with LivePublisher(sock_path) as publisher, LiveSubscriber(sock_path) as subscriber:
        assert wait_until(lambda: publisher.subscriber_count == 1)
        assert subscriber.wait_for_frame(timeout=0.05) is None
        publisher.publish_frame(JPEG, time_s=1.0, width=4, height=3)
        first = subscriber.wait_for_frame(timeout=5)
        assert first is not None and first.time_s == 1.0
        publisher.publish_frame(JPEG, time_s=2.0, width=4, height=3)
        second = subscriber.wait_for_frame(first.seq, timeout=5)
        assert second is not None and second.time_s == 2.0


def test_stalled_subscriber_never_blocks_publisher(sock_path):
    publisher = LivePublisher(sock_path, max_pending_frames=2, stall_timeout_s=60)
    with publisher:
        stalled = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(str(sock_path))  # connects, never reads
        inbox = Inbox()
        with LiveSubscriber(sock_path, when_message=inbox):
            assert wait_until(lambda: publisher.subscriber_count == 2)
            big = b"\xff\xd8" + os.urandom(60_000)
            slowest = 0.0
            for index in range(300):  # 18 MB: far more than any socket buffer holds
                started = time.perf_counter()
                publisher.publish_frame(big, time_s=index, width=640, height=360)
                slowest = max(slowest, time.perf_counter() - started)
            publisher.publish_event("ring", time_s=400.0)
            assert slowest < 0.05, f"a publish took {slowest * 1000:.1f} ms"
            assert wait_until(lambda: "ring" in inbox.kinds()), "the live subscriber still gets it"
            assert publisher.dropped_frames > 0, "the stalled one lost frames, not the recorder"
            assert publisher.subscriber_count == 2
        stalled.close()


def test_subscriber_too_far_behind_is_dropped(sock_path):
    clock = [0.0]
    publisher = LivePublisher(sock_path, stall_timeout_s=5, clock=lambda: clock[0])
    with publisher:
        stalled = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stalled.connect(str(sock_path))
        assert wait_until(lambda: publisher.subscriber_count == 1)
        for index in range(100):
            publisher.publish_frame(b"x" * 60_000, time_s=index, width=1, height=1)
        deadline = time.monotonic() + 5
        while publisher.subscriber_count and time.monotonic() < deadline:
            clock[0] += 1.0  # time passes, the peer reads nothing
            publisher.publish_event("ring", time_s=clock[0])
            time.sleep(0.01)
        assert publisher.subscriber_count == 0
        assert publisher.dropped_subscribers == 1
        stalled.close()


def test_subscriber_reconnects_with_backoff(sock_path):
    inbox = Inbox()
    with LiveSubscriber(sock_path, when_message=inbox, backoff_initial_s=0.01) as subscriber:
        time.sleep(0.05)  # no publisher yet: it keeps trying
        assert not subscriber.connected
        with LivePublisher(sock_path) as publisher:
            assert wait_until(lambda: publisher.subscriber_count == 1)
            publisher.publish_event("camera_fault", time_s=1.0, message="no frames")
            assert wait_until(lambda: inbox.kinds() == ["camera_fault"])
        assert wait_until(lambda: not subscriber.connected)
        with LivePublisher(sock_path) as publisher:  # recorder restarted
            assert wait_until(lambda: publisher.subscriber_count == 1)
            publisher.publish_event("camera_ok", time_s=2.0)
            assert wait_until(lambda: inbox.kinds() == ["camera_fault", "camera_ok"])
        assert subscriber.connect_count == 2


def test_socket_file_mode_and_cleanup(sock_path):
    with LivePublisher(sock_path):
        info = os.lstat(sock_path)
        assert stat.S_ISSOCK(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == 0o660
    assert not sock_path.exists(), "removed on close"
    assert not [p for p in sock_path.parent.iterdir() if p.name.endswith(".tmp")]


def test_stale_socket_is_replaced_but_live_one_and_files_are_not(sock_path):
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(sock_path))
    stale.close()  # a crashed recorder left its socket file behind
    with LivePublisher(sock_path) as publisher:
        with pytest.raises(LiveError, match="already publishing"):
            LivePublisher(sock_path).start()
        assert wait_until(lambda: publisher.subscriber_count == 0), "the probe hung up"
    regular = sock_path.with_name("not-a-socket")
    regular.write_text("keep me")
    with pytest.raises(LiveError, match="not a socket"):
        LivePublisher(regular).start()
    assert regular.read_text() == "keep me"


def test_unknown_event_kind_and_oversized_messages_are_refused(sock_path):
    publisher = LivePublisher(sock_path)
    with pytest.raises(LiveError, match="unknown live event"):
        publisher.publish_event("ringg", time_s=0.0)
    with pytest.raises(LiveError, match="too large"):
        encode_message({"kind": "frame"}, b"x" * (5 << 20))


def test_threads_are_named_non_daemon_and_joined(sock_path):
    publisher = LivePublisher(sock_path)
    subscriber = LiveSubscriber(sock_path)
    publisher.start()
    subscriber.start()
    names = {t.name: t for t in threading.enumerate()}
    assert not names["live-publisher"].daemon and not names["live-subscriber"].daemon
    subscriber.close()
    publisher.close()
    alive = {t.name for t in threading.enumerate()}
    assert "live-publisher" not in alive and "live-subscriber" not in alive
