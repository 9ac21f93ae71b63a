"""Export bundle benchmark: size vs clip bytes, approval and verification time, tamper table.

    .venv/bin/python bench/exports.py                  # 10 clips x 30 s (5 minutes), ~1-2 min
    .venv/bin/python bench/exports.py --clips 2 --clip-seconds 5 --log-entries 1000  # quick

1. A data dir with ``--clips`` real H.264 clips of ``--clip-seconds`` each (320x240, 10 fps,
   500 kbit/s, encrypted to the owner as the recorder does, each with its ``clip.sealed``
   entry) in an audit log that already holds ``--log-entries`` other entries (approval and
   the build read the log to find the signed record, so its length matters).
2. Approval: ``approve_and_build`` (owner-anchor check and cosignature, signed-record
   checks, the streamed bundle, the checkpoint), wall time; bundle size vs the clips'
   plaintext and ciphertext bytes.
3. Verification: ``verify_bundle`` with pinned keys (decrypt, strict tar, every hash,
   signature, proof and origin), wall time.
4. The tamper table: every case of tests/exports_tamper.py on a fresh one-clip bundle, with
   the message ``doorbell verify-bundle`` prints and its exit code.

Prints tables and writes bench/results/exports.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # test helpers

from exports_helpers import NOW, WallClock, World, make_world
from exports_tamper import CASES, Bundle
from ui_helpers import T0, make_clip

from doorbell.age.identities import X25519Identity
from doorbell.audit.devicekey import create_device_key, load_device_signer
from doorbell.audit.log import AuditLog
from doorbell.config import ExportsConfig
from doorbell.exports.registry import ExportRegistry
from doorbell.exports.service import approve_and_build
from doorbell.exports.verify import BundleVerifyError, verify_bundle
from doorbell.keys import OWNER_COSIGNER_NAME, derive_owner_cosigning_key, owner_cosigner_vkey
from doorbell.recorder.sealaudit import append_clip_sealed
from doorbell.store import Store


def _fill_log(log: AuditLog, count: int) -> None:
    """``count`` ordinary entries (clip views) in one transaction, to give the log a size."""
    with log._transaction():
        for i in range(count):
            log._append_in_transaction("owner", "clip.viewed", f"clip-{i:08d}", {"range": ""})
    log._after_append()


def measure_bundle(root: Path, clips: int, clip_seconds: float, log_entries: int) -> dict[str, Any]:
    data_dir = root / "big"
    (data_dir / "keys").mkdir(parents=True)
    create_device_key(data_dir / "keys", "doorbell.local/bench-exports")
    owner = X25519Identity.generate()
    clock = WallClock(NOW)
    store = Store.open(data_dir, clock=clock)
    started = time.perf_counter()
    ids = [
        make_clip(
            store,
            [owner.recipient],
            T0 + 60 * (i + 1),
            seconds=clip_seconds,
            size=(320, 240),
            bitrate_kbps=500,
            seed=i,
        )
        for i in range(clips)
    ]
    encode_s = time.perf_counter() - started
    signer = load_device_signer(data_dir / "keys")
    with AuditLog.open(data_dir, signer=signer, clock=lambda: T0 + 3600) as setup:
        _fill_log(setup, log_entries)
        for clip_id in ids:
            append_clip_sealed(store, setup, store.get_clip(clip_id))
        setup.cosign(derive_owner_cosigning_key(owner), OWNER_COSIGNER_NAME, first=True)
    audit = AuditLog.open(data_dir, signer=signer, clock=clock, checkpoint_interval_s=0.5)
    registry = ExportRegistry.open(
        data_dir, audit, clock=clock, config=ExportsConfig(checkpoint_wait_s=10.0)
    )
    requester = X25519Identity.generate()
    try:
        request, _token = registry.submit(
            {
                "requester": "PC Jane Smith",
                "organisation": "Example Police",
                "contact": "jane.smith@police.example",
                "kind": "police",
                "legal_basis": "warrant",
                "legal_reference": "W-2026/0042",
                "window_start": "2026-01-01T00:00",
                "window_end": "2026-01-01T01:00",
                "reason": "Burglary reported at number 12 on that night.",
                "delivery": "recipient",
                "recipient": str(requester.recipient),
            },
            source="owner",
        )
        started = time.perf_counter()
        result = approve_and_build(
            registry,
            store,
            audit,
            request.id,
            identity=owner,
            cosigning_key=derive_owner_cosigning_key(owner),
            clip_ids=ids,
        )
        approve_s = time.perf_counter() - started
        started = time.perf_counter()
        report = verify_bundle(
            result.path,
            [requester],
            device_vkey=audit.device_verifier().vkey,
            cosigner_vkey=owner_cosigner_vkey(owner),
        )
        verify_s = time.perf_counter() - started
        source_bytes = sum(store.get_clip(c).size_bytes for c in ids)
        return {
            "clips": clips,
            "clip_seconds": clip_seconds,
            "log_entries_before": log_entries,
            "audit_entries_in_bundle": report.entries,
            "clip_plaintext_bytes": report.clip_bytes,
            "clip_ciphertext_bytes": source_bytes,
            "bundle_bytes": result.size,
            "overhead_bytes": result.size - report.clip_bytes,
            "overhead_percent": 100.0 * (result.size - report.clip_bytes) / report.clip_bytes,
            "encode_s": encode_s,
            "approve_and_build_s": approve_s,
            "verify_s": verify_s,
        }
    finally:
        registry.close()
        audit.close()
        store.close()


def tamper_table(root: Path) -> list[dict[str, Any]]:
    from doorbell.keys import owner_cosigner_vkey as cosigner_of

    rows = []
    for number, case in enumerate(CASES):
        directory = root / f"tamper-{number}"
        directory.mkdir()
        for world in make_world(directory, clips=2):
            bundle = _genuine(world)
            case.apply(bundle)
            try:
                verify_bundle(
                    bundle.path,
                    [bundle.identity],
                    device_vkey=world.audit.device_verifier().vkey,
                    cosigner_vkey=cosigner_of(world.owner),
                )
                message, code = "ACCEPTED", 0
            except BundleVerifyError as exc:
                message, code = str(exc), 1
            rows.append({"case": case.name, "exit": code, "message": message})
    return rows


def _genuine(world: World) -> Bundle:
    request, _token = world.registry.submit(world.raw_request(), source="owner")
    result = approve_and_build(
        world.registry,
        world.store,
        world.audit,
        request.id,
        identity=world.owner,
        cosigning_key=world.cosigning_key,
        clip_ids=world.clip_ids[:2],
    )
    return Bundle(world, result.path, world.last_requester, request.id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=10)
    parser.add_argument("--clip-seconds", type=float, default=30.0)
    parser.add_argument("--log-entries", type=int, default=20000)
    parser.add_argument("--no-tamper", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="doorbell-bench-exports-") as tmp:
        root = Path(tmp)
        sizes = measure_bundle(root, args.clips, args.clip_seconds, args.log_entries)
        print(f"bundle: {sizes['clips']} clips x {sizes['clip_seconds']:g} s")
        for key, value in sizes.items():
            shown = f"{value:.3f}" if isinstance(value, float) else str(value)
            print(f"  {key:28} {shown}")
        rows = [] if args.no_tamper else tamper_table(root)
    if rows:
        print("\n| tamper case | exit | verify-bundle says |")
        print("|---|---|---|")
        for row in rows:
            print(f"| {row['case']} | {row['exit']} | `{row['message'][:150]}` |")
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "exports.json").write_text(json.dumps({"bundle": sizes, "tamper": rows}, indent=2))
    print(f"\nwrote {out / 'exports.json'}")
    if any(row["exit"] == 0 for row in rows):
        sys.exit("a tamper case was ACCEPTED")


if __name__ == "__main__":
    main()
