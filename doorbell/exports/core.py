"""What every part of the export registry shares: the connection, the audit log, the clock,
a request's row, and the few reads everything needs.

:class:`RegistryCore` is the base of :class:`doorbell.exports.registry.ExportRegistry` and of
its parts (:class:`doorbell.exports.delivery.DeliveryMixin`,
:class:`doorbell.exports.invitations.InvitationsMixin`), so each part sees, typed, exactly
what it uses, and no part imports the registry that assembles them.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from doorbell.age.identities import Identity
from doorbell.config import ExportsConfig
from doorbell.datadir import DataDir
from doorbell.errors import NotPermitted, RequestError
from doorbell.exports.lifecycle import BundleState, RequestStatus
from doorbell.exports.model import RequestFields, is_request_id, token_hash
from doorbell.sqlite import LockedConnection

#: Bundles live in ``<data_dir>/exports/`` (ciphertext only).


class AuditAppender(Protocol):
    """What the registry needs of :class:`doorbell.audit.log.AuditLog`."""

    def append(
        self, actor: str, action: str, object: str = "", details: dict[str, Any] | None = None
    ) -> int: ...

    def entries(self, start: int = 0) -> Any: ...


@dataclass(frozen=True)
class ExportRequest:
    """One row of ``export_requests`` (times: UTC epoch seconds)."""

    id: str
    created_at: float
    source: str
    invitation_id: str | None
    status: RequestStatus
    decision: str | None
    fields: RequestFields
    decide_by: float
    decided_at: float | None
    deny_reason: str
    clip_ids: tuple[str, ...]
    redaction: dict[str, Any] | None
    bundle_expires_at: float | None
    download_limit: int
    downloads: int
    bundle_state: BundleState
    bundle_error: str
    bundle_bytes: int
    bundle_sha256: str | None
    manifest_sha256: str | None

    @property
    def actor(self) -> str:
        """The audit actor standing for this request's requester."""
        return f"requester:{self.id}"


def _request_from_row(row: sqlite3.Row) -> ExportRequest:
    fields = RequestFields(
        requester=row["requester"],
        organisation=row["organisation"],
        contact=row["contact"],
        kind=row["kind"],
        legal_basis=row["legal_basis"],
        legal_reference=row["legal_reference"],
        window_start=row["window_start"],
        window_end=row["window_end"],
        reason=row["reason"],
        delivery=row["delivery"],
        recipient=row["recipient"],
    )
    return ExportRequest(
        id=row["id"],
        created_at=row["created_at"],
        source=row["source"],
        invitation_id=row["invitation_id"],
        status=RequestStatus(row["status"]),
        decision=row["decision"],
        fields=fields,
        decide_by=row["decide_by"],
        decided_at=row["decided_at"],
        deny_reason=row["deny_reason"],
        clip_ids=tuple(json.loads(row["clip_ids"])),
        redaction=json.loads(row["redaction"]) if row["redaction"] else None,
        bundle_expires_at=row["bundle_expires_at"],
        download_limit=row["download_limit"],
        downloads=row["downloads"],
        bundle_state=BundleState(row["bundle_state"]),
        bundle_error=row["bundle_error"],
        bundle_bytes=row["bundle_bytes"],
        bundle_sha256=row["bundle_sha256"],
        manifest_sha256=row["manifest_sha256"],
    )


class RegistryCore(LockedConnection):
    """The registry's shared state and reads (see the module docstring)."""

    def __init__(
        self,
        data_dir: Path,
        connection: sqlite3.Connection,
        audit: AuditAppender,
        clock: Callable[[], float],
        config: ExportsConfig,
    ) -> None:
        self.data_dir = data_dir
        self._db = connection
        self._audit = audit
        self._clock = clock
        self.config = config
        self._lock = threading.RLock()
        #: write transactions of this object: with ``PRAGMA data_version`` (commits of other
        #: connections), what tells a cached read that the registry may have changed
        self._writes = 0
        self._pending_cache: tuple[tuple[int, int], tuple[ExportRequest, ...]] | None = None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (as :class:`LockedConnection`), counted in ``_writes``."""
        with self._lock:
            try:
                with super()._transaction() as connection:
                    yield connection
            finally:
                self._writes += 1

    def _version(self) -> tuple[int, int]:
        """Changes if anything may have been written since (lock held)."""
        version = int(self._db.execute("PRAGMA data_version").fetchone()[0])
        return version, self._writes

    @property
    def audit_log(self) -> Any:
        """The audit log this registry appends to (read for the signed record)."""
        return self._audit

    def record(
        self, actor: str, action: str, request_id: str, details: dict[str, Any] | None = None
    ) -> int:
        """Append an audit entry about ``request_id`` and remember its index for the bundle."""
        index = self._audit.append(actor, action, f"request/{request_id}", details or {})
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO export_audit VALUES (?, ?)", (request_id, index))
        return index

    def audit_indexes(self, request_id: str) -> list[int]:
        """Audit entry indexes recorded about ``request_id``, ascending."""
        with self._lock:
            rows = self._db.execute(
                "SELECT idx FROM export_audit WHERE request_id = ? ORDER BY idx", (request_id,)
            )
            return [r[0] for r in rows]

    def get(self, request_id: str) -> ExportRequest:
        """The request with this id; raises :class:`RequestError` if there is none."""
        with self._lock:
            row = (
                None
                if not is_request_id(request_id)
                else self._db.execute(
                    "SELECT * FROM export_requests WHERE id = ?", (request_id,)
                ).fetchone()
            )
        if row is None:
            raise RequestError(f"request {request_id!r}: no such request")
        return _request_from_row(row)

    def by_token(self, token: str) -> ExportRequest:
        """The request whose requester holds ``token``; :class:`NotPermitted` otherwise."""
        digest = token_hash(token)
        with self._lock:
            row = (
                None
                if digest is None
                else self._db.execute(
                    "SELECT * FROM export_requests WHERE access_hash = ? AND source != 'self'",
                    (digest,),
                ).fetchone()
            )
        if row is None:
            raise NotPermitted("unknown request link")
        return _request_from_row(row)

    def status_token(self, request_id: str, identity: Identity) -> str | None:
        """The requester's status token of ``request_id``, decrypted in memory from the
        owner's copy (:mod:`doorbell.exports.tokencopy`) with the unlocked owner's
        ``identity``; None when no copy was kept (a request stored before copies were, or
        one submitted before ``doorbell init``; never for the owner's own exports).

        Raises :class:`RequestError` for an unknown request or a copy that is not this
        request's token (the database was edited: a swapped copy would send a requester
        someone else's link), and :class:`~doorbell.errors.AgeError` when ``identity`` does
        not open it.
        """
        from doorbell.exports.tokencopy import open_token

        with self._lock:
            row = (
                None
                if not is_request_id(request_id)
                else self._db.execute(
                    "SELECT access_hash, status_token_age FROM export_requests WHERE id = ?",
                    (request_id,),
                ).fetchone()
            )
        if row is None:
            raise RequestError(f"request {request_id!r}: no such request")
        if row["status_token_age"] is None:
            return None
        token = open_token(bytes(row["status_token_age"]), identity)
        if token_hash(token) is None or token_hash(token) != row["access_hash"]:
            raise RequestError(
                f"request {request_id}: the stored copy of the requester's link is not this "
                "request's link; someone edited the export registry. Do not hand it out"
            )
        return token

    def bundle_path(self, request_id: str) -> Path:
        """``<data_dir>/exports/<request>.tar.age`` (ciphertext only)."""
        if not is_request_id(request_id):
            raise RequestError(f"request {request_id!r}: not a request id")
        return DataDir(self.data_dir).exports / f"{request_id}.tar.age"
