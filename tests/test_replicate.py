"""doorbell.replicate: the off-site copy, against a mounted directory and a real sshd on loopback.

The SFTP tests start OpenSSH's own sshd (tests/replicate_helpers.py) with a throwaway host key
and client key, kill it mid-clip, restart it, and run its disk full (a small tmpfs). The
copy is always checked byte for byte against the data dir: nothing lost, nothing twice.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from recorder_helpers import (
    IndexCamera,
    ScriptedMotion,
    make_owner,
    read_index,
    recorder_config,
)
from replicate_helpers import SshServer, small_filesystem
from ui_helpers import T0, FakeVault, make_clip, prepare_data_dir

from doorbell.age.decrypt import decrypt
from doorbell.age.recipients import parse_recipients_file
from doorbell.audit.devicekey import load_device_signer
from doorbell.audit.entries import decode_entry
from doorbell.audit.log import AuditLog
from doorbell.audit.verify import verify_export
from doorbell.datadir import DataDir
from doorbell.errors import ReplicationError, VideoError
from doorbell.media.video import H264Encoder, decode_frames
from doorbell.recorder.clipfile import EncryptedClipWriter
from doorbell.recorder.pipeline import Recorder
from doorbell.replicate import layout
from doorbell.replicate.destination import LocalDestination, SftpDestination, open_destination
from doorbell.replicate.replicator import Replicator
from doorbell.replicate.state import load_state
from doorbell.store import Store, new_clip_id


class Clock:
    def __init__(self, now: float = T0 + 86400) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Audit:
    """The real audit log of the data dir, opened per append (as another process would)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def append(
        self, actor: str, action: str, object: str = "", details: dict[str, Any] | None = None
    ) -> int:
        with AuditLog.open(self.data_dir) as log:
            return log.append(actor, action, object, details)


def actions(data_dir: Path, prefix: str = "replicate.") -> list[str]:
    with AuditLog.open_readonly(data_dir) as log:
        found = [decode_entry(leaf)["action"] for _, leaf in log.entries()]
    return [a for a in found if a.startswith(prefix)]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Path, FakeVault]]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    vault = FakeVault()
    prepare_data_dir(data_dir, vault)
    Store.open(data_dir).close()  # the index, as `doorbell init` leaves it
    yield data_dir, vault


def add_clip(data_dir: Path, vault: FakeVault, offset_s: float = 0.0, **kw: Any) -> str:
    with Store.open(data_dir) as store:
        clip_id = make_clip(store, [vault.identity.recipient], T0 + offset_s, **kw)
    with AuditLog.open(data_dir, signer=load_device_signer(data_dir / "keys")) as log:
        clip = Store.open(data_dir).get_clip(clip_id)
        log.append("recorder", "clip.sealed", clip_id, {"sha256": clip.sha256 or ""})
    return clip_id


def add_raw_clip(data_dir: Path, size: int, *, sealed: bool = True, offset_s: float = 0.0) -> str:
    """A clip row and file of ``size`` random bytes (the replicator never looks inside)."""
    with Store.open(data_dir) as store:
        started = T0 + offset_s
        clip_id = new_clip_id(started)
        path = store.begin_clip(clip_id, started_at=started, trigger="motion")
        path.write_bytes(os.urandom(size))
        if sealed:
            store.seal_clip(
                clip_id, ended_at=started + 10, duration_s=10, size_bytes=size, sha256="0" * 64
            )
    return clip_id


def assert_same_copy(data_dir: Path, copy: Path) -> None:
    """Every clip, thumbnail and log entry byte for byte; the copy's log verifies."""
    with Store.open(data_dir) as store:
        for clip in store.clips():
            local = store.absolute(clip.path).read_bytes()
            assert (copy / clip.path).read_bytes() == local, clip.id
            if clip.thumb_path:
                assert (copy / clip.thumb_path).read_bytes() == store.absolute(
                    clip.thumb_path
                ).read_bytes()
            assert (copy / layout.clip_row_path(clip.id)).exists()
    with AuditLog.open_readonly(data_dir) as log:
        leaves = [leaf + b"\n" for _, leaf in log.entries()]
    assert (copy / layout.ENTRIES_FILE).read_bytes() == b"".join(leaves)
    result = verify_export(copy / layout.AUDIT_DIR)
    assert result.ok, result.summary()


def test_copies_clips_thumbnails_rows_and_the_log_to_a_directory(
    world: tuple[Path, FakeVault], tmp_path: Path
) -> None:
    data_dir, vault = world
    add_clip(data_dir, vault)
    add_clip(data_dir, vault, 60, trigger="ring", seed=1)
    copy = tmp_path / "copy"
    copy.mkdir()
    replicator = Replicator(data_dir, lambda: LocalDestination(copy))
    report = replicator.sync()
    assert report.bytes_copied > 0 and report.bytes_behind == 0
    assert_same_copy(data_dir, copy)
    assert (copy / layout.FORMAT_FILE).read_bytes() == layout.FORMAT_LINE
    assert (copy / layout.ANCHOR_COPY).read_bytes() == DataDir(data_dir).owner_anchor.read_bytes()
    # A second pass has nothing to do and writes nothing twice.
    assert replicator.sync().bytes_copied == 0
    assert_same_copy(data_dir, copy)
    # Only ciphertext left the device: no clip in the copy decodes without the key.
    for path in copy.rglob("*.age"):
        assert path.read_bytes().startswith(b"age-encryption.org/v1\n")
    # The replicator wrote nothing in the data dir but its state (and audit entries).
    assert sorted(p.name for p in (data_dir / "replicate").iterdir()) == ["state.json"]


def test_refuses_a_directory_that_is_not_a_copy(
    world: tuple[Path, FakeVault], tmp_path: Path
) -> None:
    data_dir, _vault = world
    other = tmp_path / "other"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(ReplicationError, match="not a doorbell copy"):
        Replicator(data_dir, lambda: LocalDestination(other)).sync()
    assert sorted(os.listdir(other)) == ["holiday.jpg"]
    with pytest.raises(ReplicationError, match="does not exist"):
        open_destination(str(tmp_path / "unmounted"))
    with pytest.raises(ReplicationError, match="absolute"):
        open_destination("relative/dir")


def _frames(data: bytes, identity: Any) -> int:
    plain = decrypt(io.BytesIO(data), [identity], allow_truncated=True).read()
    count = 0
    with contextlib.suppress(VideoError):  # a cut MP4 ends in a decode error after its last frame
        for _ in decode_frames(plain):
            count += 1
    return count


def test_a_clip_cut_by_a_theft_plays_from_the_copy_up_to_its_last_chunk(
    world: tuple[Path, FakeVault], tmp_path: Path
) -> None:
    data_dir, vault = world
    copy = tmp_path / "copy"
    copy.mkdir()
    replicator = Replicator(data_dir, lambda: LocalDestination(copy))
    store = Store.open(data_dir)
    clip_id = new_clip_id(T0)
    path = store.begin_clip(clip_id, started_at=T0, trigger="ring")
    rng = np.random.default_rng(0)
    with H264Encoder(160, 120, 10, bitrate_kbps=2000) as encoder:
        writer = EncryptedClipWriter(path, [vault.identity.recipient], encoder.stream_info)
        for index in range(120):
            image = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
            for packet in encoder.encode(image, index / 10):
                writer.write(packet)
            if index % 10 == 9:
                writer.sync()  # the recorder's fsync interval
                replicator.sync()  # the replicator's pass, meanwhile
                on_copy = (copy / store.get_clip(clip_id).path).read_bytes()
                assert on_copy == path.read_bytes()  # copied while being written
        # The Pi is taken here: the clip is never sealed, nothing more is copied.
    copied = (copy / store.get_clip(clip_id).path).read_bytes()
    frames = _frames(copied, vault.identity)
    assert frames >= 100, f"only {frames} of the 120 recorded frames play from the copy"
    assert frames == _frames(path.read_bytes(), vault.identity)
    row = (copy / layout.clip_row_path(clip_id)).read_text()
    assert '"sealed":0' in row  # the copy's index lists it: browsable after the theft
    writer.abandon()
    store.close()


def test_deletions_reach_the_copy_only_after_the_delay(
    world: tuple[Path, FakeVault], tmp_path: Path
) -> None:
    data_dir, vault = world
    clip_id = add_clip(data_dir, vault)
    copy = tmp_path / "copy"
    copy.mkdir()
    clock = Clock()
    replicator = Replicator(
        data_dir,
        lambda: LocalDestination(copy),
        audit=Audit(data_dir),
        clock=clock,
        delete_delay_s=86400,
    )
    replicator.sync()
    with Store.open(data_dir) as store:
        clip = store.delete_clip(clip_id)  # a thief (or retention) deletes it on the device
    replicator.sync()
    clock.now += 86399
    assert replicator.sync().clips_deleted == 0
    assert (copy / clip.path).exists() and (copy / layout.clip_row_path(clip_id)).exists()
    clock.now += 2
    assert replicator.sync().clips_deleted == 1
    assert not (copy / clip.path).exists()
    assert not (copy / layout.clip_row_path(clip_id)).exists()
    assert actions(data_dir) == ["replicate.clip_deleted"]


# --- SFTP against a real OpenSSH server ------------------------------------------------------


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SshServer]:
    server = SshServer(tmp_path / "sshd")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def sftp_connector(server: SshServer, remote: Path, **kw: Any) -> Any:
    def connect() -> SftpDestination:
        return SftpDestination(
            server.url(remote),
            host_key=server.host_key_line,
            identity_file=server.client_key,
            timeout_s=kw.get("timeout_s", 5.0),
        )

    return connect


def test_sftp_pins_the_host_key(sshd: SshServer, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    remote.mkdir()
    impostor = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    with pytest.raises(ReplicationError, match="not the pinned"):
        SftpDestination(
            sshd.url(remote), host_key=impostor, identity_file=sshd.client_key, timeout_s=5
        )
    assert not any(remote.iterdir())


def test_sftp_survives_a_killed_server_mid_clip(
    world: tuple[Path, FakeVault], sshd: SshServer, tmp_path: Path
) -> None:
    data_dir, vault = world
    add_clip(data_dir, vault)
    big = add_raw_clip(data_dir, 40 * 1024 * 1024, offset_s=120)
    remote = tmp_path / "remote"
    remote.mkdir()
    replicator = Replicator(
        data_dir,
        sftp_connector(sshd, remote),
        audit=Audit(data_dir),
        backlog_bytes_per_pass=64 * 1024 * 1024,
    )
    stop = threading.Event()
    thread = threading.Thread(
        target=replicator.run,
        args=(stop,),
        kwargs={"interval_s": 0.1, "retry_s": 0.3},
        name="test-replicator",
    )
    thread.start()
    try:
        with Store.open(data_dir) as store:
            big_path = remote / store.get_clip(big).path
        deadline = time.monotonic() + 60
        while not (big_path.exists() and big_path.stat().st_size > 1024 * 1024):
            assert time.monotonic() < deadline, "the copy never started"
            time.sleep(0.01)
        sshd.kill()  # mid-clip
        cut_at = big_path.stat().st_size
        assert 0 < cut_at < 40 * 1024 * 1024
        time.sleep(1.0)  # a few failed reconnects
        add_clip(data_dir, vault, 300, seed=2)  # recorded while the copy is down
        sshd.start()
        deadline = time.monotonic() + 90
        while True:
            state = replicator.state
            if (
                state.status.connected
                and state.status.bytes_behind == 0
                and all(p.done for p in state.clips.values())
            ):
                break
            assert time.monotonic() < deadline, f"not caught up: {state.status}"
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert_same_copy(data_dir, remote)
    assert actions(data_dir) == ["replicate.stopped", "replicate.resumed"]
    assert load_state(data_dir).status.connected


def test_sftp_disk_full_then_space_freed(
    world: tuple[Path, FakeVault], sshd: SshServer, tmp_path: Path
) -> None:
    data_dir, vault = world
    add_clip(data_dir, vault)
    add_raw_clip(data_dir, 1536 * 1024, offset_s=60)
    with small_filesystem(tmp_path / "remote", 1024) as remote:
        replicator = Replicator(data_dir, sftp_connector(sshd, remote), audit=Audit(data_dir))
        with pytest.raises(ReplicationError):
            for _ in range(5):
                replicator.sync()
        replicator.record_failure("disk full (test)")
        # What is on the full disk is a prefix of the local file, never a file with a hole.
        with Store.open(data_dir) as store:
            for clip in store.clips():
                if (remote / clip.path).exists():
                    partial = (remote / clip.path).read_bytes()
                    assert store.absolute(clip.path).read_bytes().startswith(partial)
        assert not [p for p in remote.rglob("*") if ".tmp-doorbell-" in p.name]
        subprocess.run(["mount", "-o", "remount,size=8m", str(remote)], check=True)
        for _ in range(3):
            replicator.sync()
        assert_same_copy(data_dir, remote)
        assert replicator.state.status.connected
    assert actions(data_dir) == ["replicate.stopped", "replicate.resumed"]


def test_a_replicator_killed_between_write_and_state_save_duplicates_nothing(
    world: tuple[Path, FakeVault], tmp_path: Path
) -> None:
    data_dir, vault = world
    add_clip(data_dir, vault)
    clip_id = add_raw_clip(data_dir, 3 * 1024 * 1024, sealed=False, offset_s=60)
    copy = tmp_path / "copy"
    copy.mkdir()
    Replicator(data_dir, lambda: LocalDestination(copy)).sync()
    saved = (data_dir / "replicate" / "state.json").read_bytes()
    with Store.open(data_dir) as store:
        path = store.absolute(store.get_clip(clip_id).path)
    with open(path, "ab") as handle:
        handle.write(os.urandom(500_000))
    with AuditLog.open(data_dir, signer=load_device_signer(data_dir / "keys")) as log:
        log.append("recorder", "test.more", "", {})
    Replicator(data_dir, lambda: LocalDestination(copy)).sync()
    # The process died before saving: the state on disk is the old one.
    (data_dir / "replicate" / "state.json").write_bytes(saved)
    with open(copy / layout.ENTRIES_FILE, "ab") as handle:
        handle.write(b'{"half a line')  # and a write cut mid-line
    remote_clip = copy / path.relative_to(data_dir)
    with open(remote_clip, "r+b") as handle:  # an unacknowledged pipelined write left a hole
        handle.seek(3 * 1024 * 1024 + 1000)
        handle.write(bytes(65536))
    Replicator(data_dir, lambda: LocalDestination(copy)).sync()
    assert_same_copy(data_dir, copy)


def test_the_copy_refuses_to_follow_a_rolled_back_log(
    world: tuple[Path, FakeVault], tmp_path: Path
) -> None:
    data_dir, vault = world
    add_clip(data_dir, vault)
    old_log = tmp_path / "old-audit.sqlite3"
    shutil.copy(data_dir / "audit.sqlite3", old_log)
    add_clip(data_dir, vault, 60, seed=1)
    copy = tmp_path / "copy"
    copy.mkdir()
    Replicator(data_dir, lambda: LocalDestination(copy)).sync()
    before = (copy / layout.ENTRIES_FILE).read_bytes()
    true_log = tmp_path / "true-audit.sqlite3"
    with AuditLog.open(data_dir) as log:
        log._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy(data_dir / "audit.sqlite3", true_log)
    for suffix in ("-wal", "-shm"):
        (data_dir / f"audit.sqlite3{suffix}").unlink(missing_ok=True)
    shutil.copy(old_log, data_dir / "audit.sqlite3")  # the SD card rolled back
    replicator = Replicator(data_dir, lambda: LocalDestination(copy), audit=Audit(data_dir))
    replicator.sync()
    replicator.sync()
    assert "rolled back" in replicator.state.status.witness_conflict
    assert (copy / layout.ENTRIES_FILE).read_bytes() == before  # the witness is untouched
    assert actions(data_dir) == ["replicate.witness_conflict"]
    # The owner puts the true log back: the conflict clears and the copy goes on.
    for suffix in ("-wal", "-shm"):
        (data_dir / f"audit.sqlite3{suffix}").unlink(missing_ok=True)
    shutil.copy(true_log, data_dir / "audit.sqlite3")
    replicator.sync()
    assert replicator.state.status.witness_conflict == ""
    # (the conflict entry was appended to the rolled-back log, which is gone now)
    assert actions(data_dir) == ["replicate.witness_resolved"]
    replicator.sync()
    assert_same_copy(data_dir, copy)


def test_a_new_destination_gets_a_whole_new_copy(
    world: tuple[Path, FakeVault], tmp_path: Path
) -> None:
    data_dir, vault = world
    add_clip(data_dir, vault)
    first, second = tmp_path / "usb", tmp_path / "nas"
    first.mkdir()
    second.mkdir()
    Replicator(data_dir, lambda: LocalDestination(first), description=str(first)).close()
    replicator = Replicator(data_dir, lambda: LocalDestination(first), description=str(first))
    replicator.sync()
    replicator.close()
    replicator = Replicator(data_dir, lambda: LocalDestination(second), description=str(second))
    replicator.sync()
    assert_same_copy(data_dir, second)


def test_a_hung_destination_never_blocks_the_recorder(
    world: tuple[Path, FakeVault], sshd: SshServer, tmp_path: Path
) -> None:
    data_dir, vault = world
    add_clip(data_dir, vault)
    remote = tmp_path / "remote"
    remote.mkdir()
    replicator = Replicator(data_dir, sftp_connector(sshd, remote, timeout_s=20.0))
    replicator.sync()
    add_raw_clip(data_dir, 8 * 1024 * 1024, offset_s=60)  # a backlog to be busy with
    assert sshd.process is not None
    sessions = sshd.sessions()
    stop = threading.Event()
    thread = threading.Thread(
        target=replicator.run, args=(stop,), kwargs={"interval_s": 0.1}, name="test-replicator"
    )
    for pid in [sshd.process.pid, *sessions]:
        os.kill(pid, signal.SIGSTOP)  # the NAS hangs: TCP stays open, nothing answers
    thread.start()
    try:
        time.sleep(0.5)
        assert thread.is_alive()
        # The recorder meanwhile: a whole clip, its index rows and signed audit entries.
        started = time.monotonic()
        clip_id = add_raw_clip(data_dir, 2 * 1024 * 1024, offset_s=120)
        with AuditLog.open(data_dir, signer=load_device_signer(data_dir / "keys")) as log:
            for _ in range(20):
                log.append("recorder", "clip.sealed", clip_id, {"sha256": "0" * 64})
            log.checkpoint()
        took = time.monotonic() - started
        assert took < 3.0, f"the recorder took {took:.1f} s while the copy hung"
    finally:
        for pid in [sshd.process.pid, *sessions]:
            os.kill(pid, signal.SIGCONT)
    try:
        deadline = time.monotonic() + 60
        while not (
            replicator.state.status.connected
            and replicator.state.clips
            and all(p.done for p in replicator.state.clips.values())
            and replicator.state.status.bytes_behind == 0
        ):
            assert time.monotonic() < deadline, replicator.state.status
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert_same_copy(data_dir, remote)


def _indexes(data: bytes, identity: Any) -> list[int]:
    plain = decrypt(io.BytesIO(data), [identity], allow_truncated=True).read()
    found: list[int] = []
    with contextlib.suppress(VideoError):  # a cut MP4 ends in a decode error after its last frame
        for frame in decode_frames(plain):
            found.append(read_index(frame.image))
    return found


def test_the_real_recorder_is_copied_while_it_records(tmp_path: Path) -> None:
    """doorbell.recorder.pipeline.Recorder records one event; a replicator pass runs in the
    middle of it (from the camera's frame callback). The copy then plays exactly what the
    device's own file plays at that moment, and after the seal it is the same file."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    identity = make_owner(data_dir)
    copy = tmp_path / "copy"
    copy.mkdir()
    replicator = Replicator(data_dir, lambda: LocalDestination(copy))
    seen: dict[str, list[int]] = {}

    def mid_clip(index: int) -> None:
        if index != 150:
            return
        replicator.sync()
        with Store.open(data_dir) as store:
            (clip,) = store.clips()
        assert not clip.sealed
        seen["copy"] = _indexes((copy / clip.path).read_bytes(), identity)
        seen["device"] = _indexes((data_dir / clip.path).read_bytes(), identity)

    config = recorder_config(data_dir, recording={"bitrate_kbps": 4000})
    signer = load_device_signer(data_dir / "keys")
    with AuditLog.open(data_dir, signer=signer) as audit, Store.open(data_dir) as store:
        recorder = Recorder(
            config,
            camera_factory=lambda: IndexCamera(260, on_frame=mid_clip),
            detector=ScriptedMotion(set(range(40, 220))),
            store=store,
            audit=audit,
            recipients=parse_recipients_file(data_dir / "keys" / "owner.recipients"),
        )
        assert recorder.run() == 0
    assert seen["copy"] == seen["device"], "the copy plays what the device played"
    assert len(seen["copy"]) >= 60 and seen["copy"][-1] < 150
    replicator.sync()
    assert_same_copy(data_dir, copy)
    with Store.open(data_dir) as store:
        (clip,) = store.clips()
    assert clip.sealed and _indexes((copy / clip.path).read_bytes(), identity)[-1] >= 219
