"""The notifier: hear events, decide what to tell whom, deliver, audit every send.

Threads (named, non-daemon, joined by :meth:`Notifier.close`): the live subscriber
(``live-subscriber``), the watcher (``notify-watch``: audit-log tail, expiring requests,
camera down, owner settings) and one deliverer per channel (``notify-<channel>``), so a slow
SMTP server never delays a ring on MQTT. The recorder is never waited on: the live socket's
publisher drops a subscriber that lags, and the audit log is only read.

Policy, in order (:meth:`Notifier.submit`): one alert per key and per ring burst; storage and
camera alerts only on a change of state; per channel: the kinds it is set to send, its quiet
hours, its hourly rate limit. Delivery retries until the alert is ``notify.max_age_s`` old
(a test alert: :data:`TEST_MAX_AGE_S`), then gives up. The outcome is one audit entry,
``notify.sent`` or ``notify.failed``, with ``channel``, ``kind``, ``host`` (host:port) and,
for a failure, ``error``; never the alert's content.

Catch-up: the audit index the watcher has read is saved in ``<data_dir>/notify-state.json``
(with the camera and storage states and which expiring requests were announced), so events
logged while the notifier was down are seen when it returns; those still younger than
``max_age_s`` are sent, export requests still waiting always are.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from doorbell.audit.entries import EntryError, decode_entry
from doorbell.audit.log import AuditLog
from doorbell.config import Config, EmailConfig, MqttConfig, NtfyConfig
from doorbell.errors import DoorbellError, NotifyError, StorageError
from doorbell.live.subscriber import LiveSubscriber
from doorbell.live.wire import LiveMessage
from doorbell.notify.alerts import TEST, Alert
from doorbell.notify.channel import Channel
from doorbell.notify.requests import is_pending, pending_due_by
from doorbell.notify.schedule import Deduplicator, QuietHours, RateLimit
from doorbell.notify.sources import (
    ACTOR,
    UNLOCK_FAILED,
    alert_from_audit,
    alert_from_live,
    entry_time,
)
from doorbell.notify.state import NotifierState

log = logging.getLogger(__name__)

#: a test alert is tried this long, so the Settings page shows a result soon
TEST_MAX_AGE_S = 20.0
#: longest single delivery attempt (connect, TLS, send, acknowledgement)
ATTEMPT_TIMEOUT_S = 10.0
#: how many finished deliveries :attr:`Notifier.outcomes` remembers (the audit log has all)
OUTCOMES_KEPT = 256
#: storage and camera alerts change a state; repeating the current state says nothing new
STATE_OF = {
    "storage_full": ("storage", "full"),
    "storage_ok": ("storage", "ok"),
    "camera_lost": ("camera", "lost"),
    "camera_back": ("camera", "ok"),
}
_STOP = None


class Notifier:
    """Deliver alerts to ``channels`` for the events of one doorbell.

    ``reload`` (optional) returns the configuration again (owner settings changed: kinds,
    quiet hours, channels on or off); :attr:`restart_needed` is set when the set of enabled
    channels changed, so the caller rebuilds the notifier. Clocks are injected:
    ``wall_clock`` (POSIX seconds), ``monotonic`` (rate limits) and ``local_now`` (quiet
    hours, local time).
    """

    def __init__(
        self,
        config: Config,
        channels: Sequence[Channel],
        audit: AuditLog,
        *,
        live: bool = True,
        reload: Callable[[], Config] | None = None,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        local_now: Callable[[], datetime] = datetime.now,
        retry_s: float = 1.0,
    ) -> None:
        self.config = config
        self.channels = list(channels)
        self.data_dir = config.data_dir
        self._audit = audit
        self._reload = reload
        self._wall = wall_clock
        self._monotonic = monotonic
        self._local_now = local_now
        self._retry_s = retry_s
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._dedupe = Deduplicator(config.notify.dedupe_s)
        self._limits = {
            channel.name: RateLimit(config.notify.rate_limit_per_hour) for channel in channels
        }
        self._queues: dict[str, queue.Queue[Alert | None]] = {
            channel.name: queue.Queue() for channel in channels
        }
        self._threads: list[threading.Thread] = []
        self._subscriber = (
            LiveSubscriber(config.live.socket_path, when_message=self._on_live, events_only=True)
            if live
            else None
        )
        self._settings_mtime = self._settings_stamp()
        self.restart_needed = threading.Event()
        self._state = NotifierState()  # saved across restarts (notify-state.json)
        self._unlock_failures: deque[float] = deque()
        self._unlock_alerted_at: float | None = None
        self._dirty = False
        #: (channel, alert kind, outcome) of every finished delivery, for tests and the bench
        self.outcomes: deque[tuple[str, str, str]] = deque(maxlen=OUTCOMES_KEPT)
        self.delivered = threading.Condition(self._lock)

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Load the saved state, start channels, deliverers, the watcher and the subscriber."""
        self._state = NotifierState.load(self.data_dir)
        for channel in self.channels:
            channel.start()
            thread = threading.Thread(
                target=self._deliver_loop,
                args=(channel,),
                name=f"notify-{channel.name}",
                daemon=False,
            )
            thread.start()
            self._threads.append(thread)
        watcher = threading.Thread(target=self._watch_loop, name="notify-watch", daemon=False)
        watcher.start()
        self._threads.append(watcher)
        if self._subscriber is not None:
            self._subscriber.start()

    def close(self) -> None:
        """Stop listening, let deliverers finish the alert in hand, join every thread."""
        self._stopping.set()
        if self._subscriber is not None:
            self._subscriber.close()
        for channel_queue in self._queues.values():
            channel_queue.put(_STOP)
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        for channel in self.channels:
            channel.close()
        self._save_state()

    def __enter__(self) -> Notifier:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def wait_until_stopped(self, timeout: float | None = None) -> bool:
        """Block until :meth:`close` or a needed restart; True if either happened."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not (self._stopping.is_set() or self.restart_needed.is_set()):
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            self._stopping.wait(0.5 if remaining is None else min(0.5, remaining))
        return True

    # --- policy ----------------------------------------------------------------------------

    def channel_config(self, name: str) -> MqttConfig | NtfyConfig | EmailConfig:
        """The running configuration of channel ``name``."""
        section: MqttConfig | NtfyConfig | EmailConfig = getattr(self.config, name)
        return section

    def submit(self, alert: Alert, *, fresh: bool = True) -> list[str]:
        """Apply the policy to ``alert`` and queue it; return the channels it was queued for.

        With ``fresh`` False (an old audit entry read at catch-up) only the state trackers
        (storage, camera) learn from it; nothing is sent.
        """
        with self._lock:
            state = self._state
            if alert.kind in STATE_OF:
                group, value = STATE_OF[alert.kind]
                if state.states.get(group) == value:
                    return []
                state.states[group] = value
                self._dirty = True
                if alert.kind == "camera_lost" and state.camera_lost_since is None:
                    state.camera_lost_since = alert.time
                    state.camera_down_sent = False
                elif alert.kind == "camera_back":
                    state.camera_lost_since = None
            if not fresh or not self._dedupe.first_time(alert.key, alert.kind, alert.time):
                return []
            queued = []
            now_local = self._local_now()
            for channel in self.channels:
                settings = self.channel_config(channel.name)
                if alert.kind == TEST:
                    if alert.channel != channel.name:
                        continue
                elif not settings.enabled or alert.kind not in settings.events:
                    continue
                elif QuietHours(settings.quiet_hours).is_quiet(now_local):
                    log.info("%s: %s alert held back (quiet hours)", channel.name, alert.kind)
                    continue
                elif not self._limits[channel.name].allow(self._monotonic()):
                    log.warning("%s: %s alert dropped (rate limit)", channel.name, alert.kind)
                    continue
                self._queues[channel.name].put(alert)
                queued.append(channel.name)
            return queued

    # --- sources ---------------------------------------------------------------------------

    def _on_live(self, message: LiveMessage) -> None:
        if message.is_frame:
            return  # never kept, never forwarded (events_only asks the recorder not to send any)
        alert = alert_from_live(message, received_at=self._wall())
        if alert is not None:
            self.submit(alert)

    def poll(self) -> None:
        """One round of the watcher: audit tail, expiring requests, camera down, settings."""
        self._read_audit()
        self._check_expiring()
        self._check_camera_down()
        self._check_settings()
        if self._dirty:
            self._save_state()

    def _read_audit(self) -> None:
        saved = self._state.audit_cursor
        cursor = saved if saved is not None else self._audit.size
        now = self._wall()
        max_age = self.config.notify.max_age_s
        for index, leaf in self._audit.entries(cursor):
            cursor = index + 1
            try:
                entry = decode_entry(leaf)
            except EntryError:
                continue
            if entry.get("actor") == ACTOR:
                continue
            if entry.get("action") == UNLOCK_FAILED:
                self._count_unlock_failure(index, entry_time(entry), now)
                continue
            alert = alert_from_audit(index, entry)
            if alert is None:
                continue
            if alert.kind == "export_request":
                if is_pending(self.data_dir, alert.ref):  # still waiting: relevant however old
                    self.submit(Alert(alert.kind, now, alert.key, ref=alert.ref))
                continue
            age = now - alert.time
            fresh = age <= (TEST_MAX_AGE_S if alert.kind == TEST else max_age)
            self.submit(alert, fresh=fresh)
        if cursor != saved:
            self._state.audit_cursor = cursor
            self._dirty = True

    def _count_unlock_failure(self, index: int, when: float, now: float) -> None:
        notify = self.config.notify
        failures = self._unlock_failures
        failures.append(when)
        while failures and when - failures[0] > notify.unlock_window_s:
            failures.popleft()
        recent_alert = (
            self._unlock_alerted_at is not None
            and when - self._unlock_alerted_at < notify.unlock_window_s
        )
        if len(failures) >= notify.unlock_failures and not recent_alert:
            self._unlock_alerted_at = when
            fresh = now - when <= notify.max_age_s
            self.submit(Alert("unlock_failures", when, f"unlock_failures:{index}"), fresh=fresh)

    def _check_expiring(self) -> None:
        now = self._wall()
        horizon = now + self.config.notify.expiring_within_h * 3600.0
        for request_id in pending_due_by(self.data_dir, horizon):
            if request_id in self._state.expiring_sent:
                continue
            self._state.expiring_sent.add(request_id)
            self._dirty = True
            self.submit(Alert("export_expiring", now, f"expiring:{request_id}", ref=request_id))

    def _check_camera_down(self) -> None:
        with self._lock:
            since = self._state.camera_lost_since
            if since is None or self._state.camera_down_sent:
                return
            if self._wall() - since < self.config.notify.camera_down_min * 60.0:
                return
            self._state.camera_down_sent = True
            self._dirty = True
        self.submit(Alert("camera_down", self._wall(), f"camera_down:{since:.3f}"))

    def _settings_stamp(self) -> float | None:
        from doorbell.settingsfile import settings_path

        try:
            return settings_path(self.data_dir).stat().st_mtime
        except OSError:
            return None

    def _check_settings(self) -> None:
        if self._reload is None:
            return
        stamp = self._settings_stamp()
        if stamp == self._settings_mtime:
            return
        self._settings_mtime = stamp
        try:
            config = self._reload()
        except DoorbellError as error:
            log.error("owner settings not applied: %s", error)
            return
        before = {name for name in ("mqtt", "ntfy", "email") if getattr(self.config, name).enabled}
        after = {name for name in ("mqtt", "ntfy", "email") if getattr(config, name).enabled}
        with self._lock:
            self.config = config
        log.info("owner settings applied")
        if before != after:
            log.info("channels changed (%s -> %s): restarting", sorted(before), sorted(after))
            self.restart_needed.set()

    def _watch_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.poll()
            except (StorageError, sqlite3.Error, OSError) as error:
                log.warning("notifier watch: %s", error)
            self._stopping.wait(self.config.notify.poll_s)

    # --- delivery --------------------------------------------------------------------------

    def _deliver_loop(self, channel: Channel) -> None:
        channel_queue = self._queues[channel.name]
        while True:
            alert = channel_queue.get()
            if alert is _STOP:
                return
            self._deliver(channel, alert)

    def _deliver(self, channel: Channel, alert: Alert) -> None:
        max_age = TEST_MAX_AGE_S if alert.kind == TEST else self.config.notify.max_age_s
        deadline = alert.time + max_age
        attempts, error = 0, ""
        while not self._stopping.is_set():
            remaining = deadline - self._wall()
            if remaining <= 0:
                break
            attempts += 1
            try:
                # short attempts, so a stop (TimeoutStopSec=20s) never waits long on one
                channel.send(alert, min(remaining, ATTEMPT_TIMEOUT_S))
            except NotifyError as failure:
                error = str(failure)
                log.warning("%s: %s alert not delivered yet: %s", channel.name, alert.kind, error)
                self._stopping.wait(min(self._retry_s * attempts, 10.0, max(0.0, remaining)))
                continue
            self._finish(channel, alert, "sent", {"attempts": attempts})
            return
        if self._stopping.is_set() and not error:
            error = "the notifier stopped before delivering it"
        reason = error or f"not delivered within {max_age:g} s"
        log.error("%s: %s alert failed: %s", channel.name, alert.kind, reason)
        self._finish(channel, alert, "failed", {"attempts": attempts, "error": reason[:300]})

    def _finish(self, channel: Channel, alert: Alert, outcome: str, extra: dict[str, Any]) -> None:
        details: dict[str, Any] = {
            "channel": channel.name,
            "kind": alert.kind,
            "host": channel.destination,
            **extra,
        }
        if alert.kind == TEST:
            details["request"] = alert.ref
        try:
            self._audit.append(ACTOR, f"notify.{outcome}", "", details)
        except (DoorbellError, sqlite3.Error, OSError) as error:
            log.error("cannot audit notify.%s: %s", outcome, error)
        with self.delivered:
            self.outcomes.append((channel.name, alert.kind, outcome))
            self.delivered.notify_all()

    def wait_for_outcome(
        self, channel: str, kind: str, timeout: float, outcome: str | None = None
    ) -> str | None:
        """Wait for a finished delivery of ``kind`` on ``channel``; its outcome, or None."""

        def found() -> str | None:
            for name, alert_kind, result in self.outcomes:
                if name == channel and alert_kind == kind and outcome in (None, result):
                    return result
            return None

        with self.delivered:
            self.delivered.wait_for(lambda: found() is not None, timeout)
            return found()

    # --- saved state -----------------------------------------------------------------------

    def _save_state(self) -> None:
        with self._lock:  # submit() changes the state on other threads
            self._dirty = False
            self._state.save(self.data_dir)
