"""Ring alert latency: from a button press to delivery, on loopback, with the real processes.

Runs ``doorbell recorder`` (mock camera, 320x240 at 15 fps, real time) and ``doorbell notify``
as separate processes, a real Mosquitto broker (TLS, password file) with a Home Assistant
stand-in subscribed over TLS, and an HTTP server standing in for the owner's ntfy server.
Each press is SIGUSR1 to the recorder (the documented test ring, what the GPIO button does).
Measured per channel: press -> the MQTT ring message at the subscriber, press -> the ntfy
POST at the server (wall clock, same host). The recorder handles a ring at its next frame,
so up to one frame interval (67 ms at 15 fps) is part of the figure. Presses are ``--gap-s``
apart so each starts its own event (presses within one event are one alert by design).

    .venv/bin/python bench/notify.py [--rings 10] [--gap-s 3]

Prints a table and writes bench/results/notify.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the real servers the tests use

from notify_helpers import HttpRecorder, Mosquitto, Subscriber, make_tls  # noqa: E402

from doorbell.age.identities import X25519Identity  # noqa: E402
from doorbell.audit.devicekey import create_device_key  # noqa: E402


def _doorbell(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from doorbell.cli import main; sys.exit(main())",
            *args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )


def _summary(values_ms: list[float]) -> dict[str, float]:
    ordered = sorted(values_ms)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(p95, 1),
        "max_ms": round(ordered[-1], 1),
    }


def run(rings: int, gap_s: float) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="doorbell-bench-notify-"))
    data = work / "data"
    (data / "keys").mkdir(parents=True)
    identity = X25519Identity.generate()
    (data / "keys" / "owner.recipients").write_text(f"{identity.recipient}\n")
    create_device_key(data / "keys", "doorbell.bench/recorder")
    tls = make_tls(work / "tls")
    broker = Mosquitto(work / "broker", tls, {"doorbell": "bench-mqtt", "ha": "bench-ha"})
    broker.start()
    ntfy = HttpRecorder()
    (work / "mqtt-password").write_text("bench-mqtt\n")
    config = work / "doorbell.toml"
    config.write_text(
        f"""[camera]
backend = "mock"
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
socket_path = "{work / "live.sock"}"
[notify]
dedupe_s = 0.0
rate_limit_per_hour = 10000
[mqtt]
enabled = true
host = "127.0.0.1"
port = {broker.port}
ca_file = "{tls.ca}"
username = "doorbell"
password_file = "{work / "mqtt-password"}"
events = ["ring"]
[ntfy]
enabled = true
url = "http://127.0.0.1:{ntfy.port}/doorbell"
events = ["ring"]
"""
    )
    watcher = Subscriber(broker, tls, "ha", "bench-ha")
    recorder = _doorbell("recorder", "--config", str(config))
    notifier = _doorbell("notify", "--config", str(config))
    mqtt_ms: list[float] = []
    ntfy_ms: list[float] = []
    try:
        watcher.wait_for("doorbell/status", timeout=30)
        deadline = time.monotonic() + 30
        while not (data / "notify-state.json").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2.0)  # the notifier's live subscription, the recorder's first frames
        for index in range(rings):
            pressed = time.time()
            os.kill(recorder.pid, signal.SIGUSR1)
            mqtt_count = index + 1
            watcher.wait_for("doorbell/ring", timeout=10, count=mqtt_count)
            ntfy.wait_for(index + 1, timeout=10)
            arrivals = [at for topic, _p, _r, at in watcher.messages if topic == "doorbell/ring"]
            if len(arrivals) >= mqtt_count:
                mqtt_ms.append((arrivals[mqtt_count - 1] - pressed) * 1000)
            if len(ntfy.requests) > index:
                ntfy_ms.append((ntfy.arrivals[index] - pressed) * 1000)
            time.sleep(gap_s)
    finally:
        for process in (notifier, recorder):
            process.send_signal(signal.SIGTERM)
        for process in (notifier, recorder):
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        watcher.close()
        ntfy.close()
        broker.stop()
    return {
        "rings": rings,
        "mqtt": _summary(mqtt_ms) if mqtt_ms else {"n": 0},
        "ntfy": _summary(ntfy_ms) if ntfy_ms else {"n": 0},
        "target_ms": 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rings", type=int, default=10)
    parser.add_argument("--gap-s", type=float, default=3.0)
    args = parser.parse_args()
    result = run(args.rings, args.gap_s)
    print(f"{'channel':<8} {'n':>3} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}  (target < 1000)")
    for channel in ("mqtt", "ntfy"):
        row = result[channel]
        assert isinstance(row, dict)
        if not row.get("n"):
            print(f"{channel:<8} {0:>3}  no deliveries")
            continue
        median, p95, worst = row["median_ms"], row["p95_ms"], row["max_ms"]
        print(f"{channel:<8} {row['n']:>3} {median:>10} {p95:>8} {worst:>8}")
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "notify.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out / 'notify.json'}")


if __name__ == "__main__":
    main()
