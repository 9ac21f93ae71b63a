"""`doorbell audit verify|export|show`."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from doorbell.audit.devicekey import create_device_key, load_device_signer
from doorbell.audit.log import AuditLog
from doorbell.cli import main


def _make_log(data_dir: Path) -> None:
    (data_dir / "keys").mkdir()
    create_device_key(data_dir / "keys", "doorbell.local/cli")
    with AuditLog.open(data_dir, signer=load_device_signer(data_dir / "keys")) as log:
        for i in range(6):
            log.append("owner", "clip.viewed" if i % 2 else "login", f"clip/{i}", {"n": i})
        log.cosign(Ed25519PrivateKey.generate(), "doorbell.local/owner", first=True)


def test_verify_export_show(data_dir: Path, tmp_path: Path, capsys) -> None:
    _make_log(data_dir)
    assert main(["audit", "verify", "--data-dir", str(data_dir)]) == 0
    assert capsys.readouterr().out.startswith("OK: 7 entries")
    out = tmp_path / "out"
    assert main(["audit", "export", "--data-dir", str(data_dir), "--out", str(out)]) == 0
    assert main(["audit", "verify", "--from", str(out)]) == 0
    assert "OK: 7 entries" in capsys.readouterr().out
    assert main(["audit", "export", "--data-dir", str(data_dir), "--out", str(out)]) == 2
    capsys.readouterr()
    assert (
        main(
            ["audit", "show", "--data-dir", str(data_dir), "--tail", "2", "--action", "clip.viewed"]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["#4", "#6"]
    assert "clip/5" in lines[1] and '"n": 5' in lines[1]
    assert main(["audit", "show", "--data-dir", str(data_dir), "--action", "audit."]) == 0
    assert "audit.log_created" in capsys.readouterr().out


def test_verify_fails_with_the_index(data_dir: Path, capsys) -> None:
    _make_log(data_dir)
    conn = sqlite3.connect(data_dir / "audit.sqlite3")
    conn.execute("DELETE FROM entries WHERE idx = 3")
    conn.commit()
    conn.close()
    assert main(["audit", "verify", "--data-dir", str(data_dir)]) == 1
    assert capsys.readouterr().out.startswith("FAILED at entry 3: entry 3 is missing")
    assert main(["audit", "verify", "--data-dir", str(data_dir), "--from", str(data_dir)]) == 2


def _init(tmp_path: Path) -> tuple[Path, Path]:
    from test_init import passphrase_file, run_init

    data = tmp_path / "data"
    secret = passphrase_file(tmp_path)
    assert run_init(data, "--passphrase-file", str(secret)) == 0
    return data, secret


def test_owner_check_passes_on_a_fresh_data_dir(tmp_path: Path, capsys) -> None:
    data, secret = _init(tmp_path)
    capsys.readouterr()
    args = [
        "audit",
        "verify",
        "--data-dir",
        str(data),
        "--owner-check",
        "--passphrase-file",
        str(secret),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK:") and "owner anchor: OK" in out


def test_owner_check_catches_a_log_rebuilt_without_cosignatures(tmp_path: Path, capsys) -> None:
    """Review finding 1: the rebuilt log verified OK; the owner check must fail it."""
    data, secret = _init(tmp_path)
    with AuditLog.open(data, signer=load_device_signer(data / "keys")) as log:
        log.append("owner", "clip.viewed", "x")
    conn = sqlite3.connect(data / "audit.sqlite3")
    conn.execute("DELETE FROM cosignatures")
    conn.commit()
    conn.close()
    # rebuild: keep only entry 0 (the attacker re-creates the rest differently)
    leaves = [
        bytes(r[0])
        for r in sqlite3.connect(data / "audit.sqlite3").execute(
            "SELECT leaf FROM entries ORDER BY idx"
        )
    ]
    for suffix in ("", "-wal", "-shm"):
        (data / f"audit.sqlite3{suffix}").unlink(missing_ok=True)
    with AuditLog.open(data, signer=load_device_signer(data / "keys")) as log:
        log.append("owner", "something.else")
    assert len(leaves) > 2
    capsys.readouterr()
    args = [
        "audit",
        "verify",
        "--data-dir",
        str(data),
        "--owner-check",
        "--passphrase-file",
        str(secret),
    ]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "owner" in out
    (data / "owner" / "owner-anchor").unlink()
    assert main(args) == 1
    assert "no owner anchor" in capsys.readouterr().out
