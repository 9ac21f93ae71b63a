"""Delivering bundles: ready/failed/deleted states, counted downloads, expiry sweeps.

A part of :class:`doorbell.exports.registry.ExportRegistry` (same tables and lock, through
:class:`doorbell.exports.core.RegistryCore`), split out so each module reads top to
bottom. Every step is an audit entry about the request: downloads (actor
``requester:<id>``, or ``owner`` for self-exports), refusals of a known request's token
(why), deletions (``system`` on expiry or a used-up limit).
"""

from __future__ import annotations

import contextlib
from typing import BinaryIO

from doorbell.errors import NotPermitted
from doorbell.exports.core import ExportRequest, RegistryCore
from doorbell.exports.lifecycle import (
    DOWNLOADABLE,
    BundleState,
    RequestStatus,
    bundle_sources,
    sources,
    sql_in,
)
from doorbell.fsutil import fsync_dir


class DeliveryMixin(RegistryCore):
    """Bundle states, downloads and expiry (transitions from :mod:`.lifecycle`)."""

    # --- bundles ---------------------------------------------------------------------------

    def bundle_ready(
        self, request_id: str, *, size: int, sha256: str, manifest_sha256: str
    ) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE export_requests SET bundle_state = 'ready', bundle_bytes = ?,"  # noqa: S608 - states from the lifecycle table
                " bundle_sha256 = ?, manifest_sha256 = ?"
                f" WHERE id = ? AND bundle_state IN {sql_in(bundle_sources(BundleState.READY))}",
                (size, sha256, manifest_sha256, request_id),
            )
        details = {"size": size, "sha256": sha256, "manifest_sha256": manifest_sha256}
        self.record("system", "export.bundle_ready", request_id, details)

    def bundle_failed(self, request_id: str, error: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE export_requests SET bundle_state = 'failed', bundle_error = ?"  # noqa: S608 - states from the lifecycle table
                f" WHERE id = ? AND bundle_state IN {sql_in(bundle_sources(BundleState.FAILED))}",
                (error[:500], request_id),
            )
        self.record("system", "export.bundle_failed", request_id, {"error": error[:500]})

    def delete_bundle(self, request_id: str, *, reason: str, actor: str = "system") -> bool:
        """Delete the bundle file (if any) and close the request; audited. False if closed."""
        path = self.bundle_path(request_id)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            fsync_dir(path.parent)
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE export_requests SET bundle_state = 'deleted', status = 'closed',"  # noqa: S608 - states from the lifecycle table
                " closed_at = ? WHERE id = ?"
                f" AND status IN {sql_in(sources(RequestStatus.CLOSED))}",
                (self._clock(), request_id),
            ).rowcount
        if changed:
            self.record(actor, "export.bundle_deleted", request_id, {"reason": reason})
        return bool(changed)

    def revoke_bundle(self, request_id: str) -> bool:
        """The owner takes an approval back: close the request with bundle state
        ``revoked`` (the requester's status page says so), then delete the bundle file;
        audited as ``export.bundle_revoked``. False (nothing changed) while the bundle is
        still being built or once the request is closed. A download already streaming
        finishes from its open handle; no new one starts."""
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE export_requests SET bundle_state = 'revoked', status = 'closed',"  # noqa: S608 - states from the lifecycle table
                " closed_at = ? WHERE id = ?"
                f" AND status IN {sql_in(sources(RequestStatus.CLOSED))}"
                f" AND bundle_state IN {sql_in(bundle_sources(BundleState.REVOKED))}",
                (self._clock(), request_id),
            ).rowcount
        if not changed:
            return False
        path = self.bundle_path(request_id)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            fsync_dir(path.parent)
        self.record("owner", "export.bundle_revoked", request_id, {"deleted": True})
        return True

    def open_download(self, token: str, *, client: str = "") -> tuple[ExportRequest, BinaryIO]:
        """Count one download for the holder of ``token`` and open the bundle for reading.

        Refused (:class:`NotPermitted`) for an unknown token, an undecided/denied/expired
        request, a bundle not ready, past its expiry or over its limit; refusals for a known
        request are audited. The last allowed download deletes the file (the open handle
        still reads it). Every download is audited.
        """
        self.sweep()
        request = self.by_token(token)
        return self._claim(request, actor=request.actor, client=client)

    def open_owner_download(self, request_id: str) -> tuple[ExportRequest, BinaryIO]:
        """The owner's download of their own self-export (counted and audited the same)."""
        self.sweep()
        request = self.get(request_id)
        if request.source != "self":
            raise NotPermitted("only the owner's own exports download from the owner's pages")
        return self._claim(request, actor="owner", client="")

    def _claim(
        self, request: ExportRequest, *, actor: str, client: str
    ) -> tuple[ExportRequest, BinaryIO]:
        now = self._clock()
        problem = ""
        if request.status not in DOWNLOADABLE:
            problem = f"request is {request.status}"
        elif request.bundle_state != BundleState.READY:
            problem = f"bundle is {request.bundle_state}"
        elif request.bundle_expires_at is not None and request.bundle_expires_at <= now:
            problem = "bundle expired"
        elif request.downloads >= request.download_limit:
            problem = "download limit reached"
        handle: BinaryIO | None = None
        if not problem:
            with self._transaction() as db:
                changed = db.execute(
                    "UPDATE export_requests SET downloads = downloads + 1, status = 'delivered'"  # noqa: S608 - states from the lifecycle table
                    " WHERE id = ? AND downloads < download_limit AND bundle_state = 'ready'"
                    f" AND status IN {sql_in(sources(RequestStatus.DELIVERED))}",
                    (request.id,),
                ).rowcount
                if changed == 1:
                    try:
                        handle = open(self.bundle_path(request.id), "rb")  # noqa: SIM115
                    except FileNotFoundError:
                        db.execute(
                            "UPDATE export_requests SET downloads = downloads - 1 WHERE id = ?",
                            (request.id,),
                        )
                        problem = "bundle file is missing"
                else:
                    problem = "download limit reached"
        if problem or handle is None:
            self.record(
                actor, "export.download_refused", request.id, {"reason": problem, "client": client}
            )
            raise NotPermitted(f"download refused: {problem}")
        claimed = self.get(request.id)
        self.record(
            actor,
            "export.downloaded",
            request.id,
            {
                "download": claimed.downloads,
                "limit": claimed.download_limit,
                "client": client,
                "bundle_sha256": claimed.bundle_sha256,
            },
        )
        if claimed.downloads >= claimed.download_limit:
            self.delete_bundle(request.id, reason="download limit reached")
        return claimed, handle

    # --- expiry ----------------------------------------------------------------------------

    def sweep(self) -> list[str]:
        """Expire undecided requests past their decision time (as a denial) and delete
        bundles past their expiry. Returns the ids touched. Cheap when nothing is due."""
        now = self._clock()
        touched: list[str] = []
        with self._lock:
            overdue = [
                r[0]
                for r in self._db.execute(
                    "SELECT id FROM export_requests WHERE status = 'pending' AND decide_by <= ?",
                    (now,),
                )
            ]
            stale = [
                r[0]
                for r in self._db.execute(
                    "SELECT id FROM export_requests"  # noqa: S608 - states from the lifecycle table
                    f" WHERE status IN {sql_in(sources(RequestStatus.CLOSED))}"
                    " AND bundle_expires_at <= ?",
                    (now,),
                )
            ]
        for request_id in overdue:
            with self._transaction() as db:
                changed = db.execute(
                    "UPDATE export_requests SET status = 'expired', decision = 'expired',"  # noqa: S608 - states from the lifecycle table
                    " decided_at = ? WHERE id = ?"
                    f" AND status IN {sql_in(sources(RequestStatus.EXPIRED))}",
                    (now, request_id),
                ).rowcount
            if changed:
                self.record(
                    "system",
                    "export.request_expired",
                    request_id,
                    {"reason": "not decided in time"},
                )
                touched.append(request_id)
        for request_id in stale:
            if self.delete_bundle(request_id, reason="bundle expired"):
                touched.append(request_id)
        return touched
