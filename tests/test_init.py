"""``doorbell init`` and ``doorbell keys`` as a user runs them (CLI, and on a terminal)."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest
from age_tty import run_with_tty

from doorbell.audit.anchor import read_anchor
from doorbell.audit.log import AuditLog
from doorbell.cli import main
from doorbell.keys import derive_owner_anchor_key, unlock_owner_identity
from doorbell.pubkeys import load_owner_recipients
from doorbell.tls import certificate_fingerprint

PASSPHRASE = "amber-falcon-quiet-harbor-9"


def passphrase_file(tmp_path: Path, text: str = PASSPHRASE, name: str = "pw") -> Path:
    path = tmp_path / name
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


def run_init(data_dir: Path, *extra: str) -> int:
    return main(["init", "--data-dir", str(data_dir), "--owner-key-work-factor", "10", *extra])


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_creates_keys_tls_and_audit_entries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    assert run_init(data, "--passphrase-file", str(passphrase_file(tmp_path))) == 0
    out = capsys.readouterr().out
    keys = data / "keys"
    assert mode(keys / "owner.key.age") == 0o600
    assert mode(keys / "owner.recipients") == 0o644
    assert mode(keys / "device.key") == 0o600
    assert mode(keys / "device.vkey") == 0o644
    assert mode(data / "tls" / "key.pem") == 0o600
    assert certificate_fingerprint(data / "tls" / "cert.pem") in out
    recipient = load_owner_recipients(data)[0]
    assert str(recipient) in out
    assert unlock_owner_identity(data, PASSPHRASE).recipient == recipient
    assert PASSPHRASE not in out
    with AuditLog.open(data) as log:
        entries = [json.loads(leaf) for _, leaf in log.entries()]
        assert log.verify().ok
        assert log.verify().cosignatures >= 1
    created = [e for e in entries if "keys.created" in json.dumps(e)]
    assert created and str(recipient) in json.dumps(created[0])
    # the owner anchor (review finding 1): sealed to the owner, at the cosigned head
    assert created[0]["details"]["owner_anchor"] is True
    identity = unlock_owner_identity(data, PASSPHRASE)
    anchor = read_anchor(data, derive_owner_anchor_key(identity))
    assert anchor.size == len(entries) and b"doorbell-owner" in anchor.note
    assert mode(data / "owner" / "owner-anchor") == 0o600


def test_init_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    pw = passphrase_file(tmp_path)
    assert run_init(data, "--passphrase-file", str(pw)) == 0
    before = (data / "keys" / "owner.key.age").read_bytes()
    assert run_init(data, "--passphrase-file", str(pw)) == 1
    assert "refusing to overwrite" in capsys.readouterr().err
    assert (data / "keys" / "owner.key.age").read_bytes() == before


def test_init_refuses_readable_passphrase_file_and_weak_passphrase(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    loose = passphrase_file(tmp_path)
    loose.chmod(0o640)
    assert run_init(data, "--passphrase-file", str(loose)) == 1
    assert "chmod 600" in capsys.readouterr().err
    weak = passphrase_file(tmp_path, "password123", name="weak")
    assert run_init(data, "--passphrase-file", str(weak)) == 1
    assert "too weak" in capsys.readouterr().err
    assert not (data / "keys" / "owner.key.age").exists()


def test_init_without_terminal_or_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_init(tmp_path / "data") == 2
    assert "--passphrase-file" in capsys.readouterr().err


def test_init_on_a_terminal_asks_twice_and_judges(tmp_path: Path) -> None:
    data = tmp_path / "data"
    argv = [
        sys.executable,
        "-m",
        "doorbell.cli",
        "init",
        "--data-dir",
        str(data),
        "--owner-key-work-factor",
        "10",
    ]
    code, shown = run_with_tty(argv, ["weakweak", PASSPHRASE, PASSPHRASE])
    assert code == 0, shown
    assert "Suggested passphrase" in shown
    assert "Rejected" in shown and "too weak" in shown
    assert PASSPHRASE not in shown  # never echoed
    assert unlock_owner_identity(data, PASSPHRASE)


def test_keys_show_and_change_passphrase(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    old = passphrase_file(tmp_path)
    assert run_init(data, "--passphrase-file", str(old)) == 0
    capsys.readouterr()
    assert main(["keys", "show", "--data-dir", str(data)]) == 0
    shown = capsys.readouterr().out
    assert str(load_owner_recipients(data)[0]) in shown
    assert "0600" in shown and "2^10" in shown and "TLS SHA-256" in shown
    assert "AGE-SECRET-KEY" not in shown
    # the owner's cosigner key (public), what a bundle's audit/cosigner.vkey must equal
    from doorbell.keys import owner_cosigner_vkey

    cosigner = owner_cosigner_vkey(unlock_owner_identity(data, PASSPHRASE))
    assert f"owner cosigner:   {cosigner}" in shown
    new = passphrase_file(tmp_path, "cedar-lantern-orbit-violet-7", name="new")
    argv = ["keys", "change-passphrase", "--data-dir", str(data), "--owner-key-work-factor", "10"]
    assert main([*argv, "--passphrase-file", str(old), "--new-passphrase-file", str(new)]) == 0
    assert unlock_owner_identity(data, "cedar-lantern-orbit-violet-7")
    assert main([*argv, "--passphrase-file", str(old), "--new-passphrase-file", str(new)]) == 1
    assert "wrong passphrase" in capsys.readouterr().err
