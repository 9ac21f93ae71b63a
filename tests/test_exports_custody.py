"""Chain of custody (issue 16): attacks on approval and on bundles, each reproduced.

Every test here reproduces an attack from the issue; each failed before its fix.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from doorbell.age.identities import X25519Identity
from doorbell.audit.entries import decode_entry
from doorbell.errors import RequestError
from doorbell.exports.service import approve_and_build
from tests.exports_helpers import World, make_world


@pytest.fixture
def world(data_dir: Path) -> Iterator[World]:
    yield from make_world(data_dir)


def _edit_row(world: World, request_id: str, column: str, value: object) -> None:
    """What anyone with write access to the registry's database file can do."""
    path = world.data_dir / "index.sqlite3"
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
    ],
)
def test_approval_refuses_a_row_edited_after_submission(
    world: World, column: str, value: object
) -> None:
    request, _token = world.registry.submit(world.raw_request(), source="owner")
    _edit_row(world, request.id, column, value)
    named = column.removesuffix("_start")
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
    approve(world.registry, world.store, request.id, clip_ids=world.clip_ids[:1])
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
