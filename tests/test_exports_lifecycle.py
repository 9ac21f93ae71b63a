"""The export request and bundle lifecycles, alone: the one transition table."""

from __future__ import annotations

import pytest

from doorbell.errors import RequestError
from doorbell.exports.lifecycle import (
    BUNDLE_TRANSITIONS,
    REQUEST_TRANSITIONS,
    BundleState,
    RequestStatus,
    bundle_sources,
    can_move,
    check_move,
    is_final,
    sources,
    sql_in,
)

S = RequestStatus


def test_every_state_has_a_row() -> None:
    assert set(REQUEST_TRANSITIONS) == set(RequestStatus)
    assert set(BUNDLE_TRANSITIONS) == set(BundleState)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (S.PENDING, S.APPROVED),
        (S.PENDING, S.DENIED),
        (S.PENDING, S.EXPIRED),
        (S.APPROVED, S.DELIVERED),
        (S.DELIVERED, S.DELIVERED),
        (S.APPROVED, S.CLOSED),
        (S.DELIVERED, S.CLOSED),
    ],
)
def test_allowed_moves(old: RequestStatus, new: RequestStatus) -> None:
    assert can_move(old, new)
    check_move(old, new, "req-000000000000")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (S.DENIED, S.APPROVED),  # a denial is final
        (S.EXPIRED, S.APPROVED),
        (S.CLOSED, S.DELIVERED),  # a deleted bundle is never downloaded again
        (S.APPROVED, S.PENDING),
        (S.PENDING, S.DELIVERED),  # nothing leaves without approval
        (S.PENDING, S.CLOSED),
        (S.APPROVED, S.DENIED),
    ],
)
def test_refused_moves(old: RequestStatus, new: RequestStatus) -> None:
    assert not can_move(old, new)
    with pytest.raises(RequestError, match=f"cannot go from {old} to {new}"):
        check_move(old, new, "req-000000000000")


def test_sources_are_read_from_the_table() -> None:
    assert sources(S.APPROVED) == ("pending",)
    assert sources(S.DELIVERED) == ("approved", "delivered")
    assert sources(S.CLOSED) == ("approved", "delivered")
    assert sources(S.PENDING) == ()
    assert bundle_sources(BundleState.READY) == ("building",)
    assert bundle_sources(BundleState.DELETED) == ("building", "failed", "ready")
    assert sql_in(sources(S.CLOSED)) == "('approved', 'delivered')"
    with pytest.raises(ValueError, match="not a list of states"):
        sql_in(("x'); DROP TABLE export_requests; --",))


def test_final_states() -> None:
    assert {s for s in RequestStatus if is_final(s)} == {S.DENIED, S.EXPIRED, S.CLOSED}
