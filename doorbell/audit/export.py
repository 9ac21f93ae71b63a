"""Export the audit log as plain files anyone can verify with only the C2SP specs.

Layout of the output directory (all public; nothing secret is in the log by rule)::

    entries.jsonl          one entry per line: exactly the RFC 6962 leaf bytes, then "\\n"
    checkpoints/<size>.note    every checkpoint the device signed (signed-note, tlog-checkpoint)
    cosignatures/<size>-<time>-<key id>.note   every owner cosignature (tlog-cosignature/v1)
    cosigners.vkeys        the owner cosigner verifier keys (type 0x04), one per line
    device.vkey            the device verifier key (type 0x01)
    VERIFY.md              how to check all of it by hand
"""

from __future__ import annotations

import sqlite3
from importlib import resources
from pathlib import Path

from doorbell.audit.devicekey import load_device_verifier
from doorbell.audit.note import parse_note
from doorbell.datadir import DEVICE_VKEY_FILE, DataDir
from doorbell.errors import StorageError, UsageError
from doorbell.fsutil import atomic_write, fsync_dir, write_file_atomic


def export_log(data_dir: Path, out_dir: Path) -> dict[str, int]:
    """Write the export of ``<data_dir>/audit.sqlite3`` into ``out_dir`` (new or empty).

    All of it comes from one database snapshot. Returns counts (entries, checkpoints,
    cosignatures). Raises :class:`UsageError` if ``out_dir`` has files in it, and
    :class:`StorageError` if there is no log.
    """
    path = DataDir(data_dir).audit
    if not path.exists():
        raise StorageError(f"{path}: no audit log here")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise UsageError(f"{out_dir}: not empty; export into a new directory")
    device = load_device_verifier(DataDir(data_dir).keys)
    for directory in (out_dir, out_dir / "checkpoints", out_dir / "cosignatures"):
        directory.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    try:
        conn.execute("BEGIN")
        entries = 0
        with atomic_write(out_dir / "entries.jsonl", mode=0o644) as handle:
            for (leaf,) in conn.execute("SELECT leaf FROM entries ORDER BY idx"):
                handle.write(bytes(leaf) + b"\n")
                entries += 1
        checkpoints = 0
        for size, note in conn.execute("SELECT size, note FROM checkpoints ORDER BY size"):
            write_file_atomic(out_dir / "checkpoints" / f"{size}.note", bytes(note), mode=0o644)
            checkpoints += 1
        vkeys: list[str] = []
        cosignatures = 0
        query = "SELECT size, timestamp, cosigner_vkey, note FROM cosignatures ORDER BY id"
        for size, timestamp, vkey, note in conn.execute(query):
            key_id = parse_note(bytes(note)).signatures[-1].key_id.hex()
            name = f"{size}-{timestamp}-{key_id}.note"
            write_file_atomic(out_dir / "cosignatures" / name, bytes(note), mode=0o644)
            if vkey not in vkeys:
                vkeys.append(vkey)
            cosignatures += 1
    except sqlite3.Error as exc:
        raise StorageError(f"{path}: cannot read the audit log ({exc})") from exc
    finally:
        conn.close()
    write_file_atomic(
        out_dir / "cosigners.vkeys", "".join(v + "\n" for v in vkeys).encode(), mode=0o644
    )
    write_file_atomic(out_dir / DEVICE_VKEY_FILE, (device.vkey + "\n").encode(), mode=0o644)
    guide = resources.files("doorbell.audit").joinpath("VERIFY.md").read_bytes()
    write_file_atomic(out_dir / "VERIFY.md", guide, mode=0o644)
    for directory in (out_dir / "checkpoints", out_dir / "cosignatures", out_dir):
        fsync_dir(directory)
    return {"entries": entries, "checkpoints": checkpoints, "cosignatures": cosignatures}
