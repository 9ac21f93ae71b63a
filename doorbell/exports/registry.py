"""The export requests of a data dir: tables, lifecycle transitions, each one audited.

Tables (in ``exports.sqlite3``, the registry's own database file, created here with
``CREATE TABLE IF NOT EXISTS``; an older ``index.sqlite3``'s export tables are moved in on
first open): ``export_requests``, ``export_invitations``,
``export_settings`` (the open-form and public-transparency switches) and ``export_audit``
(which audit entry indexes belong to which request, so a bundle can carry them). A
requester's access token is stored only as its hash (``access_hash``) and encrypted to the
owner (``status_token_age``: :mod:`doorbell.exports.tokencopy`), never in plaintext.

Every transition is one audit entry whose ``object`` is ``request/<id>``, by actor
``owner``, ``requester:<id>`` or ``system``. A transition is a guarded ``UPDATE ... WHERE
status = ...`` in one transaction, so two processes (web and CLI) cannot both decide the same
request. The clock (UTC epoch seconds) is injected.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doorbell.config import ExportsConfig
from doorbell.datadir import EXPORTS_INDEX_FILE, INDEX_FILE, DataDir
from doorbell.errors import NotPermitted, RequestError, StorageError
from doorbell.exports.core import AuditAppender, ExportRequest, _request_from_row
from doorbell.exports.delivery import DeliveryMixin
from doorbell.exports.invitations import Invitation, InvitationsMixin
from doorbell.exports.lifecycle import RequestStatus, sources, sql_in
from doorbell.exports.model import (
    LIMITS,
    SUBMITTED_ACTION,
    RequestFields,
    RequestInvalid,
    clean_text,
    field_values,
    fields_from_submission,
    new_request_id,
    new_token,
    submission_details,
    submission_differences,
    token_hash,
    validate_request,
)
from doorbell.exports.tokencopy import owner_copy

if TYPE_CHECKING:  # types only
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

#: The export registry's own database file (owned by the web service's user; the recorder
#: sees it read-only). Approval reads it, so nothing the recorder writes is in it.
DATABASE_NAME = EXPORTS_INDEX_FILE
#: Where the export tables lived before: moved out on first open (:func:`_migrate_from_index`).
INDEX_NAME = INDEX_FILE
_TABLES = ("export_requests", "export_invitations", "export_settings", "export_audit")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS export_requests (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    source TEXT NOT NULL,
    invitation_id TEXT,
    status TEXT NOT NULL,
    decision TEXT,
    requester TEXT NOT NULL, organisation TEXT NOT NULL, contact TEXT NOT NULL,
    kind TEXT NOT NULL, legal_basis TEXT NOT NULL, legal_reference TEXT NOT NULL,
    window_start REAL NOT NULL, window_end REAL NOT NULL, reason TEXT NOT NULL,
    delivery TEXT NOT NULL, recipient TEXT,
    access_hash TEXT UNIQUE,
    decide_by REAL NOT NULL,
    decided_at REAL,
    deny_reason TEXT NOT NULL DEFAULT '',
    clip_ids TEXT NOT NULL DEFAULT '[]',
    redaction TEXT,
    bundle_expires_at REAL,
    download_limit INTEGER NOT NULL DEFAULT 0,
    downloads INTEGER NOT NULL DEFAULT 0,
    bundle_state TEXT NOT NULL DEFAULT 'none',
    bundle_error TEXT NOT NULL DEFAULT '',
    bundle_bytes INTEGER NOT NULL DEFAULT 0,
    bundle_sha256 TEXT,
    manifest_sha256 TEXT,
    closed_at REAL,
    status_token_age BLOB
);
CREATE INDEX IF NOT EXISTS export_requests_status ON export_requests (status);
CREATE TABLE IF NOT EXISTS export_invitations (
    id TEXT PRIMARY KEY,
    access_hash TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    used_by TEXT,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS export_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS export_audit (
    request_id TEXT NOT NULL, idx INTEGER NOT NULL, PRIMARY KEY (request_id, idx));
CREATE TABLE IF NOT EXISTS export_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
#: Columns added after a table was first created: (table, column, declaration). A database
#: made before gets them on open (:func:`_add_columns`); its old rows hold NULL there.
_ADDED_COLUMNS = (
    # the requester's status token, age-encrypted to the owner (doorbell.exports.tokencopy)
    ("export_requests", "status_token_age", "BLOB"),
)


def _missing_columns(db: sqlite3.Connection) -> list[tuple[str, str, str]]:
    missing = []
    for table, column, declaration in _ADDED_COLUMNS:
        present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            missing.append((table, column, declaration))
    return missing


def _add_columns(db: sqlite3.Connection) -> None:
    """Add the columns of :data:`_ADDED_COLUMNS` an older database lacks, in one write
    transaction, taken only when one is missing (a second process opening at the same
    time finds them added: the check is repeated inside it)."""
    if not _missing_columns(db):
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        for table, column, declaration in _missing_columns(db):
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _migrate_from_index(db: sqlite3.Connection, index_path: Path) -> None:
    """Move the export tables of an older ``index.sqlite3`` into this database, once.

    Runs in one transaction on this database and is marked done (``export_meta``
    ``migrated_from_index``), so it never runs again, whatever the index holds later; then
    the old tables are dropped from the index. The rows copied are still only a cache:
    approval checks each against its signed submission entry.
    """
    done = db.execute("SELECT value FROM export_meta WHERE key = 'migrated_from_index'")
    if done.fetchone() is not None:
        return
    old: dict[str, tuple[list[str], list[tuple[object, ...]]]] = {}
    if index_path.exists():
        with contextlib.closing(sqlite3.connect(f"file:{index_path}?mode=ro", uri=True)) as index:
            present = {
                row[0] for row in index.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            for table in _TABLES:
                if table in present:
                    cursor = index.execute(f"SELECT * FROM {table}")  # noqa: S608 - fixed names
                    old[table] = ([d[0] for d in cursor.description], cursor.fetchall())
    copied = 0
    db.execute("BEGIN IMMEDIATE")
    try:
        for table, (columns, rows) in old.items():
            names = ", ".join(columns)
            marks = ", ".join("?" for _ in columns)
            for row in rows:
                copied += db.execute(
                    f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({marks})",  # noqa: S608
                    row,
                ).rowcount
        db.execute("INSERT INTO export_meta VALUES ('migrated_from_index', ?)", (str(copied),))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    if old:
        with contextlib.closing(sqlite3.connect(index_path, timeout=30)) as index:
            for table in _TABLES:
                index.execute(f"DROP TABLE IF EXISTS {table}")
            index.commit()


class SubmissionMismatch(RequestError):
    """A request's row differs from its signed ``export.request_submitted`` entry."""


def _check_loggable(fields: RequestFields) -> None:
    """Refuse (as a bad field) text the audit log would refuse as looking like a secret, so
    a request is never stored without its signed submission entry."""
    from doorbell.audit.entries import EntryError, check_no_secrets

    for name, value in field_values(fields).items():
        try:
            check_no_secrets({"field": value})
        except EntryError:
            raise RequestInvalid(
                f"the request is not valid: {name}: looks like key material",
                [f"{name}: looks like key material (never send secret keys)"],
            ) from None


class ExportRegistry(InvitationsMixin, DeliveryMixin):
    """Requests, invitations and switches of one data dir. Thread-safe; use :meth:`open`.

    ``audit`` is an open :class:`doorbell.audit.log.AuditLog` (or anything with ``append``).
    """

    @classmethod
    def open(
        cls,
        data_dir: str | Path,
        audit: AuditAppender,
        *,
        clock: Callable[[], float] = time.time,
        config: ExportsConfig | None = None,
    ) -> ExportRegistry:
        """Open ``<data_dir>/exports.sqlite3`` (creating its tables); raises StorageError.

        On first open, export tables of an older ``index.sqlite3`` are moved into it.
        """
        root = Path(data_dir)
        if not root.is_dir():
            raise StorageError(f"{root}: data directory does not exist; run `doorbell init` first")
        path = root / DATABASE_NAME
        try:
            db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            # A rollback journal kept in place (PERSIST), not WAL: the recorder reads this
            # file through a read-only mount, and a WAL reader must write the -shm file; and
            # the journal file is never deleted, so it stays the read-only-mounted file
            # (systemd/doorbell-recorder.service) instead of one the recorder could create.
            db.execute("PRAGMA journal_mode=PERSIST")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
            _add_columns(db)
            _migrate_from_index(db, root / INDEX_NAME)
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"{path}: cannot open the export registry: {exc}") from exc
        DataDir(root).exports.mkdir(mode=0o750, exist_ok=True)
        return cls(root, db, audit, clock, config or ExportsConfig())

    # --- switches ---------------------------------------------------------------------------

    def _setting(self, key: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT value FROM export_settings WHERE key = ?", (key,))
            found = row.fetchone()
        return found is not None and found[0] == "1"

    def _set(self, key: str, enabled: bool, action: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO export_settings VALUES (?, ?)",
                (key, "1" if enabled else "0"),
            )
        self._audit.append("owner", action, "exports", {"enabled": bool(enabled)})

    def open_form_enabled(self) -> bool:
        """Whether anyone may submit a request without an invitation (off by default)."""
        return self._setting("open_form")

    def set_open_form(self, enabled: bool) -> None:
        self._set("open_form", enabled, "export.open_form_changed")

    def transparency_public(self) -> bool:
        """Whether the counts-only transparency page is public (off by default)."""
        return self._setting("transparency_public")

    def set_transparency_public(self, enabled: bool) -> None:
        self._set("transparency_public", enabled, "export.transparency_changed")

    # --- requests in ------------------------------------------------------------------------

    def submit(
        self, raw: dict[str, object], *, source: str, invitation_token: str | None = None
    ) -> tuple[ExportRequest, str]:
        """A request from the portal (``invitation`` or ``open_form``) or the owner (``owner``).

        Returns the request and the requester's access token (status page and download;
        shown once). Raises :class:`RequestInvalid` for bad fields and :class:`NotPermitted`
        for an unusable invitation or a closed open form.
        """
        now = self._clock()
        fields = validate_request(raw, now=now, max_window_s=self.config.max_window_days * 86400)
        _check_loggable(fields)
        invitation: Invitation | None = None
        if source == "invitation":
            invitation = self.invitation_for(invitation_token or "")
        elif source == "open_form":
            if not self.open_form_enabled():
                raise NotPermitted("the open request form is switched off")
        elif source != "owner":
            raise RequestError(f"source {source!r}: use invitation, open_form or owner")
        request_id = new_request_id()
        token = new_token()
        sealed = owner_copy(self.data_dir, token)  # for the owner's request page, encrypted
        with self._transaction() as db:
            if invitation is not None:
                used = db.execute(
                    "UPDATE export_invitations SET used_by = ? WHERE id = ? AND used_by IS NULL"
                    " AND revoked = 0 AND expires_at > ?",
                    (request_id, invitation.id, now),
                ).rowcount
                if used != 1:
                    raise NotPermitted("this invitation is used, revoked or expired")
            self._insert(db, request_id, now, source, invitation, fields, token, sealed)
        actor = "owner" if source == "owner" else f"requester:{request_id}"
        self.record(
            actor,
            SUBMITTED_ACTION,
            request_id,
            submission_details(source, invitation.id if invitation else None, fields),
        )
        return self.get(request_id), token

    def _insert(
        self,
        db: sqlite3.Connection,
        request_id: str,
        now: float,
        source: str,
        invitation: Invitation | None,
        fields: RequestFields,
        token: str,
        sealed_token: bytes | None,
    ) -> None:
        db.execute(
            "INSERT INTO export_requests (id, created_at, source, invitation_id, status,"
            " requester, organisation, contact, kind, legal_basis, legal_reference,"
            " window_start, window_end, reason, delivery, recipient, access_hash, decide_by,"
            " status_token_age)"
            " VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                request_id,
                now,
                source,
                invitation.id if invitation else None,
                fields.requester,
                fields.organisation,
                fields.contact,
                fields.kind,
                fields.legal_basis,
                fields.legal_reference,
                fields.window_start,
                fields.window_end,
                fields.reason,
                fields.delivery,
                fields.recipient,
                token_hash(token),
                now + self.config.request_expiry_days * 86400,
                sealed_token,
            ),
        )

    def add_self_export(
        self,
        *,
        window_start: float,
        window_end: float,
        recipient: str,
        reason: str = "owner's own download",
    ) -> ExportRequest:
        """The owner's own download as a request (source ``self``, delivered to the owner's
        recipient). The caller approves it right away with :meth:`approve`."""
        fields = RequestFields(
            "owner",
            "",
            "owner",
            "household",
            "voluntary",
            "",
            window_start,
            window_end,
            reason,
            "recipient",
            recipient,
        )
        request_id = new_request_id()
        now = self._clock()
        with self._transaction() as db:
            self._insert(db, request_id, now, "self", None, fields, new_token(), None)
        self.record("owner", SUBMITTED_ACTION, request_id, submission_details("self", None, fields))
        return self.get(request_id)

    # --- reading ---------------------------------------------------------------------------

    def requests(
        self, *, status: str | None = None, include_self: bool = True
    ) -> list[ExportRequest]:
        """Requests, newest first, optionally of one status."""
        query = "SELECT * FROM export_requests WHERE (? IS NULL OR status = ?)"
        if not include_self:
            query += " AND source != 'self'"
        with self._lock:
            rows = self._db.execute(query + " ORDER BY created_at DESC", (status, status))
            return [_request_from_row(r) for r in rows]

    def pending_requests(self) -> list[ExportRequest]:
        """Pending requests from requesters (not the owner's own), newest first: the banner
        of every owner page. Cached until this registry writes or another connection commits
        (issue 17, load: one query per page view under the registry's lock)."""
        with self._lock:
            version = self._version()
            cached = self._pending_cache
            if cached is None or cached[0] != version:
                found = tuple(self.requests(status="pending", include_self=False))
                cached = self._pending_cache = (version, found)
            return list(cached[1])

    # --- the signed record ----------------------------------------------------------------

    def signed_request(self, request_id: str, *, refusing: str) -> ExportRequest:
        """The request, checked against its signed submission entry (found by reading the
        audit log: :func:`doorbell.exports.record.read_record`; the caller checks the log
        against the owner anchor first). The row is a cache: if it differs in any field, the
        refusal is audited (action ``refusing``, e.g. ``export.approval_refused``) and
        :class:`SubmissionMismatch` raised naming the fields."""
        from doorbell.exports.record import read_record

        stored = self.get(request_id)
        submitted = read_record(self._audit, request_id).submitted
        if submitted is None:
            raise RequestError(
                f"request {request_id}: no {SUBMITTED_ACTION} entry in the audit log, so "
                "nothing shows what was submitted; deny it"
            )
        details = submitted.details
        signed = fields_from_submission(request_id, details)
        differing = submission_differences(
            stored.fields, stored.source, signed, str(details.get("source"))
        )
        if stored.invitation_id != details.get("invitation"):
            differing.append("invitation")
        if differing:
            self.record(
                "system",
                refusing,
                request_id,
                {"reason": "row differs from the signed submission", "fields": differing},
            )
            raise SubmissionMismatch(
                f"request {request_id}: the export registry's row differs from the signed "
                f"submission in {', '.join(differing)}; someone edited the database after "
                "the request was submitted. Nothing was approved or exported: deny this "
                "request, check who can write the data dir, and ask for a new request"
            )
        return stored

    # --- decisions ---------------------------------------------------------------------------

    def approve(
        self,
        request_id: str,
        *,
        cosigning_key: Ed25519PrivateKey,
        clip_ids: list[str],
        expires_in_s: float | None = None,
        download_limit: int | None = None,
        redaction: dict[str, Any] | None = None,
        step_up: bool = True,
        include_later_footage: bool = False,
    ) -> ExportRequest:
        """Approve ``clip_ids`` (a non-empty subset of the clips in the window, checked by the
        caller against the index) for a pending request. The caller has re-checked the
        owner's passphrase (``step_up``) and then builds the bundle. ``include_later_footage``:
        the owner chose clips sealed after the request was submitted (the manifest says so).
        ``cosigning_key`` (the owner's, derived from the identity) signs the decision
        together with the request's signed submission (:mod:`.decision`): an approval entry
        without that signature counts for nothing. Raises RequestError."""
        expires_in_s = (
            expires_in_s if expires_in_s is not None else (self.config.bundle_expiry_days * 86400)
        )
        limit = download_limit if download_limit is not None else self.config.download_limit
        if not clip_ids or len(clip_ids) != len(set(clip_ids)) or len(clip_ids) > 1000:
            raise RequestError("approve: choose at least one clip (each once, at most 1000)")
        if not 60 <= expires_in_s <= 90 * 86400:
            raise RequestError("approve: the bundle must expire between 1 minute and 90 days")
        if not 1 <= limit <= 100:
            raise RequestError("approve: download limit between 1 and 100")
        from doorbell.exports.decision import SIGNATURE_FIELD, sign_decision
        from doorbell.exports.record import read_record

        submitted = read_record(self._audit, request_id).submitted
        if submitted is None:
            raise RequestError(
                f"request {request_id}: no {SUBMITTED_ACTION} entry in the audit log, so "
                "there is nothing to approve; deny it"
            )
        now = self._clock()
        details: dict[str, Any] = {
            "clips": sorted(clip_ids),
            "bundle_expires_at": now + expires_in_s,
            "download_limit": limit,
            "redaction": redaction,
            "step_up": step_up,
            "include_later_footage": include_later_footage,
        }
        details[SIGNATURE_FIELD] = sign_decision(
            cosigning_key, request_id, submitted.leaf_hash, submitted.details, details
        )
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE export_requests SET status = 'approved', decision = 'approved',"  # noqa: S608 - states from the lifecycle table
                " decided_at = ?, clip_ids = ?, redaction = ?, bundle_expires_at = ?,"
                " download_limit = ?, bundle_state = 'building' WHERE id = ?"
                f" AND status IN {sql_in(sources(RequestStatus.APPROVED))}"
                " AND decide_by > ?",
                (
                    now,
                    json.dumps(sorted(clip_ids)),
                    json.dumps(redaction) if redaction else None,
                    now + expires_in_s,
                    limit,
                    request_id,
                    now,
                ),
            ).rowcount
        if changed != 1:
            raise RequestError(f"request {request_id}: not pending (or past its decision time)")
        self.record("owner", "export.request_approved", request_id, details)
        return self.get(request_id)

    def deny(self, request_id: str, reason: str) -> ExportRequest:
        """Deny a pending request with a reason the requester will see."""
        problems: list[str] = []
        reason = clean_text(reason, "deny_reason", problems, multiline=True)
        if problems:
            raise RequestError("; ".join(problems))
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE export_requests SET status = 'denied', decision = 'denied',"  # noqa: S608 - states from the lifecycle table
                " decided_at = ?, deny_reason = ? WHERE id = ?"
                f" AND status IN {sql_in(sources(RequestStatus.DENIED))}",
                (self._clock(), reason, request_id),
            ).rowcount
        if changed != 1:
            raise RequestError(f"request {request_id}: not pending; cannot deny it")
        self.record("owner", "export.request_denied", request_id, {"reason": reason})
        return self.get(request_id)

    # --- transparency ----------------------------------------------------------------------

    def monthly_counts(self) -> list[dict[str, Any]]:
        """Requests per month (UTC) by kind, legal basis and outcome; owner's own excluded.

        Counts only: no names, contacts, reasons or references.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT strftime('%Y-%m', created_at, 'unixepoch') AS month, kind, legal_basis,"
                " COALESCE(decision, 'pending') AS outcome, COUNT(*) AS n FROM export_requests"
                " WHERE source != 'self' GROUP BY month, kind, legal_basis, outcome"
                " ORDER BY month DESC, kind, legal_basis, outcome"
            ).fetchall()
        return [dict(r) for r in rows]


__all__ = ["LIMITS", "ExportRegistry", "ExportRequest", "Invitation"]
