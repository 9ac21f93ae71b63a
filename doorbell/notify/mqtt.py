"""MQTT to the owner's broker, with Home Assistant discovery (paho-mqtt).

One device (``mqtt.client_id``) with: an ``event`` entity for the doorbell (event type
``ring``), an ``event`` entity for notices (export requests, expiring requests, failed
unlocks, test alerts), a motion ``binary_sensor`` (zone names as attributes), and ``sensor``
entities for storage (``ok``/``full``) and camera health (``ok``/``lost``). Every entity
follows the availability topic ``<prefix>/status``: ``online`` (retained) after connecting,
``offline`` from the last will when the notifier vanishes, and on a clean stop.

Topics (``<prefix>`` = ``mqtt.topic_prefix``)::

    <prefix>/status   online | offline                        retained
    <prefix>/ring     {"event_type": "ring", "time": ..., "url": ...}   QoS 1
    <prefix>/notice   {"event_type": "export_request", ...}     QoS 1
    <prefix>/motion   ON | OFF, <prefix>/motion/attributes {"zones": [...]}   retained
    <prefix>/storage  ok | full                                  retained
    <prefix>/camera   ok | lost                                  retained

Everything is QoS 1. paho reconnects by itself; :meth:`MqttChannel.send` waits (up to its
timeout) for a connection and for the broker's PUBACK. A refused login is reported as such
(:attr:`MqttChannel.error`). No picture is ever published.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from doorbell import __version__
from doorbell.audit.entries import rfc3339_utc
from doorbell.config import MqttConfig
from doorbell.errors import NotifyError
from doorbell.notify.alerts import TEST, Alert
from doorbell.notify.channel import read_secret, short_error, tls_context

log = logging.getLogger(__name__)

NOTICE_KINDS = ("export_request", "export_expiring", "unlock_failures", "camera_down", TEST)
#: state topic suffix and payload of each state-like kind
STATES: dict[str, tuple[str, str]] = {
    "motion_start": ("motion", "ON"),
    "motion_stop": ("motion", "OFF"),
    "storage_full": ("storage", "full"),
    "storage_ok": ("storage", "ok"),
    "camera_lost": ("camera", "lost"),
    "camera_back": ("camera", "ok"),
}


def discovery_messages(config: MqttConfig) -> dict[str, dict[str, Any]]:
    """Home Assistant discovery: config topic -> payload, for the one doorbell device."""
    prefix, node = config.topic_prefix, config.client_id
    device = {
        "identifiers": [node],
        "name": "Doorbell",
        "manufacturer": "doorbell",
        "model": "privacy-first video doorbell",
        "sw_version": __version__,
    }

    def entity(name: str, key: str, **fields: Any) -> dict[str, Any]:
        return {
            "name": name,
            "unique_id": f"{node}_{key}",
            "object_id": f"{node}_{key}",
            "availability_topic": f"{prefix}/status",
            "device": device,
            **fields,
        }

    base = config.discovery_prefix
    return {
        f"{base}/event/{node}/ring/config": entity(
            "Ring",
            "ring",
            state_topic=f"{prefix}/ring",
            event_types=["ring"],
            device_class="doorbell",
        ),
        f"{base}/event/{node}/notice/config": entity(
            "Notice", "notice", state_topic=f"{prefix}/notice", event_types=list(NOTICE_KINDS)
        ),
        f"{base}/binary_sensor/{node}/motion/config": entity(
            "Motion",
            "motion",
            state_topic=f"{prefix}/motion",
            json_attributes_topic=f"{prefix}/motion/attributes",
            payload_on="ON",
            payload_off="OFF",
            device_class="motion",
        ),
        f"{base}/sensor/{node}/storage/config": entity(
            "Storage",
            "storage",
            state_topic=f"{prefix}/storage",
            device_class="enum",
            options=["ok", "full"],
            entity_category="diagnostic",
        ),
        f"{base}/sensor/{node}/camera/config": entity(
            "Camera",
            "camera",
            state_topic=f"{prefix}/camera",
            device_class="enum",
            options=["ok", "lost"],
            entity_category="diagnostic",
        ),
    }


class MqttChannel:
    """A persistent, reconnecting MQTT connection that publishes alerts and states."""

    name = "mqtt"

    def __init__(
        self,
        config: MqttConfig,
        *,
        ui_url: str = "",
        reconnect_min_s: float = 1.0,
        reconnect_max_s: float = 30.0,
        one_shot: bool = False,
    ) -> None:
        self.config = config
        self.destination = f"{config.host}:{config.port}"
        self.ui_url = ui_url
        self.error = ""
        # `doorbell notify --test` next to the running daemon: its own client id, and it
        # neither announces the device nor says online/offline (that is the daemon's job)
        self.one_shot = one_shot
        self._connected = threading.Event()
        self._lock = threading.Lock()
        self._started = False
        password = (
            read_secret(config.password_file, "mqtt.password_file")
            if config.password_file
            else None
        )
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{config.client_id}-test" if one_shot else config.client_id,
            protocol=paho.MQTTv311,
            clean_session=True,
        )
        if config.username:
            client.username_pw_set(config.username, password)
        if config.tls:
            context = tls_context(config.ca_file, "mqtt.ca_file")
            if config.cert_file:
                try:
                    context.load_cert_chain(config.cert_file, config.key_file)
                except OSError as error:
                    raise NotifyError(
                        f"mqtt.cert_file/key_file: cannot load {config.cert_file}: {error}"
                    ) from error
            client.tls_set_context(context)
        if not one_shot:
            client.will_set(self._topic("status"), "offline", qos=1, retain=True)
        client.reconnect_delay_set(
            min_delay=max(1, round(reconnect_min_s)), max_delay=round(reconnect_max_s)
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        self._client = client

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    def _topic(self, suffix: str) -> str:
        return f"{self.config.topic_prefix}/{suffix}"

    def start(self) -> None:
        """Connect in the background (paho's network thread) and keep reconnecting."""
        if self._started:
            return
        self._started = True
        self._client.connect_async(self.config.host, self.config.port, self.config.keepalive_s)
        self._client.loop_start()

    def close(self) -> None:
        """Say ``offline`` (retained), disconnect and join paho's thread."""
        if not self._started:
            return
        self._started = False
        if self._connected.is_set() and not self.one_shot:
            try:
                info = self._client.publish(self._topic("status"), "offline", qos=1, retain=True)
                info.wait_for_publish(2.0)
            except (RuntimeError, ValueError) as error:
                log.info("mqtt: could not say offline: %s", error)
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        properties: object,
    ) -> None:
        if reason.is_failure:
            self.error = f"broker {self.destination} refused the connection: {reason}" + (
                " (check mqtt.username and mqtt.password_file)" if _is_auth(reason) else ""
            )
            log.error("mqtt: %s", self.error)
            return
        self.error = ""
        if not self.one_shot:
            for topic, payload in discovery_messages(self.config).items():
                client.publish(topic, json.dumps(payload, sort_keys=True), qos=1, retain=True)
            client.publish(self._topic("status"), "online", qos=1, retain=True)
        self._connected.set()
        log.info("mqtt: connected to %s", self.destination)

    def _on_connect_fail(self, client: paho.Client, userdata: object) -> None:
        # paho calls this inside its ``except OSError`` (refused, TLS verification failed)
        error = sys.exception()
        reason = short_error(error) if error is not None else "connection failed"
        if self.error != f"cannot connect to the broker {self.destination}: {reason}":
            self.error = f"cannot connect to the broker {self.destination}: {reason}"
            log.error("mqtt: %s", self.error)

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.DisconnectFlags,
        reason: ReasonCode,
        properties: object,
    ) -> None:
        if self._connected.is_set():
            log.warning("mqtt: disconnected from %s (%s); reconnecting", self.destination, reason)
        self._connected.clear()

    def messages_for(self, alert: Alert) -> list[tuple[str, str, bool]]:
        """(topic, payload, retain) for ``alert``: an event, or a state (and its attributes)."""
        if alert.kind in STATES:
            suffix, value = STATES[alert.kind]
            messages = [(self._topic(suffix), value, True)]
            if suffix == "motion":
                attributes = json.dumps({"zones": list(alert.zones)})
                messages.append((self._topic("motion/attributes"), attributes, True))
            return messages
        event: dict[str, Any] = {"event_type": alert.kind, "time": rfc3339_utc(alert.time)}
        if self.ui_url:
            event["url"] = self.ui_url
        topic = self._topic("ring" if alert.kind == "ring" else "notice")
        return [(topic, json.dumps(event, sort_keys=True), False)]

    def send(self, alert: Alert, timeout_s: float) -> None:
        """Publish ``alert`` with QoS 1 and wait for the broker's acknowledgement.

        Raises :class:`NotifyError` when there is no connection within ``timeout_s`` (with the
        broker's reason if it refused the login) or no PUBACK in time.
        """
        if not self._connected.wait(timeout_s):
            raise NotifyError(self.error or f"no connection to the broker {self.destination}")
        try:
            infos = [
                self._client.publish(topic, payload, qos=1, retain=retain)
                for topic, payload, retain in self.messages_for(alert)
            ]
            for info in infos:
                info.wait_for_publish(timeout_s)
                if not info.is_published():
                    raise NotifyError(f"broker {self.destination} did not acknowledge in time")
        except (RuntimeError, ValueError) as error:
            raise NotifyError(f"broker {self.destination}: {short_error(error)}") from None


def _is_auth(reason: ReasonCode) -> bool:
    return reason.value in (4, 5, 0x86, 0x87)  # bad user name or password / not authorised
