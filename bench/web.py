"""Benchmark the owner's web UI as `doorbell web` serves it (a subprocess, plain HTTP).

Measures:
- timeline page latency (p50/p95) with 10,000 clips in the index and 20 concurrent clients;
- time to first byte of a 64 KiB Range at 0 % and at 90 % of a large encrypted clip
  (target: 90 % costs at most 1.5x of 0 %: seeking decrypts one chunk, not the prefix);
- the web process's resident memory after the load (target <= 100 MB).

Usage: ``python bench/web.py [--clip-mb 200] [--requests 400]``. Prints a table and writes
``bench/results/web.json``. Plain HTTP keeps TLS handshakes out of the app's numbers.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from doorbell.age.encrypt import encrypt
from doorbell.audit.devicekey import create_device_key
from doorbell.keys import create_owner_keys
from doorbell.store import Store

PASSPHRASE = "bench passphrase that is long enough 77"  # noqa: S105 - a throwaway bench key
T0 = 1_767_225_600.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_data_dir(root: Path, clip_mb: int) -> tuple[Path, str]:
    data_dir = root / "data"
    data_dir.mkdir()
    identity = create_owner_keys(data_dir, PASSPHRASE, work_factor=10)
    create_device_key(data_dir / "keys", "doorbell.bench/web")
    with Store.open(data_dir) as store:
        big_id = "20260101T000000Z-0000bbbb"
        path = store.begin_clip(big_id, started_at=T0, trigger="motion")
        block = os.urandom(1 << 20)
        with open(path, "wb") as raw, encrypt(raw, [identity.recipient]) as writer:
            for _ in range(clip_mb):
                writer.write(block)
        store.seal_clip(
            big_id,
            ended_at=T0 + 600,
            duration_s=600,
            size_bytes=path.stat().st_size,
            sha256="0" * 64,
        )
        db = store._db
        db.execute("BEGIN")
        for i in range(10_000):
            started = T0 + 3600 + i * 60
            clip_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started)) + f"-{i:08x}"
            db.execute(
                "INSERT INTO events (id, kind, started_at) VALUES (?, ?, ?)",
                (f"e{i}", "ring" if i % 10 == 0 else "motion", started),
            )
            db.execute(
                "INSERT INTO clips (id, event_id, started_at, duration_s, size_bytes, trigger,"
                " sealed, path) VALUES (?, ?, ?, 10, 1000000, 'motion', 1, ?)",
                (clip_id, f"e{i}", started, f"clips/x/{clip_id}.mp4.age"),
            )
        db.execute("COMMIT")
    return data_dir, big_id


class Client:
    """A keep-alive HTTP client with the session cookie."""

    def __init__(self, port: int, cookie: str = "", source: str = "127.0.0.1") -> None:
        self.connection = http.client.HTTPConnection(
            "127.0.0.1", port, timeout=60, source_address=(source, 0)
        )
        self.cookie = cookie

    def request(
        self, method: str, path: str, body: str | None = None, headers: dict | None = None
    ) -> tuple[int, dict, bytes]:
        sent = dict(headers or {})
        if self.cookie:
            sent["Cookie"] = self.cookie
        if body is not None:
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        self.connection.request(method, path, body=body, headers=sent)
        response = self.connection.getresponse()
        data = response.read()
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                self.cookie = value.split(";", 1)[0]
        return response.status, dict(response.getheaders()), data


def unlock(port: int) -> str:
    from urllib.parse import urlencode

    client = Client(port)
    _, _, page = client.request("GET", "/unlock")
    found = re.search(rb'name="csrf_token" value="([^"]+)"', page)
    if found is None:
        raise SystemExit("bench: no CSRF token on /unlock")
    token = found.group(1).decode()
    form = urlencode({"csrf_token": token, "passphrase": PASSPHRASE})
    status, _, _ = client.request("POST", "/unlock", form)
    if status != 302:
        raise SystemExit(f"unlock failed: {status}")
    return client.cookie


def timeline_latencies(port: int, cookie: str, clients: int, requests: int) -> list[float]:
    timings: list[float] = []
    lock = threading.Lock()
    per_client = max(1, requests // clients)

    def run(seed: int) -> None:
        # each client from its own loopback address, as 20 devices would be (the server
        # caps open connections per address: doorbell/webserver.py)
        client = Client(port, cookie, source=f"127.0.1.{seed + 1}")
        for i in range(per_client):
            page = 1 + (seed * 37 + i * 11) % 200
            started = time.perf_counter()
            status, _, _ = client.request("GET", f"/timeline?page={page}")
            elapsed = time.perf_counter() - started
            if status != 200:
                raise SystemExit(f"timeline answered {status}")
            with lock:
                timings.append(elapsed)

    threads = [threading.Thread(target=run, args=(n,), name=f"bench-{n}") for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return timings


def ttfb(port: int, cookie: str, clip_id: str, offset: int, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        started = time.perf_counter()
        connection.request(
            "GET",
            f"/clips/{clip_id}/video",
            headers={"Cookie": cookie, "Range": f"bytes={offset}-{offset + 65535}"},
        )
        response = connection.getresponse()
        response.read(1)
        samples.append(time.perf_counter() - started)
        response.read()
        connection.close()
    return statistics.median(samples)


def rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+) kB", text)
    if found is None:
        raise SystemExit(f"bench: no VmRSS for pid {pid}")
    return int(found.group(1)) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip-mb", type=int, default=64, help="size of the large clip (MiB)")
    parser.add_argument("--requests", type=int, default=400, help="timeline requests in total")
    parser.add_argument("--clients", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="doorbell-bench-web-") as tmp:
        root = Path(tmp)
        data_dir, big_id = build_data_dir(root, args.clip_mb)
        port = free_port()
        config = root / "doorbell.toml"
        config.write_text(
            f'[storage]\ndata_dir = "{data_dir}"\n[web]\nport = {port}\ntls = false\n'
            f'[live]\nsocket_path = "{root / "live.sock"}"\n'
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "doorbell.cli", "web", "--config", str(config)],
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            cookie = unlock(port)
            rss_idle = rss_mb(process.pid)
            size = (
                Client(port, cookie)
                .request("GET", f"/clips/{big_id}/video", headers={"Range": "bytes=0-0"})[1][
                    "Content-Range"
                ]
                .split("/")[1]
            )
            plain_size = int(size)
            ttfb(port, cookie, big_id, 0, 3)  # warm up
            start_ttfb = ttfb(port, cookie, big_id, 0, 20)
            late_ttfb = ttfb(port, cookie, big_id, int(plain_size * 0.9), 20)
            single = sorted(timeline_latencies(port, cookie, 1, 40))
            timings = timeline_latencies(port, cookie, args.clients, args.requests)
            rss_loaded = rss_mb(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=30)
    timings.sort()
    p50 = statistics.median(timings)
    p95 = timings[int(0.95 * (len(timings) - 1))]
    results = {
        "timeline_1_client_p50_ms": round(statistics.median(single) * 1000, 1),
        "timeline_clients": args.clients,
        "timeline_requests": len(timings),
        "timeline_p50_ms": round(p50 * 1000, 1),
        "timeline_p95_ms": round(p95 * 1000, 1),
        "clip_mb": args.clip_mb,
        "ttfb_0pct_ms": round(start_ttfb * 1000, 2),
        "ttfb_90pct_ms": round(late_ttfb * 1000, 2),
        "ttfb_ratio_90_vs_0": round(late_ttfb / start_ttfb, 2),
        "rss_after_unlock_mb": round(rss_idle, 1),
        "rss_after_load_mb": round(rss_loaded, 1),
    }
    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "web.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
