"""Export requests: validation, lifecycle, audit entries, downloads, expiry, bundles, tamper."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from exports_helpers import World, bundle_members, make_world, rewrite_bundle

from doorbell.age.identities import ScryptIdentity
from doorbell.audit.entries import decode_entry
from doorbell.errors import NotPermitted, RequestError
from doorbell.exports.model import RequestInvalid, token_hash
from doorbell.exports.service import approve_and_build, clips_for_request
from doorbell.exports.verify import BundleVerifyError, verify_bundle
from doorbell.fsutil import TEMP_MARKER


@pytest.fixture
def world(data_dir: Path) -> Iterator[World]:
    yield from make_world(data_dir)


def entries_about(world: World, request_id: str) -> list[dict]:
    return [
        decode_entry(leaf)
        for _i, leaf in world.audit.entries()
        if decode_entry(leaf)["object"] == f"request/{request_id}"
    ]


def approved_bundle(world: World, clips: int = 2, **decision: Any) -> tuple:
    request, token = world.registry.submit(world.raw_request(), source="owner")
    result = approve_and_build(
        world.registry,
        world.store,
        world.audit,
        request.id,
        identity=world.owner,
        cosigning_key=world.cosigning_key,
        clip_ids=world.clip_ids[:clips],
        **decision,
    )
    return request, token, result


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"requester": ""}, "requester"),
        ({"requester": "x" * 121}, "requester"),
        ({"requester": "Eve\u202egnp.exe"}, "requester"),
        ({"contact": "a\nb"}, "contact"),
        ({"kind": "journalist"}, "kind"),
        ({"legal_basis": "because"}, "legal_basis"),
        ({"legal_reference": ""}, "legal_reference"),
        ({"legal_reference": "<script>"}, "legal_reference"),
        ({"window_start": "yesterday"}, "window_start"),
        ({"window_end": "2025-12-31T23:00"}, "window_end"),
        ({"window_end": "2026-03-01T00:00"}, "window"),
        ({"window_start": "2030-01-01T00:00", "window_end": "2030-01-01T01:00"}, "window_start"),
        ({"reason": "short"}, "reason"),
        ({"reason": "y" * 2001}, "reason"),
        ({"delivery": "email"}, "delivery"),
        ({"recipient": "AGE-SECRET-KEY-1QQQ"}, "recipient"),
        ({"recipient": "age1notakey"}, "recipient"),
        ({"extra": "field"}, "unknown fields"),
    ],
)
def test_invalid_fields_are_refused_by_name(world: World, change: dict, field: str) -> None:
    with pytest.raises(RequestInvalid) as caught:
        world.registry.submit(world.raw_request(**change), source="owner")
    assert any(p.startswith(field) for p in caught.value.problems), caught.value.problems
    assert world.registry.requests() == []


def test_voluntary_needs_no_reference_and_passphrase_needs_no_recipient(world: World) -> None:
    raw = world.raw_request(legal_basis="voluntary", legal_reference="", delivery="passphrase")
    raw.pop("recipient")
    request, token = world.registry.submit(raw, source="owner")
    assert request.fields.recipient is None and request.fields.legal_reference == ""
    assert world.registry.by_token(token).id == request.id


def test_tokens_are_stored_hashed_only(world: World) -> None:
    _request, token = world.registry.submit(world.raw_request(), source="owner")
    database = (world.data_dir / "exports.sqlite3").read_bytes()
    journal = world.data_dir / "exports.sqlite3-journal"
    everything = database + (journal.read_bytes() if journal.exists() else b"")
    assert token is not None
    assert token.encode() not in everything
    hashed = token_hash(token)
    assert hashed is not None
    assert hashed.encode() in everything


# --- lifecycle ------------------------------------------------------------------------------


def test_every_transition_is_audited_with_the_request_id(world: World) -> None:
    request, token, _result = approved_bundle(world, download_limit=1)
    world.registry.open_download(token, client="10.0.0.9")[1].close()
    actions = [e["action"] for e in entries_about(world, request.id)]
    assert actions == [
        "export.request_submitted",
        "export.request_approved",
        "export.bundle_sealed",
        "export.bundle_ready",
        "export.downloaded",
        "export.bundle_deleted",
    ]
    approved = entries_about(world, request.id)[1]
    assert approved["actor"] == "owner" and approved["details"]["step_up"] is True


def test_deny_keeps_reason_and_makes_no_bundle(world: World) -> None:
    request, token = world.registry.submit(world.raw_request(), source="owner")
    world.registry.deny(request.id, "No warrant attached.")
    assert world.registry.by_token(token).deny_reason == "No warrant attached."
    assert not world.registry.bundle_path(request.id).exists()
    with pytest.raises(RequestError):
        world.registry.approve(
            request.id, cosigning_key=world.cosigning_key, clip_ids=world.clip_ids[:1]
        )
    with pytest.raises(NotPermitted):
        world.registry.open_download(token)
    assert list((world.data_dir / "exports").iterdir()) == []


def test_undecided_requests_expire_as_denial(world: World) -> None:
    request, _token = world.registry.submit(world.raw_request(), source="owner")
    world.clock.advance(15 * 86400)
    assert world.registry.sweep() == [request.id]
    assert world.registry.get(request.id).status == "expired"
    assert entries_about(world, request.id)[-1]["actor"] == "system"
    with pytest.raises(RequestError):
        world.registry.approve(
            request.id, cosigning_key=world.cosigning_key, clip_ids=world.clip_ids[:1]
        )
    assert not world.registry.bundle_path(request.id).exists()


def test_bundle_is_deleted_after_expiry_and_download_refused(world: World) -> None:
    request, token, result = approved_bundle(world, expires_in_s=3600)
    assert result.path.exists()
    world.clock.advance(3601)
    with pytest.raises(NotPermitted):
        world.registry.open_download(token)
    assert not result.path.exists()
    assert world.registry.get(request.id).status == "closed"
    deleted, refused = entries_about(world, request.id)[-2:]
    assert deleted["action"] == "export.bundle_deleted"
    assert deleted["details"] == {"reason": "bundle expired"}
    assert refused["action"] == "export.download_refused"


def test_expired_bundles_are_swept_on_a_timer_without_any_page_load(world: World) -> None:
    """Issue 17 (assigned to 16): before, an expired bundle stayed on disk until a page load
    or a download attempt swept it."""
    import threading
    import time

    from doorbell.exports.service import ExpirySweeper

    request, _token, result = approved_bundle(world, expires_in_s=3600)
    world.clock.advance(3601)
    sweeper = ExpirySweeper(world.registry, interval_s=0.02)
    sweeper.start()
    try:
        deadline = time.monotonic() + 10
        while result.path.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        sweeper.stop()
    assert not result.path.exists()
    assert world.registry.get(request.id).status == "closed"
    assert entries_about(world, request.id)[-1]["details"] == {"reason": "bundle expired"}
    assert not any(t.name == "exports-expiry-sweep" for t in threading.enumerate())


def test_download_limit_then_refused_and_audited(world: World) -> None:
    request, token, result = approved_bundle(world, download_limit=2)
    for _ in range(2):
        _request, handle = world.registry.open_download(token, client="c")
        with handle:
            assert hashlib.sha256(handle.read()).hexdigest() == result.sha256
    assert not result.path.exists()  # used up: deleted
    with pytest.raises(NotPermitted):
        world.registry.open_download(token, client="c")
    assert entries_about(world, request.id)[-1]["action"] == "export.download_refused"


def test_other_tokens_never_open_a_bundle(world: World) -> None:
    _request, token, _result = approved_bundle(world)
    _other, other_token = world.registry.submit(world.raw_request(), source="owner")
    with pytest.raises(NotPermitted):
        world.registry.open_download(other_token)  # pending: nothing to download
    for forged in ("", "x", token[:-1] + ("A" if token[-1] != "A" else "B"), "../" * 15):
        with pytest.raises(NotPermitted):
            world.registry.open_download(forged)


def test_approval_only_among_clips_in_the_window(world: World) -> None:
    request, _token = world.registry.submit(
        world.raw_request(window_start="2026-01-01T00:00", window_end="2026-01-01T00:01:30"),
        source="owner",
    )
    assert [c.id for c in clips_for_request(world.store, request)] == world.clip_ids[:1]
    with pytest.raises(RequestError, match="not in the request's time window"):
        approve_and_build(
            world.registry,
            world.store,
            world.audit,
            request.id,
            identity=world.owner,
            cosigning_key=world.cosigning_key,
            clip_ids=world.clip_ids[1:2],
        )
    assert world.registry.get(request.id).status == "pending"


def test_invitation_single_use_and_expiring(world: World) -> None:
    _invitation, token = world.registry.create_invitation("PC Smith", expires_in_s=3600)
    request, _t = world.registry.submit(
        world.raw_request(), source="invitation", invitation_token=token
    )
    assert request.source == "invitation"
    with pytest.raises(NotPermitted):
        world.registry.submit(world.raw_request(), source="invitation", invitation_token=token)
    _invitation, late = world.registry.create_invitation("late", expires_in_s=60)
    world.clock.advance(61)
    with pytest.raises(NotPermitted):
        world.registry.submit(world.raw_request(), source="invitation", invitation_token=late)
    with pytest.raises(NotPermitted):
        world.registry.submit(world.raw_request(), source="open_form")
    world.registry.set_open_form(True)
    assert world.registry.submit(world.raw_request(), source="open_form")[0].source == "open_form"


def test_monthly_counts_have_no_personal_data(world: World) -> None:
    approved_bundle(world)
    denied, _t = world.registry.submit(world.raw_request(kind="insurer"), source="owner")
    world.registry.deny(denied.id, "no")
    counts = world.registry.monthly_counts()
    assert {(c["kind"], c["outcome"]) for c in counts} == {
        ("police", "approved"),
        ("insurer", "denied"),
    }
    assert "Jane" not in json.dumps(counts)


# --- bundles ---------------------------------------------------------------------------------


def test_bundle_round_trip_verifies_and_holds_the_approved_clips(world: World) -> None:
    request, _token, result = approved_bundle(world)
    report = verify_bundle(result.path, [world.last_requester])
    assert report.request_id == request.id and len(report.clips) == 2
    names = [m.name for m, _d in bundle_members(result.path, world.last_requester)]
    assert names[:2] == [f"clips/{c}.mp4" for c in world.clip_ids[:2]]
    assert set(names[2:]) == {
        "manifest.json",
        "audit/entries.jsonl",
        "audit/checkpoint.note",
        "audit/proofs.json",
        "audit/device.vkey",
        "audit/cosigner.vkey",
        "VERIFY.txt",
    }
    manifest = json.loads(
        dict((m.name, d) for m, d in bundle_members(result.path, world.last_requester))[
            "manifest.json"
        ]
    )
    source = manifest["clips"][0]
    assert source["source_sha256"] == world.store.get_clip(source["id"]).sha256
    # Ciphertext only: no temp files, nothing but the bundle in exports/.
    assert [p.name for p in (world.data_dir / "exports").iterdir()] == [result.path.name]
    assert not any(TEMP_MARKER in p.name for p in world.data_dir.rglob("*"))


def test_passphrase_bundle_round_trip(world: World) -> None:
    raw = world.raw_request(delivery="passphrase")
    raw.pop("recipient")
    request, _token = world.registry.submit(raw, source="owner")
    with pytest.raises(RequestError, match="passphrase"):
        approve_and_build(
            world.registry,
            world.store,
            world.audit,
            request.id,
            identity=world.owner,
            cosigning_key=world.cosigning_key,
            clip_ids=world.clip_ids[:1],
        )
    result = approve_and_build(
        world.registry,
        world.store,
        world.audit,
        request.id,
        identity=world.owner,
        cosigning_key=world.cosigning_key,
        clip_ids=world.clip_ids[:1],
        passphrase="tulip kettle orbit 42",
        work_factor=10,
    )
    assert verify_bundle(result.path, [ScryptIdentity("tulip kettle orbit 42")]).clips
    with pytest.raises(BundleVerifyError, match="age"):
        verify_bundle(result.path, [ScryptIdentity("wrong passphrase entirely")])


def _tamper(world: World, path: Path, name: str, change) -> None:
    members = bundle_members(path, world.last_requester)
    changed = [(m, change(d) if m.name == name else d) for m, d in members]
    rewrite_bundle(path, world.last_requester, changed)


@pytest.mark.parametrize(
    ("member", "change", "named"),
    [
        ("clip", lambda d: d[:-1] + bytes([d[-1] ^ 1]), "clips/"),
        ("manifest.json", lambda d: d.replace(b"Jane", b"John"), "manifest.json"),
        (
            "audit/proofs.json",
            lambda d: d.replace(b'"path": [\n        "', b'"path": [\n        "A'),
            "audit/",
        ),
        (
            "audit/checkpoint.note",
            lambda d: d.replace(b"\n\n", b"\n\n", 1)[:-10] + b"AAAAAAAAA\n",
            "audit/checkpoint.note",
        ),
        (
            "audit/entries.jsonl",
            lambda d: d.replace(b"W-2026/0042", b"W-2026/0043"),
            "audit/entries.jsonl",
        ),
    ],
)
def test_tampering_fails_naming_what(world: World, member: str, change, named: str) -> None:
    _request, _token, result = approved_bundle(world)
    name = f"clips/{world.clip_ids[0]}.mp4" if member == "clip" else member
    _tamper(world, result.path, name, change)
    with pytest.raises(BundleVerifyError) as caught:
        verify_bundle(result.path, [world.last_requester])
    assert caught.value.what.startswith(named), str(caught.value)


def test_removed_or_extra_clip_fails(world: World) -> None:
    _request, _token, result = approved_bundle(world)
    members = bundle_members(result.path, world.last_requester)
    rewrite_bundle(result.path, world.last_requester, members[1:])
    with pytest.raises(BundleVerifyError, match="missing from the bundle"):
        verify_bundle(result.path, [world.last_requester])


def test_pinned_keys_must_match(world: World) -> None:
    _request, _token, result = approved_bundle(world)
    device = world.audit.device_verifier().vkey
    report = verify_bundle(result.path, [world.last_requester], device_vkey=device)
    assert report.device_key
    with pytest.raises(BundleVerifyError, match=r"audit/device\.vkey"):
        verify_bundle(
            result.path,
            [world.last_requester],
            device_vkey=device.replace("doorbell.test", "doorbell.evil"),
        )


def test_failed_build_leaves_no_file_and_is_audited(world: World) -> None:
    request, _token = world.registry.submit(world.raw_request(), source="owner")
    clip = world.store.get_clip(world.clip_ids[0])
    path = world.store.absolute(clip.path)
    path.write_bytes(path.read_bytes()[:-5] + b"xxxxx")  # altered on disk
    with pytest.raises(Exception, match="does not match its index hash"):
        approve_and_build(
            world.registry,
            world.store,
            world.audit,
            request.id,
            identity=world.owner,
            cosigning_key=world.cosigning_key,
            clip_ids=world.clip_ids[:1],
        )
    assert world.registry.get(request.id).bundle_state == "failed"
    assert list((world.data_dir / "exports").iterdir()) == []
    assert entries_about(world, request.id)[-1]["action"] == "export.bundle_failed"


# --- redaction and interrupted clips in bundles -------------------------------------------


def test_interrupted_clip_is_delivered_as_its_playable_prefix(world: World) -> None:
    from exports_helpers import bundle_clips, decoded_frames
    from ui_helpers import T0, make_clip

    from doorbell.age.identities import X25519Identity

    cut = make_clip(
        world.store,
        [world.owner.recipient],
        T0 + 600,
        seconds=4.0,
        bitrate_kbps=3000,
        interrupted=True,
        seed=7,
    )
    clip = world.store.get_clip(cut)
    assert clip.interrupted
    from doorbell.recorder.sealaudit import recover_clip_sealed_entries

    assert recover_clip_sealed_entries(world.store, world.audit) == [cut]  # recorder start
    world.clock.advance(1.0)  # the request comes after the clip was sealed
    requester = X25519Identity.generate()
    request, _token = world.registry.submit(
        world.raw_request(recipient=str(requester.recipient)), source="owner"
    )
    redactions: tuple[dict[str, Any] | None, ...] = (
        None,
        {"keep": [((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0))]},
    )
    for redaction in redactions:
        if redaction is not None:  # a second request: the same clip, redacted outside a keep
            from doorbell.redact import RedactionSpec

            request, _token = world.registry.submit(
                world.raw_request(recipient=str(requester.recipient)), source="owner"
            )
            redaction = RedactionSpec(faces=False, method="fill", **redaction).to_dict()
        result = approve_and_build(
            world.registry,
            world.store,
            world.audit,
            request.id,
            identity=world.owner,
            cosigning_key=world.cosigning_key,
            clip_ids=[world.clip_ids[0], cut],
            redaction=redaction,
        )
        report = verify_bundle(result.path, [requester])
        assert "INTERRUPTED" in report.summary()
        manifest, clips = bundle_clips(result.path, requester)
        entry = next(e for e in manifest["clips"] if e["id"] == cut)
        prefix = entry["interrupted_prefix"]
        assert entry["interrupted"] and 0 < prefix["playable_bytes"] < prefix["authenticated_bytes"]
        frames = decoded_frames(clips[entry["file"]])  # decodes to the end without an error
        assert 0 < len(frames) < 40
        if redaction is None:
            assert entry["size"] == prefix["playable_bytes"] and entry["redaction"] is None
        else:
            assert entry["redaction"]["result"]["frames"] == len(frames)
            assert all(f[2:-2, 82:-2].max() <= 12 for f in frames)  # outside the kept half
            assert "everything outside 1 kept region(s)" in report.summary()


# --- the owner's copy of the requester's status link -------------------------------------------


def _old_schema_database(data_dir: Path) -> str:
    """An ``exports.sqlite3`` as made before the owner's token copies (no
    ``status_token_age`` column), holding one pending request; returns its id."""
    import sqlite3

    from doorbell.exports.registry import _SCHEMA

    old = _SCHEMA.replace(",\n    status_token_age BLOB", "")
    assert "status_token_age" not in old
    with sqlite3.connect(data_dir / "exports.sqlite3") as db:
        db.executescript(old)
        db.execute(
            "INSERT INTO export_requests (id, created_at, source, status, requester,"
            " organisation, contact, kind, legal_basis, legal_reference, window_start,"
            " window_end, reason, delivery, access_hash, decide_by) VALUES"
            " ('req-0123456789ab', 1.0, 'owner', 'pending', 'Old', '', 'old@example', 'police',"
            " 'voluntary', '', 0.0, 60.0, 'An old request from before.', 'passphrase',"
            " 'ab', 1e12)"
        )
    return "req-0123456789ab"


def test_the_owner_copy_of_the_token_opens_only_with_the_owner_identity(world: World) -> None:
    from doorbell.errors import AgeError

    request, token = world.registry.submit(world.raw_request(), source="owner")
    everything = b"".join(
        path.read_bytes() for path in world.data_dir.glob("exports.sqlite3*") if path.is_file()
    )
    assert token.encode() not in everything  # neither the token nor a link holding it
    assert world.registry.status_token(request.id, world.owner) == token
    with pytest.raises(AgeError):  # the recipient side (a disk thief) cannot open it
        world.registry.status_token(request.id, world.last_requester)
    own = world.registry.add_self_export(
        window_start=0.0, window_end=60.0, recipient=str(world.owner.recipient)
    )
    assert world.registry.status_token(own.id, world.owner) is None


def test_a_swapped_token_copy_is_refused_not_shown(world: World) -> None:
    """Whoever can write the database can seal any token to the owner's public key: a copy
    that is not this request's token must not be shown as its requester's link."""
    first, _token_a = world.registry.submit(world.raw_request(), source="owner")
    second, _token_b = world.registry.submit(world.raw_request(), source="owner")
    with world.registry._transaction() as db:
        copy = db.execute(
            "SELECT status_token_age FROM export_requests WHERE id = ?", (second.id,)
        ).fetchone()[0]
        db.execute("UPDATE export_requests SET status_token_age = ? WHERE id = ?", (copy, first.id))
    with pytest.raises(RequestError, match="edited the export registry"):
        world.registry.status_token(first.id, world.owner)


def test_an_older_database_gains_the_column_and_its_rows_have_no_copy(data_dir: Path) -> None:
    import sqlite3

    from doorbell.exports.registry import ExportRegistry

    old_id = _old_schema_database(data_dir)
    for world in make_world(data_dir):  # opens (and migrates) the old database
        assert world.registry.get(old_id).fields.requester == "Old"
        assert world.registry.status_token(old_id, world.owner) is None
        request, token = world.registry.submit(world.raw_request(), source="owner")
        assert world.registry.status_token(request.id, world.owner) == token
        with ExportRegistry.open(data_dir, world.audit, clock=world.clock) as again:
            assert again.status_token(request.id, world.owner) == token  # adds nothing
            assert again.status_token(old_id, world.owner) is None
    with sqlite3.connect(data_dir / "exports.sqlite3") as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(export_requests)")]
    assert columns.count("status_token_age") == 1


def test_a_data_dir_without_owner_recipients_still_takes_requests(world: World) -> None:
    (world.data_dir / "keys" / "owner.recipients").unlink()
    request, token = world.registry.submit(world.raw_request(), source="owner")
    assert world.registry.by_token(token).id == request.id
    assert world.registry.status_token(request.id, world.owner) is None


def test_pending_requests_cache_follows_every_write(world: World) -> None:
    """Issue 17, load: the owner pages' banner reads a cached list of pending requests; it
    follows this registry's writes (submit, deny, expiry) and another connection's (the
    `doorbell requests` CLI) at once."""
    from doorbell.exports.registry import ExportRegistry

    registry = world.registry
    assert registry.pending_requests() == []
    first, _ = registry.submit(world.raw_request(), source="owner")
    assert [r.id for r in registry.pending_requests()] == [first.id]
    assert registry.pending_requests() == registry.requests(status="pending", include_self=False)
    other = ExportRegistry.open(world.data_dir, world.audit, clock=world.clock)
    try:
        world.clock.advance(1)
        second, _ = other.submit(world.raw_request(), source="owner")
        assert [r.id for r in registry.pending_requests()] == [second.id, first.id]
        other.deny(first.id, "No warrant attached.")
        assert [r.id for r in registry.pending_requests()] == [second.id]
    finally:
        other.close()
    registry.deny(second.id, "Not this time.")
    assert registry.pending_requests() == []
    third, _ = registry.submit(world.raw_request(), source="owner")
    world.clock.advance(15 * 86400)
    assert [r.id for r in registry.pending_requests()] == [third.id]
    assert registry.sweep() == [third.id]
    assert registry.pending_requests() == []
