"""Live view: the newest masked frame from the recorder, and rings/motion as server-sent events.

:class:`LiveHub` owns one :class:`doorbell.live.LiveSubscriber` (started on first use, so an
app that never shows the live view never connects) and fans its events out to the open
event streams. The recorder masks frames before publishing; this process never sees an
unmasked one.

Frames are fetched by the page with a long poll (``/live/frame.jpg?after=<seq>`` waits up to
a few seconds for a newer frame) rather than one endless MJPEG response: each request is
short, passes the session gate again (so the idle lock and the lock button take effect at
once), and a slow phone simply asks less often. Opening the page is audited as
``live.viewed``, and so is a frame poll after a gap of :data:`LIVE_AUDIT_GAP_S`. Event
streams end after :data:`SSE_MAX_S` seconds (the browser's EventSource reconnects, through
the gate again).
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, jsonify, render_template, request
from flask.typing import ResponseReturnValue

from doorbell.ui.guard import passive
from doorbell.ui.sessions import current_session
from doorbell.ui.state import LiveFeed, web_state

if TYPE_CHECKING:
    from doorbell.live.subscriber import LiveSubscriber
    from doorbell.live.wire import LiveMessage

bp = Blueprint("live", __name__)

#: An event stream is closed after this long; the browser reconnects.
SSE_MAX_S = 60.0
#: At most this many event streams at once (each holds a server thread).
MAX_SSE_CLIENTS = 8
#: Longest wait for a newer frame in one request.
FRAME_WAIT_S = 5.0
#: A frame poll this long (seconds) after the session's previous one is a new viewing,
#: audited again as ``live.viewed`` (the page itself always is).
LIVE_AUDIT_GAP_S = 60.0
#: Events the browser hears about.
FORWARDED = (
    "ring",
    "motion_start",
    "motion_stop",
    "clip_sealed",
    "camera_fault",
    "camera_ok",
    "storage_full",
    "storage_ok",
)


class LiveHub:
    """One subscriber to the recorder's socket, shared by every page of this process."""

    def __init__(self, socket_path: str, subscriber: LiveSubscriber | None = None) -> None:
        self.socket_path = socket_path
        self._subscriber = subscriber
        self._started = False
        self._lock = threading.Lock()
        self._queues: list[queue.Queue[dict[str, Any]]] = []
        self.recording = False
        self.last_event: dict[str, Any] | None = None

    def _ensure_started(self) -> LiveSubscriber:
        with self._lock:
            if self._subscriber is None:
                from doorbell.live import LiveSubscriber

                self._subscriber = LiveSubscriber(self.socket_path, when_message=self.on_message)
            elif self._subscriber.when_message is None:
                self._subscriber.when_message = self.on_message
            if not self._started:
                self._subscriber.start()
                self._started = True
            return self._subscriber

    def on_message(self, message: LiveMessage) -> None:
        """Called on the subscriber thread for every message."""
        if message.is_frame or message.kind not in FORWARDED:
            return
        if message.kind == "motion_start":
            self.recording = True
        elif message.kind == "motion_stop":
            self.recording = False
        event = {k: v for k, v in message.header.items() if isinstance(v, str | int | float)}
        event["kind"] = message.kind
        self.last_event = event
        with self._lock:
            for waiting in self._queues:
                with contextlib.suppress(queue.Full):  # a stuck stream loses events, not memory
                    waiting.put_nowait(event)

    def frame(self, after_seq: int, timeout: float) -> LiveMessage | None:
        """The newest frame with a higher sequence number, waiting up to ``timeout`` s."""
        return self._ensure_started().wait_for_frame(after_seq, timeout)

    def connected(self) -> bool:
        return bool(self._ensure_started().connected)

    def listen(self) -> queue.Queue[dict[str, Any]] | None:
        """A new event queue, or None when too many streams are open."""
        self._ensure_started()
        with self._lock:
            if len(self._queues) >= MAX_SSE_CLIENTS:
                return None
            waiting: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=64)
            self._queues.append(waiting)
            return waiting

    def forget(self, waiting: queue.Queue[dict[str, Any]]) -> None:
        with self._lock:
            if waiting in self._queues:
                self._queues.remove(waiting)

    def close(self) -> None:
        with self._lock:
            subscriber, started = self._subscriber, self._started
            self._started = False
        if subscriber is not None and started:
            subscriber.close()


def _hub() -> LiveFeed:
    return web_state().live


def _audit_live(via: str, *, always: bool) -> None:
    """Audit ``live.viewed`` at the page, and for frame polls after a gap of
    :data:`LIVE_AUDIT_GAP_S` (so a page left open, or frames fetched directly, are seen)."""
    state = web_state()
    record = current_session()
    now = state.clock()
    last = record.get("live_last_poll")
    if always or last is None or now - last > LIVE_AUDIT_GAP_S:
        state.record("owner", "live.viewed", "", {"via": via})
    record["live_last_poll"] = now


@bp.get("/live")
def live_page() -> ResponseReturnValue:
    state = web_state()
    _audit_live("page", always=True)
    return render_template("live/live.html", fps=state.config.live.fps)


@bp.get("/live/frame.jpg")
@passive
def live_frame() -> ResponseReturnValue:
    try:
        after = max(0, int(request.args.get("after", "0")))
    except ValueError:
        after = 0
    frame = _hub().frame(after, FRAME_WAIT_S if after else 0.5)
    if frame is None:
        return Response(
            "no live frame yet\n", status=503, mimetype="text/plain", headers={"Retry-After": "1"}
        )
    _audit_live("frame", always=False)
    response = Response(frame.payload, mimetype="image/jpeg")
    response.headers["X-Frame-Seq"] = str(frame.seq)
    return response


@bp.get("/live/state")
@passive
def live_state() -> ResponseReturnValue:
    hub = _hub()
    return jsonify(connected=hub.connected(), recording=hub.recording, last_event=hub.last_event)


@bp.get("/live/events")
@passive
def live_events() -> ResponseReturnValue:
    hub = _hub()
    waiting = hub.listen()
    if waiting is None:
        return Response("too many live streams\n", status=503, mimetype="text/plain")
    record = current_session()
    clock = time.monotonic

    def stream() -> Iterator[str]:
        started = clock()
        try:
            yield "retry: 2000\n\n"
            while clock() - started < SSE_MAX_S and getattr(record, "owner", None) is not None:
                try:
                    event = waiting.get(timeout=1.0)
                except queue.Empty:
                    yield ": keep-alive\n\n"
                    continue
                yield f"event: {event['kind']}\ndata: {json.dumps(event)}\n\n"
        finally:
            hub.forget(waiting)

    response = Response(stream(), mimetype="text/event-stream")
    response.headers["X-Accel-Buffering"] = "no"
    return response
