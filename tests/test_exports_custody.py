"""Chain of custody (issue 16): attacks on approval and on bundles, each reproduced.

Every test here reproduces an attack from the issue; each failed before its fix.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import require_tool
from exports_helpers import World, make_world
from exports_tamper import (
    CASES,
    Bundle,
    TamperCase,
    forge_by_recorder,
    hidden_member,
    plain_tar,
)

from doorbell.age.identities import X25519Identity
from doorbell.audit.entries import decode_entry
from doorbell.errors import RequestError, StorageError
from doorbell.exports.service import approve_and_build
from doorbell.exports.verify import BundleVerifyError, verify_bundle


@pytest.fixture
def world(data_dir: Path) -> Iterator[World]:
    yield from make_world(data_dir)


def _edit_row(world: World, request_id: str, column: str, value: object) -> None:
    """What anyone with write access to the registry's database file can do."""
    path = world.data_dir / "exports.sqlite3"
    with sqlite3.connect(path) as db:
        query = f"UPDATE export_requests SET {column} = ? WHERE id = ?"  # noqa: S608 - test column
        db.execute(query, (value, request_id))


def _approve(world: World, request_id: str) -> object:
    return approve_and_build(
        world.registry,
        world.store,
        world.audit,
        request_id,
        identity=world.owner,
        cosigning_key=world.cosigning_key,
        clip_ids=world.clip_ids[:1],
    )


def _actions(world: World, request_id: str) -> list[str]:
    return [
        decode_entry(leaf)["action"]
        for _i, leaf in world.audit.entries()
        if decode_entry(leaf)["object"] == f"request/{request_id}"
    ]


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("recipient", str(X25519Identity.generate().recipient)),  # footage to another key
        ("legal_basis", "court_order"),
        ("legal_reference", "ORDER-1"),
        ("requester", "Someone Else"),
        ("reason", "A different reason entirely."),
        ("window_start", 0.0),
        ("delivery", "passphrase"),
        ("source", "invitation"),
        ("invitation_id", "inv-forged"),
    ],
)
def test_approval_refuses_a_row_edited_after_submission(
    world: World, column: str, value: object
) -> None:
    request, _token = world.registry.submit(world.raw_request(), source="owner")
    _edit_row(world, request.id, column, value)
    named = {"window_start": "window", "invitation_id": "invitation"}.get(column, column)
    with pytest.raises(RequestError, match=f"differs from the signed submission in {named}"):
        _approve(world, request.id)
    assert world.registry.get(request.id).status == "pending"
    assert list((world.data_dir / "exports").iterdir()) == []
    assert _actions(world, request.id)[-1] == "export.approval_refused"


def test_bundle_goes_to_the_signed_recipient_even_if_the_row_changes_after_approval(
    world: World,
) -> None:
    from doorbell.exports.bundle import build_bundle
    from doorbell.exports.service import approve, check_owner_log

    request, _token = world.registry.submit(world.raw_request(), source="owner")
    check_owner_log(world.audit, world.owner, world.cosigning_key)
    approve(
        world.registry,
        world.store,
        request.id,
        cosigning_key=world.cosigning_key,
        clip_ids=world.clip_ids[:1],
    )
    thief = X25519Identity.generate()
    _edit_row(world, request.id, "recipient", str(thief.recipient))
    with pytest.raises(RequestError, match="differs from the signed submission"):
        build_bundle(
            registry=world.registry,
            store=world.store,
            audit=world.audit,
            request_id=request.id,
            identity=world.owner,
            cosigning_key=world.cosigning_key,
            checkpoint_wait_s=2.0,
        )
    assert list((world.data_dir / "exports").iterdir()) == []
    assert world.registry.get(request.id).bundle_state == "failed"
    assert _actions(world, request.id)[-2:] == ["export.bundle_refused", "export.bundle_failed"]


# --- the tamper suite: every case is rejected, naming the part ------------------------------


def _genuine(world: World, clips: int = 2) -> Bundle:
    request, _token = world.registry.submit(world.raw_request(), source="owner")
    result = approve_and_build(
        world.registry,
        world.store,
        world.audit,
        request.id,
        identity=world.owner,
        cosigning_key=world.cosigning_key,
        clip_ids=world.clip_ids[:clips],
    )
    return Bundle(world, result.path, world.last_requester, request.id)


def _pins(world: World) -> dict[str, Any]:
    from doorbell.keys import owner_cosigner_vkey

    return {
        "device_vkey": world.audit.device_verifier().vkey,
        "cosigner_vkey": owner_cosigner_vkey(world.owner),
    }


def test_a_genuine_bundle_verifies_against_pinned_keys(world: World) -> None:
    bundle = _genuine(world)
    report = verify_bundle(bundle.path, [bundle.identity], **_pins(world))
    assert report.keys_pinned and report.summary().startswith("OK: ")
    unpinned = verify_bundle(bundle.path, [bundle.identity])
    assert not unpinned.keys_pinned and unpinned.summary().startswith("NOT PROVEN: ")
    for clip in report.clips:
        assert clip.source_sha256 == world.store.get_clip(clip.id).sha256
        assert not clip.after_request


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_tampered_bundle_is_rejected_naming_the_part(world: World, case: TamperCase) -> None:
    bundle = _genuine(world)
    case.apply(bundle)
    with pytest.raises(BundleVerifyError) as caught:
        verify_bundle(bundle.path, [bundle.identity], **_pins(world))
    assert caught.value.what.startswith(case.expect), str(caught.value)


def test_self_consistent_bundle_under_other_keys_fails_pinned(world: World, tmp_path: Path) -> None:
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    for other in make_world(other_dir):
        forged = _genuine(other)
        # self-consistent: it verifies under its own keys ...
        assert not verify_bundle(forged.path, [forged.identity]).keys_pinned
        # ... and not under the owner's
        with pytest.raises(BundleVerifyError) as caught:
            verify_bundle(forged.path, [forged.identity], **_pins(world))
        assert caught.value.what == "audit/device.vkey"


def test_hidden_member_attack_verifies_what_gnu_tar_extracts(world: World, tmp_path: Path) -> None:
    """Issue item 4, reproduced: tarfile stops at the bad header, GNU tar extracts the
    replacement over the genuine clip. Before the strict reader, verify-bundle said OK."""
    import io
    import subprocess
    import tarfile

    tar_tool = require_tool("tar")
    bundle = _genuine(world)
    replacement = b"another clip entirely" * 100
    hidden_member(bundle, replacement)
    plain = plain_tar(bundle)
    with tarfile.open(fileobj=io.BytesIO(plain), mode="r|") as tar:
        seen = [member.name for member in tar]  # what the old verifier read: genuine only
    assert len(seen) == 9 and len(seen) == len(set(seen))
    out = tmp_path / "gnu"
    out.mkdir()
    subprocess.run([tar_tool, "-x", "-C", str(out)], input=plain, check=True, capture_output=True)
    clip = sorted((out / "clips").iterdir())[0]
    assert clip.read_bytes() == replacement  # GNU tar: the replacement over the genuine clip
    with pytest.raises(BundleVerifyError, match="devmajor") as caught:
        verify_bundle(bundle.path, [bundle.identity], **_pins(world))
    assert caught.value.what == "tar"


def test_extract_writes_exactly_what_was_verified(world: World, tmp_path: Path) -> None:
    import hashlib

    bundle = _genuine(world)
    target = tmp_path / "out"
    report = verify_bundle(bundle.path, [bundle.identity], extract_to=target, **_pins(world))
    files = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert files == sorted(
        [c.file for c in report.clips]
        + [
            "VERIFY.txt",
            "manifest.json",
            "audit/entries.jsonl",
            "audit/checkpoint.note",
            "audit/proofs.json",
            "audit/device.vkey",
            "audit/cosigner.vkey",
        ]
    )
    for clip in report.clips:
        assert hashlib.sha256((target / clip.file).read_bytes()).hexdigest() == clip.sha256
    # a bundle that does not verify leaves nothing behind
    tampered = tmp_path / "bad"
    hidden_member(bundle, b"x" * 600)
    with pytest.raises(BundleVerifyError):
        verify_bundle(bundle.path, [bundle.identity], extract_to=tampered, **_pins(world))
    assert list(tampered.iterdir()) == []


_BUNDLE_FILES = [
    "VERIFY.txt",
    "manifest.json",
    "audit/entries.jsonl",
    "audit/checkpoint.note",
    "audit/proofs.json",
    "audit/device.vkey",
    "audit/cosigner.vkey",
]


def _tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def test_extract_writes_nothing_when_only_self_consistent(world: World, tmp_path: Path) -> None:
    """Security review (issue 16b, A): without pinned keys (exit 3, NOT PROVEN) the files
    were extracted all the same. Failed before the fix: the files were in ``out``."""
    bundle = _genuine(world)
    target = tmp_path / "out"
    report = verify_bundle(bundle.path, [bundle.identity], extract_to=target)
    assert not report.keys_pinned and report.extracted_to is None
    assert not target.exists() or _tree(target) == []
    assert "nothing was extracted" in report.summary()
    # accepting the bundle's own keys on purpose extracts them
    trusted = verify_bundle(
        bundle.path, [bundle.identity], extract_to=target, trust_bundle_keys=True
    )
    assert trusted.extracted_to == target and (target / "manifest.json").is_file()


@pytest.mark.parametrize("where", ["clips", "audit"])
def test_extract_refuses_a_symlinked_directory_in_the_target(
    world: World, tmp_path: Path, where: str
) -> None:
    """Security review (issue 16b, A): ``out/clips`` (or ``out/audit``) planted as a symlink
    made the extraction follow it and write outside ``out``. Failed before the fix."""
    bundle = _genuine(world)
    target, outside = tmp_path / "out", tmp_path / "outside"
    target.mkdir()
    outside.mkdir()
    (target / where).symlink_to(outside, target_is_directory=True)
    with pytest.raises(StorageError, match=f"{where}: is a symbolic link"):
        verify_bundle(bundle.path, [bundle.identity], extract_to=target, **_pins(world))
    assert _tree(outside) == []
    assert _tree(target) == [where]  # nothing written, the link left as it was


def test_extract_never_replaces_an_existing_name(world: World, tmp_path: Path) -> None:
    """Security review (issue 16b, A): the exists()-then-rename check let a name that
    exists() does not see (a dangling symlink; or a file made in between) be replaced.
    Failed before the fix: the symlink was replaced by the bundle's manifest."""
    bundle = _genuine(world)
    target = tmp_path / "out"
    target.mkdir()
    (target / "manifest.json").symlink_to(tmp_path / "nowhere")
    with pytest.raises(StorageError, match=r"manifest\.json: already exists"):
        verify_bundle(bundle.path, [bundle.identity], extract_to=target, **_pins(world))
    assert (target / "manifest.json").is_symlink()
    assert _tree(target) == ["manifest.json"]


def test_extract_checks_everything_before_writing_anything(world: World, tmp_path: Path) -> None:
    """Security review (issue 16b, A): with ``audit`` a plain file, VERIFY.txt was moved in
    and then an uncaught OSError stopped the rest, leaving half an extraction. Failed before
    the fix (FileExistsError, VERIFY.txt left in ``out``)."""
    bundle = _genuine(world)
    target = tmp_path / "out"
    target.mkdir()
    (target / "audit").write_bytes(b"mine")
    with pytest.raises(StorageError, match="audit: exists and is not a directory"):
        verify_bundle(bundle.path, [bundle.identity], extract_to=target, **_pins(world))
    assert _tree(target) == ["audit"] and (target / "audit").read_bytes() == b"mine"
    # the same directory, once clear, takes the whole extraction
    (target / "audit").unlink()
    report = verify_bundle(bundle.path, [bundle.identity], extract_to=target, **_pins(world))
    assert _tree(target) == sorted(
        {"audit", "clips", *_BUNDLE_FILES, *(c.file for c in report.clips)}
    )


def test_extract_without_hard_links_copies_and_never_replaces(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a file system without hard links (a FAT stick: link() fails with EPERM) the
    extraction copies into files it creates exclusively; a name that appears meanwhile is
    still never replaced, and what was placed before it is taken back."""
    import errno
    import os

    bundle = _genuine(world)

    def no_links(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    target = tmp_path / "out"
    report = verify_bundle(bundle.path, [bundle.identity], extract_to=target, **_pins(world))
    assert report.extracted_to == target
    assert _tree(target) == sorted(
        {"audit", "clips", *_BUNDLE_FILES, *(c.file for c in report.clips)}
    )
    # a file that appears between the check and the copy (here: while the first is placed)
    racing = tmp_path / "race"
    original_open = os.open

    def open_then_race(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if path == "manifest.json" and flags & os.O_EXCL:
            (racing / "manifest.json").write_bytes(b"theirs")
        return original_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_then_race)
    with pytest.raises(StorageError, match=r"manifest\.json: already exists"):
        verify_bundle(bundle.path, [bundle.identity], extract_to=racing, **_pins(world))
    assert _tree(racing) == ["manifest.json"]  # VERIFY.txt, placed first, taken back
    assert (racing / "manifest.json").read_bytes() == b"theirs"


# --- the owner signs the decision (issue 16b, C) ---------------------------------------------


@pytest.mark.parametrize("signed", ["unsigned", "signed by another key"])
def test_a_bundle_forged_by_the_recorder_is_rejected(world: World, signed: str) -> None:
    """Security review (issue 16b, C): with the device key alone, the recorder appends a
    submission, an "owner" approval and the seal of its own manifest, and the owner's routine
    cosignature covers them. Failed before the fix: verify-bundle with both keys pinned said
    OK ("the owner approved exactly this")."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from doorbell.exports.record import read_record

    genuine = _genuine(world)
    other_key = Ed25519PrivateKey.generate() if signed != "unsigned" else None
    forged = forge_by_recorder(genuine, sign_with=other_key)
    with pytest.raises(BundleVerifyError, match="not the owner's decision") as caught:
        verify_bundle(forged.path, [forged.identity], **_pins(world))
    assert caught.value.what.startswith("audit/entries.jsonl entry ")
    # and on the device, approval and the build see no approval for it at all
    owner_key = world.cosigning_key.public_key().public_bytes_raw()
    record = read_record(world.audit, forged.request_id, owner_key=owner_key)
    assert record.submitted is not None and record.approved is None
    # the genuine bundle still verifies
    assert verify_bundle(genuine.path, [genuine.identity], **_pins(world)).keys_pinned


def test_a_bogus_approval_entry_does_not_block_the_real_approval(world: World) -> None:
    """Security review (issue 16b, C): the recorder sees the submission in the log and
    appends an "owner" approval of its own first (device key only). The first approval
    entry counted, so the owner's real approval was refused at build time. Failed before
    the fix (BundleError: the registry's decision differs from the signed approval)."""
    from doorbell.exports.record import read_record

    request, _token = world.registry.submit(world.raw_request(), source="owner")
    bogus = world.audit.append(
        "owner",
        "export.request_approved",
        f"request/{request.id}",
        {
            "clips": [world.clip_ids[2]],
            "bundle_expires_at": world.clock() + 86400,
            "download_limit": 100,
            "redaction": None,
            "step_up": True,
            "include_later_footage": False,
        },
    )
    result = approve_and_build(
        world.registry,
        world.store,
        world.audit,
        request.id,
        identity=world.owner,
        cosigning_key=world.cosigning_key,
        clip_ids=world.clip_ids[:2],
    )
    bundle = Bundle(world, result.path, world.last_requester, request.id)
    report = verify_bundle(bundle.path, [bundle.identity], **_pins(world))
    assert sorted(report.manifest.decision.clips) == sorted(world.clip_ids[:2])
    assert report.manifest.decision.approval_index > bogus
    owner_key = world.cosigning_key.public_key().public_bytes_raw()
    approved = read_record(world.audit, request.id, owner_key=owner_key).approved
    assert approved is not None and approved.index == report.manifest.decision.approval_index


def test_later_footage_only_on_purpose_and_the_manifest_says_so(world: World) -> None:
    from ui_helpers import T0, make_clip

    from doorbell.recorder.sealaudit import append_clip_sealed

    request, _token = world.registry.submit(world.raw_request(), source="owner")
    world.clock.advance(5.0)
    later = make_clip(world.store, [world.owner.recipient], T0 + 900, seconds=1.0, seed=9)
    append_clip_sealed(world.store, world.audit, world.store.get_clip(later))
    kwargs: dict[str, Any] = {
        "identity": world.owner,
        "cosigning_key": world.cosigning_key,
        "clip_ids": [world.clip_ids[0], later],
    }
    with pytest.raises(RequestError, match="sealed after the request was submitted"):
        approve_and_build(world.registry, world.store, world.audit, request.id, **kwargs)
    assert world.registry.get(request.id).status == "pending"
    result = approve_and_build(
        world.registry,
        world.store,
        world.audit,
        request.id,
        include_later_footage=True,
        **kwargs,
    )
    report = verify_bundle(result.path, [world.last_requester], **_pins(world))
    assert report.manifest.decision.includes_later_footage
    assert [c.after_request for c in report.clips] == [False, True]
    assert "AFTER the request was submitted" in report.summary()


def test_clip_without_its_sealed_entry_is_not_exported(world: World) -> None:
    from ui_helpers import T0, make_clip

    unlogged = make_clip(world.store, [world.owner.recipient], T0 + 900, seconds=1.0, seed=8)
    request, _token = world.registry.submit(world.raw_request(), source="owner")
    with pytest.raises(RequestError, match=r"without a clip\.sealed entry"):
        approve_and_build(
            world.registry,
            world.store,
            world.audit,
            request.id,
            identity=world.owner,
            cosigning_key=world.cosigning_key,
            clip_ids=[unlogged],
        )


# --- least privilege: the registry is its own database file ---------------------------------


def test_registry_moves_out_of_the_index_on_first_open(data_dir: Path) -> None:
    """An index.sqlite3 from before: its export tables move into exports.sqlite3, once."""
    import sqlite3 as sql

    from doorbell.exports.registry import _SCHEMA, ExportRegistry

    with sql.connect(data_dir / "index.sqlite3") as old:
        old.executescript(
            _SCHEMA.replace(
                "CREATE TABLE IF NOT EXISTS export_meta", "CREATE TABLE IF NOT EXISTS unused"
            )
        )
        old.execute(
            "INSERT INTO export_requests (id, created_at, source, status, requester,"
            " organisation, contact, kind, legal_basis, legal_reference, window_start,"
            " window_end, reason, delivery, decide_by) VALUES ('req-0123456789ab', 1.0, 'owner',"
            " 'pending', 'PC', '', 'pc@x', 'police', 'voluntary', '', 0.0, 60.0,"
            " 'a reason here', 'passphrase', 9e9)"
        )
        old.execute("INSERT INTO export_settings VALUES ('open_form', '1')")
    from doorbell.audit.log import AuditLog

    log = AuditLog.open(data_dir)
    registry = ExportRegistry.open(data_dir, log)
    try:
        assert registry.get("req-0123456789ab").fields.requester == "PC"
        assert registry.open_form_enabled()
    finally:
        registry.close()
    with sql.connect(data_dir / "index.sqlite3") as old:
        tables = {r[0] for r in old.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert not tables & {"export_requests", "export_settings"}
        # whatever appears in the index later is never migrated again
        old.executescript(
            _SCHEMA.replace(
                "CREATE TABLE IF NOT EXISTS export_meta", "CREATE TABLE IF NOT EXISTS unused"
            )
        )
        old.execute("INSERT INTO export_settings VALUES ('transparency_public', '1')")
    registry = ExportRegistry.open(data_dir, log)
    try:
        assert not registry.transparency_public()
    finally:
        registry.close()
        log.close()
