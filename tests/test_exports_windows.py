"""Request windows are bounded to 1970..now on input and in every reader (issue 17, item
assigned to issue 16): a window in year 1 used to be accepted, and then crashed the owner's
review page and `doorbell requests show`, so the owner could not even deny it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from exports_helpers import NOW, WallClock, World, make_world
from ui_helpers import Clock, FakeVault, csrf_from, prepare_data_dir, ui_config
from ui_helpers import unlock as unlock_owner

from doorbell.age.identities import X25519Identity
from doorbell.cli import cli
from doorbell.exports.model import RequestInvalid
from doorbell.ui import close_app, create_app


@pytest.fixture
def world(data_dir: Path) -> Iterator[World]:
    yield from make_world(data_dir)


@pytest.fixture
def site(data_dir: Path) -> Iterator[dict[str, Any]]:
    vault = FakeVault()
    prepare_data_dir(data_dir, vault)
    (data_dir / "keys" / "owner.recipients").write_text(f"{vault.identity.recipient}\n")
    app = create_app(ui_config(data_dir), vault=vault, clock=Clock(), wall_clock=WallClock(NOW))
    owner = app.test_client()
    unlock_owner(owner)
    yield {"app": app, "owner": owner, "data_dir": data_dir}
    close_app(app)


def _raw(**changes: str) -> dict[str, object]:
    raw: dict[str, object] = {
        "requester": "PC Jane Smith",
        "organisation": "Example Police",
        "contact": "jane@police.example",
        "kind": "police",
        "legal_basis": "voluntary",
        "legal_reference": "",
        "window_start": "2026-01-01T00:00",
        "window_end": "2026-01-01T01:00",
        "reason": "Burglary at number 12 that night.",
        "delivery": "recipient",
        "recipient": str(X25519Identity.generate().recipient),
    }
    raw.update(changes)
    return raw


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("0001-01-01T00:00", "0001-01-01T01:00"),
        ("1969-12-31T23:00", "1970-01-01T00:30"),
        ("2025-12-31T23:00", "2099-01-01T00:00"),  # ends in the future
        (-1e12, -1e12 + 60),
        (1e300, 1e300 + 60),
    ],
)
def test_windows_outside_1970_to_now_are_refused_on_input(
    world: World, start: object, end: object
) -> None:
    with pytest.raises(RequestInvalid, match="window"):
        world.registry.submit(_raw(window_start=start, window_end=end), source="owner")  # type: ignore[arg-type]


#: Stored windows from before the bound (or edited rows): year 1 (crashes datetime on a
#: 32-bit Pi), and one ending in a year no datetime can hold (crashes everywhere).
STORED = [(-62135596800.0, -62135593200.0), (0.0, 1e18)]


def _stored(data_dir: Path, request_id: str, window: tuple[float, float]) -> None:
    with sqlite3.connect(data_dir / "exports.sqlite3") as db:
        db.execute(
            "UPDATE export_requests SET window_start = ?, window_end = ? WHERE id = ?",
            (*window, request_id),
        )


@pytest.mark.parametrize("window", STORED)
def test_owner_can_review_and_deny_a_stored_absurd_window(
    site: dict[str, Any], window: tuple[float, float]
) -> None:
    registry = site["app"].extensions["doorbell_exports"].registry
    request, _token = registry.submit(_raw(), source="owner")
    _stored(site["data_dir"], request.id, window)
    page = site["owner"].get(f"/exports/{request.id}")
    assert page.status_code == 200, page.text[:500]
    assert "outside 1970" in page.text
    listing = site["owner"].get("/exports")
    assert listing.status_code == 200
    denied = site["owner"].post(
        f"/exports/{request.id}/deny",
        data={"csrf_token": csrf_from(page.data), "reason": "window makes no sense"},
    )
    assert denied.status_code in (200, 302, 303)
    assert registry.get(request.id).status == "denied"


@pytest.mark.parametrize("window", STORED)
def test_requests_show_survives_a_stored_absurd_window(
    world: World, window: tuple[float, float]
) -> None:
    request, _token = world.registry.submit(_raw(), source="owner")
    _stored(world.data_dir, request.id, window)
    result = CliRunner().invoke(
        cli, ["requests", "show", "--data-dir", str(world.data_dir), request.id]
    )
    assert result.exit_code == 0, result.output
    assert "outside 1970" in result.output
