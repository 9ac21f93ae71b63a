"""Invitations to the requester portal: single use, expiring, stored as a token hash.

A mixin of :class:`doorbell.exports.registry.ExportRegistry`. The owner creates one per
person they expect a request from and hands the link over; the token is shown once.
"""

from __future__ import annotations

from dataclasses import dataclass

from doorbell.errors import NotPermitted, RequestError
from doorbell.exports.core import RegistryCore
from doorbell.exports.model import clean_text, new_token, token_hash


@dataclass(frozen=True)
class Invitation:
    id: str
    label: str
    created_at: float
    expires_at: float
    used_by: str | None
    revoked: bool


class InvitationsMixin(RegistryCore):
    """Create, check, list and revoke invitations (the registry's db, lock and audit log)."""

    # --- invitations ---------------------------------------------------------------------------

    def create_invitation(
        self, label: str, *, expires_in_s: float | None = None
    ) -> tuple[Invitation, str]:
        """A single-use invitation; returns it and its token (shown once, stored hashed)."""
        problems: list[str] = []
        label = clean_text(label, "label", problems, required=False)
        if problems:
            raise RequestError("; ".join(problems))
        lifetime = (
            expires_in_s
            if expires_in_s is not None
            else (self.config.invitation_expiry_days * 86400)
        )
        if not 60 <= lifetime <= 90 * 86400:
            raise RequestError("invitation lifetime: between one minute and 90 days")
        token = new_token()
        now = self._clock()
        invitation = Invitation(
            f"inv-{new_token()[:12].lower()}", label, now, now + lifetime, None, False
        )
        with self._transaction() as db:
            db.execute(
                "INSERT INTO export_invitations (id, access_hash, label, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (invitation.id, token_hash(token), label, now, invitation.expires_at),
            )
        self._audit.append(
            "owner",
            "export.invitation_created",
            f"invitation/{invitation.id}",
            {"label": label, "expires_at": invitation.expires_at},
        )
        return invitation, token

    def invitation_for(self, token: str) -> Invitation:
        """The usable invitation of ``token``; raises :class:`NotPermitted` otherwise
        (unknown, used, revoked or expired: the caller shows the same page for all)."""
        digest = token_hash(token)
        with self._lock:
            row = (
                None
                if digest is None
                else self._db.execute(
                    "SELECT * FROM export_invitations WHERE access_hash = ?", (digest,)
                ).fetchone()
            )
        if row is None:
            raise NotPermitted("unknown invitation")
        invitation = Invitation(
            row["id"],
            row["label"],
            row["created_at"],
            row["expires_at"],
            row["used_by"],
            bool(row["revoked"]),
        )
        if invitation.used_by or invitation.revoked or invitation.expires_at <= self._clock():
            raise NotPermitted("this invitation is used, revoked or expired")
        return invitation

    def invitations(self) -> list[Invitation]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM export_invitations ORDER BY created_at DESC")
            return [
                Invitation(
                    r["id"],
                    r["label"],
                    r["created_at"],
                    r["expires_at"],
                    r["used_by"],
                    bool(r["revoked"]),
                )
                for r in rows
            ]

    def revoke_invitation(self, invitation_id: str) -> None:
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE export_invitations SET revoked = 1 WHERE id = ? AND used_by IS NULL",
                (invitation_id,),
            ).rowcount
        if changed != 1:
            raise RequestError(f"invitation {invitation_id}: unknown or already used")
        self._audit.append("owner", "export.invitation_revoked", f"invitation/{invitation_id}")
