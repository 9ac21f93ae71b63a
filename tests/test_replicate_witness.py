"""The off-site copy as a witness (doorbell.replicate.witness) and restoring from it
(doorbell.replicate.restore): the CLI, the unlock banner, and the web UI serving a restored
data dir."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from replicate_helpers import SshServer
from ui_helpers import (
    PASSPHRASE,
    T0,
    Clock,
    FakeVault,
    make_clip,
    plaintext_of,
    prepare_data_dir,
    rewrite_log,
    unlock,
)

from doorbell.audit.devicekey import load_device_signer
from doorbell.audit.entries import decode_entry
from doorbell.audit.log import AuditLog
from doorbell.cli import main
from doorbell.config import load_config, parse_config
from doorbell.datadir import DataDir
from doorbell.keys import create_owner_keys, derive_owner_cosigning_key
from doorbell.replicate import layout
from doorbell.replicate.destination import LocalDestination
from doorbell.replicate.replicator import Replicator
from doorbell.replicate.witness import check_against_copy, unlock_witness_check
from doorbell.store import Store
from doorbell.ui import close_app, create_app


@pytest.fixture
def owner(tmp_path: Path) -> Iterator[tuple[Path, FakeVault, Path]]:
    """A data dir made with a real owner key file (fast scrypt), its vault, and a copy dir."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    identity = create_owner_keys(data_dir, PASSPHRASE, work_factor=10)
    vault = FakeVault(identity=identity, cosigning_key=derive_owner_cosigning_key(identity))
    prepare_data_dir(data_dir, vault)
    Store.open(data_dir).close()
    copy = tmp_path / "copy"
    copy.mkdir()
    yield data_dir, vault, copy


def add_clips(data_dir: Path, vault: FakeVault, count: int, offset_s: float = 0.0) -> list[str]:
    made = []
    with Store.open(data_dir) as store:
        for n in range(count):
            made.append(
                make_clip(store, [vault.identity.recipient], T0 + offset_s + 60 * n, seed=n)
            )
    signer = load_device_signer(data_dir / "keys")
    with AuditLog.open(data_dir, signer=signer) as log, Store.open(data_dir) as store:
        for clip_id in made:
            clip = store.get_clip(clip_id)
            log.append("recorder", "clip.sealed", clip_id, {"sha256": clip.sha256 or ""})
    return made


def replicate(data_dir: Path, copy: Path) -> None:
    replicator = Replicator(data_dir, lambda: LocalDestination(copy))
    replicator.sync()
    replicator.close()


def roll_back(data_dir: Path, saved: Path) -> None:
    """Put back the audit log and owner anchor saved earlier (what the anchor cannot catch)."""
    for suffix in ("", "-wal", "-shm"):
        (data_dir / f"audit.sqlite3{suffix}").unlink(missing_ok=True)
    shutil.copy(saved / "audit.sqlite3", data_dir / "audit.sqlite3")
    shutil.copy(saved / "owner-anchor", DataDir(data_dir).owner_anchor)


def save_log(data_dir: Path, saved: Path) -> None:
    saved.mkdir()
    with AuditLog.open(data_dir) as log:  # fold the WAL in, as a copy of the card would
        log._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy(data_dir / "audit.sqlite3", saved / "audit.sqlite3")
    shutil.copy(DataDir(data_dir).owner_anchor, saved / "owner-anchor")


def test_witness_ok_behind_and_forked(
    owner: tuple[Path, FakeVault, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir, vault, copy = owner
    save_log(data_dir, tmp_path / "saved")
    add_clips(data_dir, vault, 2)
    replicate(data_dir, copy)
    argv = ["audit", "verify", "--data-dir", str(data_dir), "--witness", str(copy)]
    assert main(argv) == 0
    assert "witness" in capsys.readouterr().out
    with AuditLog.open_readonly(data_dir) as log:
        dest = LocalDestination(copy)
        assert check_against_copy(dest, log.size, log.root_at, log.device_verifier()).ok

    roll_back(data_dir, tmp_path / "saved")  # the log and the anchor: an older, cosigned pair
    assert main(["audit", "verify", "--data-dir", str(data_dir)]) == 0  # alone: looks fine
    capsys.readouterr()
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "FAILED (behind)" in out and "rolled back" in out

    rewrite_log(data_dir)  # rebuilt with the device key from the card: another history
    assert main(argv) == 1
    assert "FAILED (forked)" in capsys.readouterr().out


def test_unlock_warns_when_the_device_is_behind_the_copy(
    owner: tuple[Path, FakeVault, Path], tmp_path: Path
) -> None:
    data_dir, vault, copy = owner
    save_log(data_dir, tmp_path / "saved")
    add_clips(data_dir, vault, 1)
    replicate(data_dir, copy)
    config = parse_config(
        {
            "storage": {"data_dir": str(data_dir)},
            "web": {"tls": False},
            "replicate": {"destination": str(copy)},
        }
    )
    app = create_app(config, vault=vault, clock=Clock())
    try:
        client = app.test_client()
        unlock(client)
        page = client.get("/timeline").get_data(as_text=True)
        assert 'id="audit-warning"' not in page  # the copy agrees: no banner
    finally:
        close_app(app)
    roll_back(data_dir, tmp_path / "saved")
    app = create_app(config, vault=vault, clock=Clock())
    try:
        client = app.test_client()
        unlock(client)
        page = client.get("/timeline").get_data(as_text=True)
        assert 'id="audit-warning"' in page
        # web.unlocked was appended to the rolled-back log first, so it now differs there
        assert "off-site copy" in page and "forked" in page
        log = app.extensions["doorbell"].audit
        found = [decode_entry(leaf)["action"] for _, leaf in log.entries(0)]
        assert "audit.witness_mismatch" in found
    finally:
        close_app(app)


def test_restore_rebuilds_a_data_dir_the_web_ui_serves(
    owner: tuple[Path, FakeVault, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir, vault, copy = owner
    clips = add_clips(data_dir, vault, 2)
    replicate(data_dir, copy)
    key_file = tmp_path / "owner.key.age"
    shutil.copy(data_dir / "keys" / "owner.key.age", key_file)
    passphrase_file = tmp_path / "passphrase"
    passphrase_file.write_text(PASSPHRASE + "\n")
    passphrase_file.chmod(0o600)
    new = tmp_path / "restored"
    argv = [
        "restore", "--from", str(copy), "--data-dir", str(new), "--key-file", str(key_file),
        "--passphrase-file", str(passphrase_file),
    ]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "restored 2 clips" in out and "audit log: OK" in out
    assert not (new / "keys" / "device.key").exists()  # it cannot sign as the old device
    with Store.open(data_dir) as old, Store.open(new) as store:
        for clip_id in clips:
            assert plaintext_of(store, clip_id, vault.identity) == plaintext_of(
                old, clip_id, vault.identity
            )
    config = parse_config({"storage": {"data_dir": str(new)}, "web": {"tls": False}})
    app = create_app(config, clock=Clock())  # the real key-file vault of the new dir
    try:
        client = app.test_client()
        assert unlock(client).status_code == 302
        page = client.get("/timeline").get_data(as_text=True)
        assert 'id="audit-warning"' not in page  # the copied anchor matches the log
        video = client.get(f"/clips/{clips[0]}/video")
        assert video.status_code == 200
        with Store.open(new) as store:
            assert video.get_data() == plaintext_of(store, clips[0], vault.identity)
    finally:
        close_app(app)


def test_restore_reports_an_altered_clip_and_refuses_a_forged_log(
    owner: tuple[Path, FakeVault, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir, vault, copy = owner
    clips = add_clips(data_dir, vault, 2)
    replicate(data_dir, copy)
    with Store.open(data_dir) as store:
        altered = copy / store.get_clip(clips[1]).path
    data = bytearray(altered.read_bytes())
    data[-100] ^= 1
    altered.write_bytes(bytes(data))
    passphrase_file = tmp_path / "passphrase"
    passphrase_file.write_text(PASSPHRASE + "\n")
    passphrase_file.chmod(0o600)
    key_file = data_dir / "keys" / "owner.key.age"

    def run(new: Path) -> int:
        return main(
            [
                "restore", "--from", str(copy), "--data-dir", str(new), "--key-file",
                str(key_file), "--passphrase-file", str(passphrase_file),
            ]
        )  # fmt: skip

    assert run(tmp_path / "r1") == 1
    err = capsys.readouterr().err
    assert f"clip {clips[1]}" in err and "altered" in err
    assert clips[0] not in err
    # A log edited on the copy does not verify: nothing is restored from it.
    entries = copy / layout.ENTRIES_FILE
    entries.write_bytes(entries.read_bytes().replace(b"clip.sealed", b"clip.SEALED", 1))
    assert run(tmp_path / "r2") == 1
    assert "does not verify" in capsys.readouterr().err
    assert not (tmp_path / "r2" / "index.sqlite3").exists()


def test_restore_never_writes_outside_a_clips_own_files(
    owner: tuple[Path, FakeVault, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir, vault, copy = owner
    clips = add_clips(data_dir, vault, 1)
    replicate(data_dir, copy)
    row_path = copy / layout.clip_row_path(clips[0])
    row = json.loads(row_path.read_text())
    row["path"] = "keys/owner.recipients"  # a hostile copy aims at another file
    row_path.write_text(json.dumps(row))
    passphrase_file = tmp_path / "passphrase"
    passphrase_file.write_text(PASSPHRASE + "\n")
    passphrase_file.chmod(0o600)
    new = tmp_path / "restored"
    argv = [
        "restore", "--from", str(copy), "--data-dir", str(new), "--key-file",
        str(data_dir / "keys" / "owner.key.age"), "--passphrase-file", str(passphrase_file),
    ]  # fmt: skip
    assert main(argv) == 1
    assert "not this clip's own files" in capsys.readouterr().err
    assert (new / "keys" / "owner.recipients").read_bytes() == (
        data_dir / "keys" / "owner.recipients"
    ).read_bytes()


def test_witness_over_sftp(
    owner: tuple[Path, FakeVault, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir, vault, _copy = owner
    server = SshServer(tmp_path / "sshd")
    server.start()
    try:
        remote = tmp_path / "remote"
        remote.mkdir()
        add_clips(data_dir, vault, 1)
        config = tmp_path / "doorbell.toml"
        config.write_text(
            f'[storage]\ndata_dir = "{data_dir}"\n[replicate]\n'
            f'destination = "{server.url(remote)}"\nhost_key = "{server.host_key_line}"\n'
            f'identity_file = "{server.client_key}"\n'
        )
        assert main(["replicate", "--config", str(config), "--once"]) == 0
        argv = ["audit", "verify", "--config", str(config), "--witness", server.url(remote)]
        assert main(argv) == 0
        assert "witness sftp://" in capsys.readouterr().out
        # Restore straight from the SFTP copy (host key and login key from the config).
        passphrase_file = tmp_path / "passphrase"
        passphrase_file.write_text(PASSPHRASE + "\n")
        passphrase_file.chmod(0o600)
        restore_argv = [
            "restore", "--from", server.url(remote), "--data-dir", str(tmp_path / "restored"),
            "--key-file", str(data_dir / "keys" / "owner.key.age"),
            "--passphrase-file", str(passphrase_file), "--config", str(config),
        ]  # fmt: skip
        assert main(restore_argv) == 0, capsys.readouterr().err
        assert "restored 1 clips" in capsys.readouterr().out
        # The unlock check never contacts the server: it uses what the replicator saw.
        settings = load_config(config)
        with AuditLog.open_readonly(data_dir) as log:
            assert unlock_witness_check(settings, log) is None
        save_log(data_dir, tmp_path / "saved")
        add_clips(data_dir, vault, 1, offset_s=600)
        assert main(["replicate", "--config", str(config), "--once"]) == 0
        roll_back(data_dir, tmp_path / "saved")  # the card is rewritten while the Pi is off
        # At boot the replicator reconnects: it keeps the copy's latest checkpoint and
        # refuses to extend the copy from the rolled-back log.
        assert main(["replicate", "--config", str(config), "--once"]) == 0
        server.stop()  # the server is unreachable at unlock: no matter
        with AuditLog.open_readonly(data_dir) as log:
            found = unlock_witness_check(settings, log)
        assert found is not None and found["anchor"] == "mismatch"
        assert "rolled back" in found["error"]
        (data_dir / "replicate" / "state.json").unlink()  # its status alone is not needed
        with AuditLog.open_readonly(data_dir) as log:
            found = unlock_witness_check(settings, log)
        # (the replicator's own witness_conflict entry made the log differ at 4: "forked")
        assert found is not None and found["anchor"] == "mismatch"
        server.start()
        rewrite_log(data_dir)
        assert main(argv) == 1
        assert "FAILED (forked)" in capsys.readouterr().out
    finally:
        server.stop()
