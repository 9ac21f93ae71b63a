"""Off-site copy benchmark: lag behind the recorder at 2 Mbit/s, CPU per recorded second.

    .venv/bin/python bench/replicate.py                  # 60 s per destination
    .venv/bin/python bench/replicate.py --seconds 300 --rate-kbps 2000

A recorder stand-in (thread ``bench-recorder``) writes clips the way the recorder does: an
index row at the start, ciphertext-sized random bytes appended every 100 ms at
``--rate-kbps``, fsync every 2 s, a sealed row and a signed ``clip.sealed`` entry at the end
of every ``--clip-s`` clip. ``doorbell replicate`` runs as its own process (as under systemd),
once to a local directory and once over SFTP to a real sshd on loopback (when installed).

Lag: every 100 ms the sizes of the clip being written and of its copy are sampled; the lag
of a sample is how long ago the recorder had written what the copy now holds. CPU: the
replicator process's user+system time (from /proc) over the run, divided by the seconds
recorded. Prints a table and writes bench/results/replicate.json.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # test helpers

from doorbell.audit.devicekey import create_device_key, load_device_signer
from doorbell.audit.log import AuditLog
from doorbell.store import Store, new_clip_id

TICK_S = 0.1
FSYNC_S = 2.0


class Recorder(threading.Thread):
    """Writes clips at a fixed bitrate; keeps (time, bytes written) of the open clip."""

    def __init__(self, data_dir: Path, rate_kbps: int, clip_s: float, seconds: float) -> None:
        super().__init__(name="bench-recorder", daemon=False)
        self.data_dir = data_dir
        self.bytes_per_tick = int(rate_kbps * 1000 / 8 * TICK_S)
        self.clip_s = clip_s
        self.seconds = seconds
        self.history: dict[str, list[tuple[float, int]]] = {}
        self.paths: dict[str, Path] = {}
        self.recorded_s = 0.0

    def run(self) -> None:
        store = Store.open(self.data_dir)
        signer = load_device_signer(self.data_dir / "keys")
        start = time.monotonic()
        with AuditLog.open(self.data_dir, signer=signer) as audit:
            while time.monotonic() - start < self.seconds:
                self._one_clip(store, audit, start)
        store.close()
        self.recorded_s = time.monotonic() - start

    def _one_clip(self, store: Store, audit: AuditLog, start: float) -> None:
        began = time.time()
        clip_id = new_clip_id(began)
        path = store.begin_clip(clip_id, started_at=began, trigger="motion")
        self.paths[clip_id] = path
        history = self.history.setdefault(clip_id, [])
        written = 0
        next_tick = time.monotonic()
        last_sync = next_tick
        with open(path, "wb") as handle:
            while time.monotonic() - next_tick < 5 and (
                time.monotonic() - start < self.seconds and time.time() - began < self.clip_s
            ):
                handle.write(os.urandom(self.bytes_per_tick))
                handle.flush()
                written += self.bytes_per_tick
                history.append((time.monotonic(), written))
                if time.monotonic() - last_sync >= FSYNC_S:
                    os.fsync(handle.fileno())
                    last_sync = time.monotonic()
                next_tick += TICK_S
                time.sleep(max(0.0, next_tick - time.monotonic()))
            os.fsync(handle.fileno())
        store.seal_clip(
            clip_id,
            ended_at=time.time(),
            duration_s=time.time() - began,
            size_bytes=written,
            sha256="0" * 64,
        )
        audit.append("recorder", "clip.sealed", clip_id, {"sha256": "0" * 64})


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_once(
    root: Path, destination: str, copy_root: Path, extra: str, args: argparse.Namespace
) -> dict[str, float]:
    data_dir = root / "data"
    (data_dir / "keys").mkdir(parents=True)
    create_device_key(data_dir / "keys", "doorbell.local/bench-replicate")
    Store.open(data_dir).close()
    AuditLog.open(data_dir, signer=load_device_signer(data_dir / "keys")).close()
    config = root / "doorbell.toml"
    config.write_text(
        f'[storage]\ndata_dir = "{data_dir}"\n[replicate]\ndestination = "{destination}"\n'
        f"interval_s = {args.interval_s}\n{extra}"
    )
    replicator = subprocess.Popen(
        [sys.executable, "-m", "doorbell.cli", "replicate", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    recorder = Recorder(data_dir, args.rate_kbps, args.clip_s, args.seconds)
    time.sleep(1.0)  # the replicator's start-up (imports) is not what is measured
    cpu_start = _cpu_seconds(replicator.pid)
    recorder.start()
    lags: list[float] = []
    while recorder.is_alive():
        time.sleep(TICK_S)
        for clip_id, history in list(recorder.history.items())[-2:]:
            relative = recorder.paths[clip_id].relative_to(data_dir)
            try:
                copied = (copy_root / relative).stat().st_size
            except FileNotFoundError:
                copied = 0
            sizes = [size for _, size in history]
            if not sizes or copied >= sizes[-1]:
                if sizes and clip_id == list(recorder.history)[-1]:
                    lags.append(0.0)
                continue
            # the first moment the recorder had written more than the copy holds
            index = bisect.bisect_right(sizes, copied)
            lags.append(time.monotonic() - history[index][0])
    recorder.join()
    time.sleep(args.interval_s * 3)
    cpu = _cpu_seconds(replicator.pid) - cpu_start
    replicator.terminate()
    _, stderr = replicator.communicate(timeout=60)
    if replicator.returncode not in (0, -15):
        raise SystemExit(f"replicator failed: {stderr.decode(errors='replace')[-2000:]}")
    lags.sort()
    return {
        "recorded_s": round(recorder.recorded_s, 1),
        "lag_p50_s": round(statistics.median(lags), 3) if lags else 0.0,
        "lag_p95_s": round(lags[int(len(lags) * 0.95)], 3) if lags else 0.0,
        "lag_max_s": round(lags[-1], 3) if lags else 0.0,
        "cpu_ms_per_recorded_s": round(1000 * cpu / recorder.recorded_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="recording time per run")
    parser.add_argument("--rate-kbps", type=int, default=2000, help="recorder bitrate")
    parser.add_argument("--clip-s", type=float, default=30.0, help="length of each clip")
    parser.add_argument("--interval-s", type=float, default=1.0, help="replicate.interval_s")
    parser.add_argument("--no-sftp", action="store_true", help="skip the sshd run")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-replicate-") as tmp:
        root = Path(tmp)
        (root / "dir" / "copy").mkdir(parents=True)
        copy = root / "dir" / "copy"
        results["directory"] = run_once(root / "dir", str(copy), copy, "", args)
        if not args.no_sftp and os.geteuid() == 0 and Path("/usr/sbin/sshd").exists():
            from replicate_helpers import SshServer

            server = SshServer(root / "sshd")
            server.start()
            try:
                remote = root / "sftp-copy"
                remote.mkdir()
                extra = (
                    f'host_key = "{server.host_key_line}"\nidentity_file = "{server.client_key}"\n'
                )
                results["sftp (loopback sshd)"] = run_once(
                    root / "sftp", server.url(remote), remote, extra, args
                )
            finally:
                server.stop()
    print(
        f"recorder at {args.rate_kbps} kbit/s, clips of {args.clip_s:g} s, "
        f"replicate.interval_s = {args.interval_s:g}"
    )
    header = f"{'destination':<22} {'recorded s':>10} {'lag p50 s':>10} {'lag p95 s':>10} "
    header += f"{'lag max s':>10} {'CPU ms per recorded s':>22}"
    print(header)
    for name, row in results.items():
        print(
            f"{name:<22} {row['recorded_s']:>10} {row['lag_p50_s']:>10} {row['lag_p95_s']:>10} "
            f"{row['lag_max_s']:>10} {row['cpu_ms_per_recorded_s']:>22}"
        )
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    report = {"args": vars(args), "results": results, "cpus": os.cpu_count()}
    (out / "replicate.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
