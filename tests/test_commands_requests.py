"""``doorbell requests`` and ``doorbell verify-bundle`` end to end on a real data dir."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from exports_helpers import log_sealed_clips
from ui_helpers import T0, make_clip, owner_init, rewrite_log

from doorbell.age.identities import X25519Identity
from doorbell.audit.anchor import ANCHOR_FILE, Anchor, read_anchor
from doorbell.audit.devicekey import create_device_key, load_device_signer
from doorbell.audit.entries import decode_entry
from doorbell.audit.log import AuditLog
from doorbell.audit.verify import verify_data_dir
from doorbell.cli import cli
from doorbell.keys import (
    create_owner_keys,
    derive_owner_anchor_key,
    derive_owner_cosigning_key,
    unlock_owner_identity,
)
from doorbell.store import Store
from doorbell.ui.vault import OwnerKeys

PASSPHRASE = "owner passphrase for tests"


def found(pattern: str, text: str) -> str:
    """The first group of ``pattern`` in ``text`` (the test fails when it is not there)."""
    match = re.search(pattern, text)
    assert match is not None, text
    return match.group(1)


def _setup(data_dir: Path) -> list[str]:
    identity = create_owner_keys(data_dir, PASSPHRASE, work_factor=10)
    create_device_key(data_dir / "keys", "doorbell.test/cli")
    owner_init(data_dir, OwnerKeys(identity, derive_owner_cosigning_key(identity)))  # as init does
    with Store.open(data_dir) as store:
        clips = [
            make_clip(store, [identity.recipient], T0 + 60 * (i + 1), seconds=1.0, seed=i)
            for i in range(3)
        ]
        log_sealed_clips(data_dir, store, clips)  # what the recorder logs
    return clips


def _pins(data_dir: Path) -> list[str]:
    """The keys a requester gets from the owner by another channel (`doorbell keys show`)."""
    from doorbell.keys import owner_cosigner_vkey, unlock_owner_identity

    device = (data_dir / "keys" / "device.vkey").read_text().strip()
    cosigner = owner_cosigner_vkey(unlock_owner_identity(data_dir, PASSPHRASE))
    return ["--device-vkey", device, "--cosigner-vkey", cosigner]


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_add_list_show_approve_verify_deny(data_dir: Path, tmp_path: Path) -> None:
    clips = _setup(data_dir)
    requester = X25519Identity.generate()
    key_file = tmp_path / "requester.txt"
    key_file.write_text(f"{requester}\n")
    base = ["--data-dir", str(data_dir)]
    code, out = _run(
        "requests",
        "add",
        *base,
        "--requester",
        "PC Smith",
        "--contact",
        "pc@police.example",
        "--kind",
        "police",
        "--legal-basis",
        "warrant",
        "--reference",
        "W-1",
        "--from",
        "2026-01-01T00:00",
        "--to",
        "2026-01-01T01:00",
        "--reason",
        "Burglary at number 12 that night.",
        "--recipient",
        str(requester.recipient),
    )
    assert code == 0, out
    request_id = found(r"added (req-[0-9a-f]{12})", out)
    code, out = _run("requests", "list", *base)
    assert request_id in out and "pending" in out
    code, out = _run("requests", "show", *base, request_id)
    assert all(c in out for c in clips)
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not the passphrase\n")
    code, out = _run(
        "requests",
        "approve",
        *base,
        request_id,
        "--clip",
        clips[0],
        "--passphrase-file",
        str(wrong),
    )
    assert code == 1 and "wrong passphrase" in out
    good = tmp_path / "good.txt"
    good.write_text(PASSPHRASE + "\n")
    code, out = _run(
        "requests",
        "approve",
        *base,
        request_id,
        "--clip",
        clips[0],
        "--clip",
        clips[2],
        "--download-limit",
        "1",
        "--passphrase-file",
        str(good),
    )
    assert code == 0, out
    bundle = data_dir / "exports" / f"{request_id}.tar.age"
    code, out = _run("verify-bundle", str(bundle), "-i", str(key_file), *_pins(data_dir))
    assert code == 0, out
    assert "OK: bundle for request" in out and "clips: 2" in out
    # Without pinned keys: every check passes, but it says first that this proves only
    # self-consistency, and exits 3 unless the requester opts in.
    code, out = _run("verify-bundle", str(bundle), "-i", str(key_file))
    assert code == 3 and out.startswith("NOT PROVEN: "), out
    code, out = _run("verify-bundle", str(bundle), "-i", str(key_file), "--trust-bundle-keys")
    assert code == 0 and out.startswith("OK (bundle keys trusted on purpose)"), out
    # --extract writes only what is proven (issue 16b): not when the result is NOT PROVEN
    out_dir = tmp_path / "out"
    code, out = _run("verify-bundle", str(bundle), "-i", str(key_file), "--extract", str(out_dir))
    assert code == 3 and "nothing was extracted" in out and not out_dir.exists(), out
    argv = ["verify-bundle", str(bundle), "-i", str(key_file), "--extract", str(out_dir)]
    code, out = _run(*argv, *_pins(data_dir))
    assert code == 0 and (out_dir / "manifest.json").is_file(), out
    code, out = _run(*argv, *_pins(data_dir))  # again: never over what is there
    assert code == 1 and "already exists" in out, out
    # A second decision is refused; a flipped byte fails verification.
    code, out = _run("requests", "deny", *base, request_id, "--reason", "changed my mind")
    assert code == 1 and "not pending" in out
    data = bytearray(bundle.read_bytes())
    data[-100] ^= 1
    bundle.write_bytes(bytes(data))
    code, out = _run("verify-bundle", str(bundle), "-i", str(key_file))
    assert code == 1 and "age" in out


def test_deny_and_invite(data_dir: Path) -> None:
    _setup(data_dir)
    base = ["--data-dir", str(data_dir)]
    code, out = _run("requests", "invite", *base, "--label", "insurer", "--days", "2")
    assert code == 0 and re.search(r"/requests/invite/[A-Za-z0-9_-]{43}$", out.strip())
    code, out = _run(
        "requests",
        "add",
        *base,
        "--requester",
        "Neighbour",
        "--contact",
        "n@example.org",
        "--kind",
        "neighbour",
        "--legal-basis",
        "voluntary",
        "--from",
        "2026-01-01T00:00",
        "--to",
        "2026-01-01T01:00",
        "--reason",
        "My bike was stolen from the front.",
    )
    request_id = found(r"(req-[0-9a-f]{12})", out)
    code, out = _run("requests", "deny", *base, request_id, "--reason", "Not my camera's view.")
    assert code == 0
    code, out = _run("requests", "show", *base, request_id)
    assert "denied: Not my camera's view." in out
    assert not (data_dir / "exports" / f"{request_id}.tar.age").exists()


def test_verify_bundle_needs_exactly_one_key(tmp_path: Path) -> None:
    bundle = tmp_path / "b.tar.age"
    bundle.write_bytes(b"x")
    code, out = _run("verify-bundle", str(bundle))
    assert code == 2 and "exactly one" in out


def _add(base: list[str], recipient: str) -> str:
    code, out = _run(
        "requests",
        "add",
        *base,
        "--requester",
        "PC Smith",
        "--contact",
        "pc@police.example",
        "--kind",
        "police",
        "--legal-basis",
        "voluntary",
        "--from",
        "2026-01-01T00:00",
        "--to",
        "2026-01-01T01:00",
        "--reason",
        "Parcel taken from the doorstep.",
        "--recipient",
        recipient,
    )
    assert code == 0, out
    return found(r"added (req-[0-9a-f]{12})", out)


def test_approve_with_redaction_flags(data_dir: Path, tmp_path: Path) -> None:
    from exports_helpers import bundle_clips, decoded_frames

    clips = _setup(data_dir)
    requester = X25519Identity.generate()
    key_file = tmp_path / "requester.txt"
    key_file.write_text(f"{requester}\n")
    good = tmp_path / "good.txt"
    good.write_text(PASSPHRASE + "\n")
    base = ["--data-dir", str(data_dir)]
    request_id = _add(base, str(requester.recipient))
    for bad, message in (
        (["--redact-region", "0.5,0.1,0.2,0.3"], "left must be < right"),
        (["--keep-region", "0,0,1"], "want x0,y0,x1,y1"),
        (["--redact-method", "blur"], "blur"),
    ):
        code, out = _run(
            "requests", "approve", *base, request_id, "--all", "--passphrase-file", str(good), *bad
        )
        assert code == 2 and message in out, out
    code, out = _run(
        "requests",
        "approve",
        *base,
        request_id,
        "--clip",
        clips[0],
        "--passphrase-file",
        str(good),
        "--redact-region",
        "0.05,0.05,0.3,0.4",
        "--redact-region",
        "0.6,0.5,0.95,0.95",
        "--keep-region",
        "0,0,0.97,1",
        "--redact-method",
        "fill",
    )
    assert code == 0, out
    assert "redaction: faces off, 2 region(s), 1 kept region(s), fill" in out
    assert "redacting: 100%" in out and "clips: 100%" in out  # progress printed
    bundle = data_dir / "exports" / f"{request_id}.tar.age"
    code, out = _run("verify-bundle", str(bundle), "-i", str(key_file), *_pins(data_dir))
    assert code == 0, out
    assert "redacted: 2 region(s), everything outside 1 kept region(s); method 'fill'" in out
    assert "frames: 10, with faces: 0" in out
    manifest, members = bundle_clips(bundle, requester)
    assert manifest["clips"][0]["redaction"]["what"]["keep"] == [
        [[0, 0], [0.97, 0], [0.97, 1], [0, 1]]
    ]
    for frame in decoded_frames(members[f"clips/{clips[0]}.mp4"]):
        assert frame[10:44, 12:44].max() <= 12 and frame[:, 157:].max() <= 12


# --- the owner anchor: approve checks the log through it, as web unlock does ---------------


def _owner_files(data_dir: Path, tmp_path: Path) -> tuple[list[str], Path, list[str]]:
    """A set-up data dir, the owner passphrase file and two pending requests."""
    clips = _setup(data_dir)
    good = tmp_path / "good.txt"
    good.write_text(PASSPHRASE + "\n")
    good.chmod(0o600)
    base = ["--data-dir", str(data_dir)]
    recipient = str(X25519Identity.generate().recipient)
    return clips, good, [_add(base, recipient), _add(base, recipient)]


def _approve(data_dir: Path, request_id: str, clip: str, good: Path) -> tuple[int, str]:
    return _run(
        "requests",
        "approve",
        "--data-dir",
        str(data_dir),
        request_id,
        "--clip",
        clip,
        "--passphrase-file",
        str(good),
    )


def _actions(data_dir: Path) -> list[str]:
    with AuditLog.open(data_dir) as log:
        return [decode_entry(leaf)["action"] for _, leaf in log.entries()]


def _cosignatures(data_dir: Path) -> int:
    with AuditLog.open(data_dir) as log:
        return log._conn.execute("SELECT count(*) FROM cosignatures").fetchone()[0]


def _anchor(data_dir: Path) -> Anchor:
    key = derive_owner_anchor_key(unlock_owner_identity(data_dir, PASSPHRASE))
    return read_anchor(data_dir, key)


def _status(data_dir: Path, request_id: str) -> str:
    code, out = _run("requests", "show", "--data-dir", str(data_dir), request_id)
    assert code == 0, out
    return out.split(": ", 1)[1].split(" ", 1)[0]


def _assert_refused(
    data_dir: Path,
    request_id: str,
    code: int,
    out: str,
    *,
    before: list[str],
    cosignatures: int,
    entry: str,
) -> None:
    """Exit 1, nothing approved or exported or cosigned; the one entry the web path writes."""
    assert code == 1, out
    assert "not approved" in out and "Nothing was exported" in out
    assert _status(data_dir, request_id) == "pending"
    assert not (data_dir / "exports" / f"{request_id}.tar.age").exists()
    assert _cosignatures(data_dir) == cosignatures
    assert _actions(data_dir)[: len(before)] == before
    assert [a for a in _actions(data_dir)[len(before) :] if a != "export.request_viewed"] == [entry]


def test_approve_cosigns_through_the_owner_anchor(data_dir: Path, tmp_path: Path) -> None:
    clips, good, (first, _second) = _owner_files(data_dir, tmp_path)
    before = _anchor(data_dir)
    code, out = _approve(data_dir, first, clips[0], good)
    assert code == 0, out
    after = _anchor(data_dir)
    assert after.size > before.size  # the anchor moved on with the approval's cosignature
    assert "audit.anchor_mismatch" not in _actions(data_dir)
    code, out = _run(
        "audit",
        "verify",
        "--data-dir",
        str(data_dir),
        "--owner-check",
        "--passphrase-file",
        str(good),
    )
    assert code == 0 and "owner anchor: OK" in out, out


def test_approve_refuses_a_log_rewritten_without_cosignatures(
    data_dir: Path, tmp_path: Path
) -> None:
    clips, good, (first, second) = _owner_files(data_dir, tmp_path)
    with AuditLog.open(data_dir, signer=load_device_signer(data_dir / "keys")) as log:
        log.append("owner", "clip.downloaded", clips[1])  # what the attacker wants gone
    assert _approve(data_dir, first, clips[0], good)[0] == 0  # anchor now covers that entry
    rewrite_log(data_dir)  # device key off the SD card; no owner cosignature left
    verdict = verify_data_dir(data_dir)  # issue 17: keys.created but no cosignature at all
    assert not verdict.ok and "no owner cosignature at all" in verdict.problem
    before = _actions(data_dir)
    code, out = _approve(data_dir, second, clips[0], good)
    _assert_refused(
        data_dir, second, code, out, before=before, cosignatures=0, entry="audit.anchor_mismatch"
    )
    assert "does not match the owner anchor" in out


def test_approve_refuses_a_rolled_back_log_that_keeps_an_older_cosignature(
    data_dir: Path, tmp_path: Path
) -> None:
    """The copy of the log taken at setup still holds the owner's first cosignature, so the
    latest-cosignature check alone accepted it; only the anchor knows what came after."""
    clips, good, (first, second) = _owner_files(data_dir, tmp_path)
    names = [f"audit.sqlite3{suffix}" for suffix in ("", "-wal", "-shm")]
    saved = tmp_path / "saved"
    saved.mkdir()
    for name in names:
        if (data_dir / name).exists():
            shutil.copy(data_dir / name, saved / name)
    assert _approve(data_dir, first, clips[0], good)[0] == 0
    anchored = _anchor(data_dir).size
    for name in names:  # the attacker puts the old log back and pads it past the anchor
        (data_dir / name).unlink(missing_ok=True)
        if (saved / name).exists():
            shutil.copy(saved / name, data_dir / name)
    with AuditLog.open(data_dir, signer=load_device_signer(data_dir / "keys")) as log:
        while log.size <= anchored:
            log.append("owner", "web.locked", "", {"reason": "button"})
    assert _cosignatures(data_dir) == 1  # init's, which the new log still extends
    before = _actions(data_dir)
    code, out = _approve(data_dir, second, clips[0], good)
    _assert_refused(
        data_dir, second, code, out, before=before, cosignatures=1, entry="audit.anchor_mismatch"
    )
    assert "history was rewritten" in out


@pytest.mark.parametrize(
    ("damage", "entry", "message"),
    [
        ("delete", "audit.anchor_missing", "the owner anchor made at setup is gone"),
        ("flip", "audit.anchor_mismatch", "does not open with your key"),
    ],
)
def test_approve_refuses_without_a_good_anchor(
    data_dir: Path, tmp_path: Path, damage: str, entry: str, message: str
) -> None:
    clips, good, (first, _second) = _owner_files(data_dir, tmp_path)
    path = data_dir / ANCHOR_FILE
    if damage == "delete":
        path.unlink()
    else:
        data = bytearray(path.read_bytes())
        data[-1] ^= 1
        path.write_bytes(bytes(data))
    left = path.read_bytes() if path.exists() else None
    before = _actions(data_dir)
    code, out = _approve(data_dir, first, clips[0], good)
    _assert_refused(data_dir, first, code, out, before=before, cosignatures=1, entry=entry)
    assert message in out
    assert (path.read_bytes() if path.exists() else None) == left  # the anchor untouched


def test_owner_checks_their_own_export_with_the_wrapped_key_file(
    data_dir: Path, tmp_path: Path
) -> None:
    """Issue 16: the owner's own export (delivered to the owner's recipient) is checked with
    keys/owner.key.age and the owner passphrase; the cosigner key is pinned from it."""
    from doorbell.audit.log import AuditLog
    from doorbell.config import ExportsConfig
    from doorbell.exports.registry import ExportRegistry
    from doorbell.exports.service import approve_and_build

    clips = _setup(data_dir)
    identity = unlock_owner_identity(data_dir, PASSPHRASE)
    with (
        AuditLog.open(data_dir, signer=load_device_signer(data_dir / "keys")) as audit,
        Store.open(data_dir) as store,
        ExportRegistry.open(data_dir, audit, config=ExportsConfig(checkpoint_wait_s=5)) as registry,
    ):
        request = registry.add_self_export(
            window_start=T0, window_end=T0 + 3600, recipient=str(identity.recipient)
        )
        result = approve_and_build(
            registry,
            store,
            audit,
            request.id,
            identity=identity,
            cosigning_key=derive_owner_cosigning_key(identity),
            clip_ids=clips[:1],
        )
    good = tmp_path / "owner-passphrase.txt"
    good.write_text(PASSPHRASE + "\n")
    key_file = str(data_dir / "keys" / "owner.key.age")
    device = (data_dir / "keys" / "device.vkey").read_text().strip()
    argv = ["verify-bundle", str(result.path), "--owner-key", key_file]
    code, out = _run(*argv, "--passphrase-file", str(good), "--device-vkey", device)
    assert code == 0 and out.startswith("OK: "), out
    # issue 16b, B: the device key is read from the owner's own data dir (beside the key
    # file), so both keys are pinned and it exits 0 as docs/formats.md says. Failed before
    # the fix: exit 3, NOT PROVEN (only the cosigner key was pinned).
    code, out = _run(*argv, "--passphrase-file", str(good))
    assert code == 0 and out.startswith("OK: "), out
    assert f"device key from {data_dir / 'keys' / 'device.vkey'}" in out, out
    elsewhere = tmp_path / "copy" / "owner.key.age"  # the key file away from the data dir
    elsewhere.parent.mkdir()
    shutil.copy(key_file, elsewhere)
    moved = ["verify-bundle", str(result.path), "--owner-key", str(elsewhere)]
    code, out = _run(*moved, "--passphrase-file", str(good))
    assert code == 2 and "--device-vkey" in out, out
    code, out = _run(*moved, "--passphrase-file", str(good), "--device-vkey", device)
    assert code == 0 and out.startswith("OK: "), out
    other = tmp_path / "other-keys"
    other.mkdir()
    create_device_key(other, "doorbell.test/other")
    stranger = (other / "device.vkey").read_text().strip()
    code, out = _run(*moved, "--passphrase-file", str(good), "--device-vkey", stranger)
    assert code == 1 and "audit/device.vkey" in out, out
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not the owner passphrase\n")
    code, out = _run(*argv, "--passphrase-file", str(wrong), "--device-vkey", device)
    assert code == 1 and "cannot unlock the owner key" in out, out


def test_add_prints_the_status_link_the_owner_page_shows_again(
    data_dir: Path, tmp_path: Path
) -> None:
    import socket

    from doorbell.config import WebConfig
    from doorbell.exports.registry import ExportRegistry
    from doorbell.ui.guard import device_url

    _setup(data_dir)
    code, out = _run(
        "requests",
        "add",
        "--data-dir",
        str(data_dir),
        "--requester",
        "Ann Neighbour",
        "--contact",
        "ann@example.org",
        "--kind",
        "neighbour",
        "--legal-basis",
        "voluntary",
        "--from",
        "2026-01-01T00:00",
        "--to",
        "2026-01-01T01:00",
        "--reason",
        "My bicycle went missing that night.",
    )
    assert code == 0, out
    request_id = found(r"added (req-[0-9a-f]{12})", out)
    link = found(r"requester status link: (\S+)", out)
    token = link.rsplit("/", 1)[1]
    assert link == device_url(WebConfig(), f"/requests/status/{token}")
    assert f"{socket.gethostname().lower()}.local" in link and link.startswith("http")
    # the owner's copy (decrypted with the unlocked identity) is this same token
    with AuditLog.open(data_dir) as audit, ExportRegistry.open(data_dir, audit) as registry:
        assert registry.by_token(token).id == request_id
        identity = unlock_owner_identity(data_dir, PASSPHRASE)
        assert registry.status_token(request_id, identity) == token
