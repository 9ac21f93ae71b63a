"""The lifecycle of an export request and of its bundle: two enums, one transition table.

Pure, like :mod:`doorbell.recorder.clipstate`: no I/O. The registry's guarded ``UPDATE``
statements take their ``WHERE status IN (...)`` from :func:`sources` here, so the table is
the only place the rules are written down::

    pending --approve--> approved --first download--> delivered --more--> delivered
       |  \\--deny-----> denied                            |
       \\----time-----> expired (as a denial)               v
    approved/delivered --bundle expiry, limit used up, deletion--> closed

    bundle: none --approve--> building --> ready | failed;  building/ready/failed --> deleted
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from doorbell.errors import RequestError


class RequestStatus(StrEnum):
    """Where a request is (the value is what the registry stores)."""

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    DELIVERED = "delivered"
    CLOSED = "closed"


class BundleState(StrEnum):
    """The bundle file of a request."""

    NONE = "none"
    BUILDING = "building"
    READY = "ready"
    FAILED = "failed"
    DELETED = "deleted"
    #: the owner took the approval back (the requester's status page says so)
    REVOKED = "revoked"


#: Every allowed move of a request; anything else is refused.
REQUEST_TRANSITIONS: Mapping[RequestStatus, frozenset[RequestStatus]] = {
    RequestStatus.PENDING: frozenset(
        {RequestStatus.APPROVED, RequestStatus.DENIED, RequestStatus.EXPIRED}
    ),
    RequestStatus.APPROVED: frozenset({RequestStatus.DELIVERED, RequestStatus.CLOSED}),
    RequestStatus.DELIVERED: frozenset({RequestStatus.DELIVERED, RequestStatus.CLOSED}),
    RequestStatus.DENIED: frozenset(),
    RequestStatus.EXPIRED: frozenset(),
    RequestStatus.CLOSED: frozenset(),
}

#: Every allowed move of a bundle.
BUNDLE_TRANSITIONS: Mapping[BundleState, frozenset[BundleState]] = {
    BundleState.NONE: frozenset({BundleState.BUILDING}),
    BundleState.BUILDING: frozenset({BundleState.READY, BundleState.FAILED, BundleState.DELETED}),
    BundleState.READY: frozenset({BundleState.DELETED, BundleState.REVOKED}),
    BundleState.FAILED: frozenset({BundleState.DELETED, BundleState.REVOKED}),
    BundleState.DELETED: frozenset(),
    BundleState.REVOKED: frozenset(),
}

#: Statuses in which the requester may still download (the bundle exists for them).
DOWNLOADABLE = frozenset({RequestStatus.APPROVED, RequestStatus.DELIVERED})


def can_move(old: RequestStatus, new: RequestStatus) -> bool:
    """Whether a request may go from ``old`` to ``new``."""
    return new in REQUEST_TRANSITIONS[old]


def check_move(old: RequestStatus, new: RequestStatus, request_id: str) -> None:
    """Raise :class:`RequestError` unless a request may go from ``old`` to ``new``."""
    if not can_move(old, new):
        raise RequestError(f"request {request_id}: cannot go from {old} to {new}")


def sources(new: RequestStatus) -> tuple[str, ...]:
    """The statuses a request may move to ``new`` from, sorted (for SQL ``IN``)."""
    return tuple(
        sorted(old.value for old, targets in REQUEST_TRANSITIONS.items() if new in targets)
    )


def bundle_sources(new: BundleState) -> tuple[str, ...]:
    """The bundle states a bundle may move to ``new`` from, sorted."""
    return tuple(sorted(old.value for old, targets in BUNDLE_TRANSITIONS.items() if new in targets))


def sql_in(values: tuple[str, ...]) -> str:
    """``('a', 'b')`` for an SQL ``IN``: only ever enum values (fixed, no user input)."""
    if not values or not all(v.isidentifier() for v in values):
        raise ValueError(f"not a list of states: {values!r}")
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def is_final(status: RequestStatus) -> bool:
    """A request that can no longer change."""
    return not REQUEST_TRANSITIONS[status]
