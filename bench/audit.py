"""Audit log benchmark: durable append rate, verify cost vs plain SHA-256, proof sizes.

    .venv/bin/python bench/audit.py                     # default sizes, about a minute
    .venv/bin/python bench/audit.py --entries 1000000   # the full run

1. Durable appends: ``AuditLog.append`` one entry per transaction (WAL, synchronous=FULL,
   device key signing batched checkpoints), entries/s.
2. Verify: a log of ``--entries`` entries is built in bulk (same encoding and tree code, one
   transaction, to save time), then ``verify_data_dir`` runs. Baseline in the same run: read
   the same leaf bytes from the same database and SHA-256 each one (what any integrity check
   must at least do). Also shown: one streaming SHA-256 over all the bytes (no per-entry cost).
3. Proof sizes (hashes) for inclusion and consistency vs log2(size).

Prints a table and writes bench/results/audit.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from doorbell.audit import merkle
from doorbell.audit.devicekey import create_device_key, load_device_signer
from doorbell.audit.entries import encode_entry
from doorbell.audit.log import AuditLog
from doorbell.audit.verify import verify_data_dir


def _new_dir(root: Path, name: str) -> Path:
    path = root / name
    (path / "keys").mkdir(parents=True)
    create_device_key(path / "keys", f"doorbell.local/bench-{name}")
    return path


def bench_appends(root: Path, count: int) -> float:
    data_dir = _new_dir(root, "append")
    signer = load_device_signer(data_dir / "keys")
    with AuditLog.open(data_dir, signer=signer, checkpoint_interval_s=1.0) as log:
        start = time.perf_counter()
        for i in range(count):
            log.append("recorder", "clip.sealed", f"clip/2026/01/02/{i:08d}", {"bytes": 123456})
        elapsed = time.perf_counter() - start
    return count / elapsed


def build_bulk(root: Path, count: int) -> Path:
    data_dir = _new_dir(root, "verify")
    signer = load_device_signer(data_dir / "keys")
    with AuditLog.open(data_dir, signer=signer) as log:
        log.checkpoint()
    conn = sqlite3.connect(data_dir / "audit.sqlite3", isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    size, peaks = conn.execute("SELECT size, peaks FROM tree").fetchone()
    compact = merkle.CompactRange.from_bytes(size, peaks)
    rows = []
    for index in range(size, count):
        leaf = encode_entry(
            index=index,
            timestamp=1_767_323_045.0 + index,
            actor="owner",
            action="clip.viewed",
            object=f"clip/2026/01/02/{index:08d}",
            details={"session": index % 97},
        )
        leaf_hash = merkle.leaf_hash(leaf)
        rows.append((index, leaf, leaf_hash, b"".join(compact.append(leaf_hash))))
        if len(rows) == 10_000:
            conn.executemany("INSERT INTO entries VALUES (?, ?, ?, ?)", rows)
            rows.clear()
    conn.executemany("INSERT INTO entries VALUES (?, ?, ?, ?)", rows)
    conn.execute(
        "UPDATE tree SET size = ?, peaks = ?, root = ?",
        (compact.size, compact.to_bytes(), compact.root()),
    )
    conn.execute("COMMIT")
    conn.close()
    with AuditLog.open(data_dir, signer=signer) as log:
        log.checkpoint()
    return data_dir


def baseline_sha256(data_dir: Path) -> tuple[float, float, int]:
    conn = sqlite3.connect(data_dir / "audit.sqlite3")
    sha256 = hashlib.sha256
    start = time.perf_counter()
    total = 0
    for (leaf,) in conn.execute("SELECT leaf FROM entries ORDER BY idx"):
        sha256(leaf).digest()
        total += len(leaf)
    per_entry = time.perf_counter() - start
    leaves = [leaf for (leaf,) in conn.execute("SELECT leaf FROM entries ORDER BY idx")]
    conn.close()
    start = time.perf_counter()
    stream = hashlib.sha256()
    for leaf in leaves:
        stream.update(leaf)
    stream.digest()
    return per_entry, time.perf_counter() - start, total


def proof_sizes(data_dir: Path, count: int) -> list[dict]:
    rows = []
    with AuditLog.open(data_dir) as log:
        size = 10
        while size <= count:
            rows.append(
                {
                    "size": size,
                    "log2": math.ceil(math.log2(size)),
                    "inclusion_last": len(log.inclusion_proof(size - 1, size)),
                    "inclusion_middle": len(log.inclusion_proof(size // 2, size)),
                    "consistency_half": len(log.consistency_proof(max(1, size // 2 + 1), size)),
                }
            )
            size *= 10
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=200_000, help="log size for verify")
    parser.add_argument("--appends", type=int, default=2_000, help="durable appends to time")
    parser.add_argument("--dir", type=Path, default=None, help="where to build (default: temp)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="doorbell-bench-audit-") as tmp:
        root = Path(tmp)
        rate = bench_appends(root, args.appends)
        start = time.perf_counter()
        data_dir = build_bulk(root, args.entries)
        build_s = time.perf_counter() - start
        start = time.perf_counter()
        result = verify_data_dir(data_dir)
        verify_s = time.perf_counter() - start
        if not result.ok:
            raise SystemExit(f"bench log does not verify: {result.summary()}")
        per_entry_s, stream_s, total_bytes = baseline_sha256(data_dir)
        proofs = proof_sizes(data_dir, args.entries)
    report = {
        "append_entries_per_s": round(rate, 1),
        "entries": args.entries,
        "entry_bytes_total": total_bytes,
        "bulk_build_s": round(build_s, 3),
        "verify_s": round(verify_s, 3),
        "baseline_read_and_sha256_per_entry_s": round(per_entry_s, 3),
        "baseline_streaming_sha256_s": round(stream_s, 3),
        "verify_ratio_vs_per_entry_sha256": round(verify_s / per_entry_s, 2),
        "verify_ratio_vs_streaming_sha256": round(verify_s / stream_s, 2),
        "proof_sizes": proofs,
    }
    print(
        f"durable appends (WAL, synchronous=FULL): {rate:,.0f} entries/s ({args.appends} appends)"
    )
    print(f"verify {args.entries:,} entries ({total_bytes / 1e6:.1f} MB): {verify_s:.2f} s")
    print(
        f"  baseline read + SHA-256 per entry:  {per_entry_s:.2f} s  -> ratio "
        f"{verify_s / per_entry_s:.2f}x (target <= 3x)"
    )
    print(
        f"  one streaming SHA-256 (in memory):  {stream_s:.2f} s  -> ratio "
        f"{verify_s / stream_s:.2f}x"
    )
    print(f"{'size':>10} {'log2':>5} {'incl(last)':>11} {'incl(mid)':>10} {'consist(n/2+1)':>15}")
    for row in proofs:
        print(
            f"{row['size']:>10,} {row['log2']:>5} {row['inclusion_last']:>11} "
            f"{row['inclusion_middle']:>10} {row['consistency_half']:>15}"
        )
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "audit.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
