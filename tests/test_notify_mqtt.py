"""MQTT + Home Assistant against a real Mosquitto broker on loopback (TLS, password file)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from notify_helpers import Mosquitto, Subscriber, TlsFiles, make_tls

from doorbell.audit.entries import decode_entry
from doorbell.audit.log import AuditLog
from doorbell.config import Config, parse_config
from doorbell.errors import ConfigError
from doorbell.live.publisher import LivePublisher
from doorbell.notify.alerts import Alert
from doorbell.notify.mqtt import MqttChannel
from doorbell.notify.service import Notifier

USER, PASSWORD = "doorbell", "correct horse battery"
WATCHER, WATCHER_PASSWORD = "homeassistant", "watch only"


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    return make_tls(tmp_path / "tls")


@pytest.fixture
def broker(tmp_path: Path, tls: TlsFiles) -> Iterator[Mosquitto]:
    server = Mosquitto(tmp_path / "broker", tls, {USER: PASSWORD, WATCHER: WATCHER_PASSWORD})
    server.start()
    yield server
    server.stop()


@pytest.fixture
def watcher(broker: Mosquitto, tls: TlsFiles) -> Iterator[Subscriber]:
    subscriber = Subscriber(broker, tls, WATCHER, WATCHER_PASSWORD)
    yield subscriber
    subscriber.close()


def _config(tmp_path: Path, broker: Mosquitto, tls: TlsFiles, **mqtt: Any) -> Config:
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    secret = tmp_path / "mqtt-password"
    secret.write_text((mqtt.pop("password", PASSWORD)) + "\n")
    notify = mqtt.pop("notify", {})
    section = {
        "enabled": True,
        "host": "127.0.0.1",
        "port": broker.port,
        "ca_file": str(tls.ca),
        "username": USER,
        "password_file": str(secret),
        "keepalive_s": 5,
        **mqtt,
    }
    return parse_config(
        {
            "storage": {"data_dir": str(data_dir)},
            "live": {"socket_path": str(tmp_path / "live.sock")},
            "notify": {"ui_url": "https://doorbell.lan:8443/", **notify},
            "mqtt": section,
        }
    )


def _audit_entries(data_dir: Path, action_prefix: str = "notify.") -> list[dict[str, Any]]:
    with AuditLog.open(data_dir) as audit:
        entries = [decode_entry(leaf) for _i, leaf in audit.entries()]
    return [entry for entry in entries if entry["action"].startswith(action_prefix)]


def test_discovery_availability_and_a_ring_within_one_second(
    tmp_path: Path, broker: Mosquitto, tls: TlsFiles, watcher: Subscriber
) -> None:
    config = _config(tmp_path, broker, tls)
    with (
        LivePublisher(config.live.socket_path) as recorder_side,
        AuditLog.open(config.data_dir) as audit,
    ):
        notifier = Notifier(config, [MqttChannel(config.mqtt, ui_url=config.notify.ui_url)], audit)
        with notifier:
            ring_config = json.loads(
                watcher.wait_for("homeassistant/event/doorbell/ring/config")[0]
            )
            assert ring_config["event_types"] == ["ring"]
            assert ring_config["state_topic"] == "doorbell/ring"
            assert ring_config["availability_topic"] == "doorbell/status"
            assert ring_config["device"]["identifiers"] == ["doorbell"]
            motion = json.loads(
                watcher.wait_for("homeassistant/binary_sensor/doorbell/motion/config")[0]
            )
            assert motion["device_class"] == "motion"
            for sensor in ("storage", "camera"):
                found = watcher.wait_for(f"homeassistant/sensor/doorbell/{sensor}/config")
                assert json.loads(found[0])["device_class"] == "enum"
            assert watcher.wait_for("doorbell/status")[-1] == b"online"
            deadline = time.monotonic() + 5
            while recorder_side.subscriber_count == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            # what the recorder publishes: frames (never forwarded) and events
            recorder_side.publish_frame(
                b"\xff\xd8\xff" + b"J" * 5000, time_s=1.0, width=8, height=8
            )
            pressed = time.time()
            recorder_side.publish_event("ring", time_s=pressed, event="ev-1", clip=None)
            recorder_side.publish_event("motion_start", time_s=pressed, clip="c1", zones=["porch"])
            ring = watcher.wait_for("doorbell/ring", timeout=5)
            arrived = watcher.arrival("doorbell/ring")
            assert arrived is not None and arrived - pressed < 1.0, "a ring arrives within 1 s"
            event = json.loads(ring[0])
            assert event["event_type"] == "ring"
            assert event["url"] == "https://doorbell.lan:8443/"
            assert watcher.wait_for("doorbell/motion")[-1] == b"ON"
            attributes = json.loads(watcher.wait_for("doorbell/motion/attributes")[-1])
            assert attributes == {"zones": ["porch"]}
            assert notifier.wait_for_outcome("mqtt", "ring", 5) == "sent"
        assert watcher.wait_for("doorbell/status", count=2)[-1] == b"offline"
    for topic, payload, _retain, _at in watcher.messages:
        assert b"\xff\xd8" not in payload and len(payload) < 2000, f"no picture on {topic}"
    sent = _audit_entries(config.data_dir)
    ring_entry = next(e for e in sent if e["details"]["kind"] == "ring")
    assert ring_entry["action"] == "notify.sent"
    assert ring_entry["details"]["host"] == f"127.0.0.1:{broker.port}"
    assert ring_entry["details"]["channel"] == "mqtt"
    assert set(ring_entry["details"]) == {"channel", "kind", "host", "attempts"}


def test_broker_restart_loses_no_ring(
    tmp_path: Path, broker: Mosquitto, tls: TlsFiles, watcher: Subscriber
) -> None:
    config = _config(tmp_path, broker, tls)
    with AuditLog.open(config.data_dir) as audit:
        channel = MqttChannel(config.mqtt, reconnect_max_s=1.0)
        with Notifier(config, [channel], audit, live=False) as notifier:
            deadline = time.monotonic() + 10
            while not channel.is_connected and time.monotonic() < deadline:
                time.sleep(0.05)
            assert channel.is_connected
            broker.stop()
            while channel.is_connected and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not channel.is_connected
            assert notifier.submit(Alert("ring", time.time(), "ring:while-down")) == ["mqtt"]
            time.sleep(1.0)  # the ring waits while the broker is down
            broker.start()
            assert notifier.wait_for_outcome("mqtt", "ring", 20) == "sent"
            # the watcher's persistent session (QoS 1, clean_session false) gets it after
            # its own reconnect
            rings = watcher.wait_for("doorbell/ring", timeout=15)
            assert len(rings) == 1 and json.loads(rings[0])["event_type"] == "ring"


def test_wrong_password_is_a_clear_error_and_the_recorder_side_is_unaffected(
    tmp_path: Path, broker: Mosquitto, tls: TlsFiles
) -> None:
    config = _config(tmp_path, broker, tls, password="wrong", notify={"max_age_s": 5.0})
    with (
        LivePublisher(config.live.socket_path) as recorder_side,
        AuditLog.open(config.data_dir) as audit,
    ):
        channel = MqttChannel(config.mqtt)
        with Notifier(config, [channel], audit) as notifier:
            deadline = time.monotonic() + 10
            while not channel.error and time.monotonic() < deadline:
                time.sleep(0.05)
            assert "refused the connection" in channel.error
            assert "mqtt.password_file" in channel.error
            while recorder_side.subscriber_count == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            started = time.monotonic()
            for index in range(200):  # the recorder never waits on the notifier
                recorder_side.publish_event("ring", time_s=time.time(), event=f"ev-{index}")
                recorder_side.publish_frame(
                    b"\xff\xd8" + bytes(20000), time_s=1.0, width=8, height=8
                )
            assert time.monotonic() - started < 1.0
            assert notifier.wait_for_outcome("mqtt", "ring", 15) == "failed"
    failed = _audit_entries(config.data_dir)
    assert [e["action"] for e in failed] == ["notify.failed"], "one burst, one alert"
    assert "refused the connection" in failed[0]["details"]["error"]
    assert "wrong" not in json.dumps(failed)


def test_client_certificate_authentication(tmp_path: Path, tls: TlsFiles) -> None:
    broker = Mosquitto(tmp_path / "certbroker", tls, {}, require_certificate=True)
    broker.start()
    try:
        config = _config(
            tmp_path,
            broker,
            tls,
            username="",
            password_file="",
            cert_file=str(tls.client_cert),
            key_file=str(tls.client_key),
        )
        with AuditLog.open(config.data_dir) as audit:
            channel = MqttChannel(config.mqtt)
            with Notifier(config, [channel], audit, live=False) as notifier:
                notifier.submit(Alert("ring", time.time(), "ring:cert"))
                assert notifier.wait_for_outcome("mqtt", "ring", 10) == "sent"
    finally:
        broker.stop()


# paho leaves the socket of a failed TLS handshake to the garbage collector
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_broker_certificate_from_another_ca_is_refused(
    tmp_path: Path, broker: Mosquitto, tls: TlsFiles
) -> None:
    other = make_tls(tmp_path / "other")
    config = _config(tmp_path, broker, tls, ca_file=str(other.ca), notify={"max_age_s": 5.0})
    with (
        AuditLog.open(config.data_dir) as audit,
        Notifier(config, [MqttChannel(config.mqtt)], audit, live=False) as notifier,
    ):
        notifier.submit(Alert("ring", time.time(), "ring:mitm"))
        assert notifier.wait_for_outcome("mqtt", "ring", 15) == "failed"
    failed = _audit_entries(config.data_dir)
    assert "CERTIFICATE_VERIFY_FAILED" in failed[0]["details"]["error"]


def test_plain_mqtt_to_another_host_is_refused_by_the_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="only a loopback broker may go without TLS"):
        parse_config({"mqtt": {"enabled": True, "host": "broker.lan", "tls": False}})


def test_the_last_will_says_offline_when_the_notifier_dies(
    tmp_path: Path, broker: Mosquitto, tls: TlsFiles, watcher: Subscriber
) -> None:
    config = _config(tmp_path, broker, tls, keepalive_s=5)
    path = tmp_path / "doorbell.toml"
    path.write_text(
        f'[storage]\ndata_dir = "{config.data_dir}"\n'
        f'[live]\nsocket_path = "{tmp_path / "l.sock"}"\n'
        f'[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {broker.port}\n'
        f'ca_file = "{tls.ca}"\nusername = "{USER}"\n'
        f'password_file = "{config.mqtt.password_file}"\nkeepalive_s = 5\n'
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from doorbell.cli import main; sys.exit(main())",
            "notify",
            "--config",
            str(path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert watcher.wait_for("doorbell/status", timeout=20)[-1] == b"online"
        process.send_signal(signal.SIGKILL)  # no clean goodbye: the broker's will speaks
        process.wait(timeout=10)
        statuses = watcher.wait_for("doorbell/status", timeout=15, count=2)
        assert statuses[-1] == b"offline"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _processes_config(tmp_path: Path, broker: Mosquitto, tls: TlsFiles, password: str) -> Path:
    from doorbell.age.identities import X25519Identity
    from doorbell.audit.devicekey import create_device_key

    data = tmp_path / "data"
    (data / "keys").mkdir(parents=True)
    identity = X25519Identity.generate()
    (data / "keys" / "owner.recipients").write_text(f"{identity.recipient}\n")
    create_device_key(data / "keys", "doorbell.test/recorder")
    (tmp_path / "mqtt-password").write_text(password + "\n")
    path = tmp_path / "doorbell.toml"
    path.write_text(
        f"""[camera]
width = 320
height = 240
lores_width = 160
lores_height = 120
fps = 15
[motion]
enabled = false
[recording]
pre_roll_s = 0.5
post_roll_s = 0.5
[storage]
data_dir = "{data}"
min_free_gb = 0.0
[live]
socket_path = "{tmp_path / "live.sock"}"
[notify]
max_age_s = 5.0
[mqtt]
enabled = true
host = "127.0.0.1"
port = {broker.port}
ca_file = "{tls.ca}"
username = "{USER}"
password_file = "{tmp_path / "mqtt-password"}"
events = ["ring"]
"""
    )
    return path


def _doorbell(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from doorbell.cli import main; sys.exit(main())",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(*processes: subprocess.Popen[str]) -> list[tuple[int, str, str]]:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    results = []
    for process in processes:
        out, err = process.communicate(timeout=60)
        results.append((process.returncode, out, err))
    return results


def test_a_button_press_reaches_home_assistant_within_one_second(
    tmp_path: Path, broker: Mosquitto, tls: TlsFiles, watcher: Subscriber
) -> None:
    """Real processes: `doorbell recorder` (SIGUSR1 is the button) and `doorbell notify`."""
    config = _processes_config(tmp_path, broker, tls, PASSWORD)
    recorder = _doorbell("recorder", "--config", str(config))
    notifier = _doorbell("notify", "--config", str(config))
    try:
        assert watcher.wait_for("doorbell/status", timeout=30)[-1] == b"online"
        state = tmp_path / "data" / "notify-state.json"
        deadline = time.monotonic() + 30
        while not state.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)  # the recorder's first frames, the notifier's live subscription
        pressed = time.time()
        recorder.send_signal(signal.SIGUSR1)
        watcher.wait_for("doorbell/ring", timeout=10)
        arrived = watcher.arrival("doorbell/ring")
    finally:
        (rec_code, _rec_out, rec_err), (notify_code, _out, notify_err) = _stop(recorder, notifier)
    assert arrived is not None, notify_err
    assert arrived - pressed < 1.0, f"press to Home Assistant took {arrived - pressed:.3f} s"
    assert rec_code == 0, rec_err
    assert notify_code == 0, notify_err


def test_with_a_wrong_password_the_recorder_records_the_ring_anyway(
    tmp_path: Path, broker: Mosquitto, tls: TlsFiles
) -> None:
    config = _processes_config(tmp_path, broker, tls, "not the password")
    recorder = _doorbell("recorder", "--config", str(config))
    notifier = _doorbell("notify", "--config", str(config))
    try:
        data = tmp_path / "data"
        deadline = time.monotonic() + 30
        while not (data / "notify-state.json").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)
        recorder.send_signal(signal.SIGUSR1)
        failed: list[dict[str, Any]] = []
        while not failed and time.monotonic() < deadline:
            time.sleep(0.5)
            failed = [e for e in _audit_entries(data) if e["action"] == "notify.failed"]
    finally:
        (rec_code, rec_out, rec_err), (notify_code, _out, notify_err) = _stop(recorder, notifier)
    assert rec_code == 0, rec_err
    assert "1 clip(s)" in rec_out, "the ring was recorded"
    recorded = _audit_entries(data, "doorbell.ring")
    assert len(recorded) == 1
    assert failed and "refused the connection" in failed[0]["details"]["error"]
    assert "refused the connection" in notify_err and "mqtt.password_file" in notify_err
    assert notify_code == 0


def test_a_cli_test_alert_beside_the_daemon_does_not_disturb_it(
    tmp_path: Path, broker: Mosquitto, tls: TlsFiles, watcher: Subscriber
) -> None:
    config = _config(tmp_path, broker, tls)
    path = tmp_path / "doorbell.toml"
    path.write_text(
        f'[storage]\ndata_dir = "{config.data_dir}"\n'
        f'[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {broker.port}\n'
        f'ca_file = "{tls.ca}"\nusername = "{USER}"\n'
        f'password_file = "{config.mqtt.password_file}"\n'
    )
    with AuditLog.open(config.data_dir) as audit:
        daemon = MqttChannel(config.mqtt)
        with Notifier(config, [daemon], audit, live=False):
            assert watcher.wait_for("doorbell/status")[-1] == b"online"
            result = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import sys; from doorbell.cli import main; sys.exit(main())",
                    "notify",
                    "--config",
                    str(path),
                    "--test",
                    "mqtt",
                ],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert result.returncode == 0, result.stderr
            notice = json.loads(watcher.wait_for("doorbell/notice")[0])
            assert notice["event_type"] == "test"
            time.sleep(0.5)
            assert daemon.is_connected, "the daemon kept its session"
    statuses = [p for topic, p, _r, _t in watcher.messages if topic == "doorbell/status"]
    assert statuses == [b"online", b"offline"], "only the daemon's own online and goodbye"
