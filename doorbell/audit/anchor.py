"""The owner anchor: the last head the owner cosigned, sealed where only the owner can write.

Why: with ``keys/device.key`` read off the SD card, an attacker can rebuild the audit log,
re-sign every device checkpoint and delete the owner's cosignatures from ``audit.sqlite3``.
Nothing left *in the log* then says what the owner had seen. The anchor keeps that outside
the log: ``<data_dir>/owner-anchor`` holds the tree size and root hash of the last checkpoint
the owner cosigned, when, and the cosignature note, sealed with ChaCha20-Poly1305 under a key
derived from the owner identity (:func:`doorbell.keys.derive_owner_anchor_key`). Without the
owner's passphrase nobody can read it or write one that opens.

At every unlock, and in ``doorbell requests approve`` before it approves, the log must
still produce the anchored root at the anchored size (:func:`check_log`); only then does the
owner cosign and the anchor move on (:func:`owner_cosign`, shared by both paths).
Where it lives (issue 17, finding 8): ``<data_dir>/owner/owner-anchor``, a directory of its
own (mode 0700, the web user's) that the recorder's unit cannot even see
(``InaccessiblePaths=``). In the group-writable data dir itself, the recorder's user could
rename the web's file away and put an *older* copy back (no sticky bit there), rolling the
anchor back. :func:`read_anchor` checks before trusting it that the file and its directory
belong to this process's user (or root) and that neither is writable by group or others;
a data dir from before has its ``<data_dir>/owner-anchor`` read once under the same checks
and moved. What it still does not stop: root on the device; and deleting the anchor is loud
(the UI and ``doorbell audit verify --owner-check`` say so) but not prevented.
See docs/audit.md.

File format (binary): the magic line ``doorbell-owner-anchor/v1\\n``, a 12-byte random nonce,
then ChaCha20-Poly1305(key, nonce, JSON, aad = magic line) of the canonical JSON object
``{"note": str, "root": base64, "size": int, "time": float}``.

This module takes the 32-byte key as bytes and imports no secret-side code.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from doorbell.audit.note import NoteError, parse_checkpoint, parse_note
from doorbell.datadir import ANCHOR_FILE as ANCHOR_FILE
from doorbell.datadir import LEGACY_ANCHOR_FILE as LEGACY_ANCHOR_FILE
from doorbell.datadir import OWNER_DIR, DataDir
from doorbell.errors import AuditError, StorageError
from doorbell.fsutil import write_file_atomic

if TYPE_CHECKING:
    from doorbell.audit.log import AuditLog

#: The anchor and its directory (the web user's own, 0700, hidden from the recorder's unit)
#: and where data dirs made before issue 17 kept it: :mod:`doorbell.datadir`.
ANCHOR_DIR = OWNER_DIR
#: The object of the ``audit.anchor_*`` entries :func:`owner_cosign` writes.
ANCHOR_OBJECT = ANCHOR_FILE
MAGIC = b"doorbell-owner-anchor/v1\n"
#: 0600 in a 0700 directory: only the web user (and root) may read or replace it.
ANCHOR_MODE = 0o600
ANCHOR_DIR_MODE = 0o700
_NONCE_BYTES = 12
_MAX_ANCHOR_BYTES = 64 * 1024


class AnchorError(AuditError):
    """The owner anchor is unreadable, forged, or the log does not match it."""


class AnchorMissing(AnchorError):
    """There is no owner anchor in the data dir."""


@dataclass(frozen=True)
class Anchor:
    """The last head the owner cosigned: tree ``size``, ``root`` hash, ``time`` (epoch s)."""

    size: int
    root: bytes
    time: float
    note: bytes

    def to_json(self) -> bytes:
        document = {
            "note": self.note.decode("utf-8"),
            "root": base64.b64encode(self.root).decode(),
            "size": self.size,
            "time": self.time,
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def anchor_path(data_dir: Path) -> Path:
    """``<data_dir>/owner/owner-anchor``."""
    return DataDir(data_dir).owner_anchor


def _check_owner_and_mode(path: Path, info: os.stat_result, what: str) -> None:
    """Refuse ``path`` unless this process's user (or root) owns it and neither group nor
    others may write it: anything else could have been put there by another service."""
    trusted = {os.geteuid(), 0}
    if info.st_uid not in trusted:
        raise AnchorError(
            f"{path}: the {what} belongs to uid {info.st_uid}, not to this user "
            f"(uid {os.geteuid()}): another service may have replaced it; "
            "run `sudo systemd-tmpfiles --create` and unlock again to see the state of the log"
        )
    if info.st_mode & 0o022:
        raise AnchorError(
            f"{path}: the {what} is writable by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}); it must be 0700/0600"
        )


def anchor_from_cosignature(note: bytes, clock: Callable[[], float] = time.time) -> Anchor:
    """The anchor for a cosignature note returned by :meth:`AuditLog.cosign`."""
    try:
        checkpoint = parse_checkpoint(parse_note(note).text)
    except NoteError as exc:
        raise AnchorError(f"not a cosigned checkpoint: {exc}") from exc
    return Anchor(checkpoint.size, checkpoint.root_hash, clock(), note)


def seal(anchor: Anchor, key: bytes) -> bytes:
    """The file bytes of ``anchor`` sealed under ``key`` (32 bytes)."""
    nonce = os.urandom(_NONCE_BYTES)
    return MAGIC + nonce + ChaCha20Poly1305(key).encrypt(nonce, anchor.to_json(), MAGIC)


def unseal(data: bytes, key: bytes) -> Anchor:
    """Open anchor file bytes; raises :class:`AnchorError` if they are not a valid anchor
    sealed under ``key`` (wrong owner, edited, truncated, or not an anchor at all)."""
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + _NONCE_BYTES + 16:
        raise AnchorError("the owner anchor is not in the doorbell-owner-anchor/v1 format")
    nonce = data[len(MAGIC) : len(MAGIC) + _NONCE_BYTES]
    try:
        plain = ChaCha20Poly1305(key).decrypt(nonce, data[len(MAGIC) + _NONCE_BYTES :], MAGIC)
    except InvalidTag:
        raise AnchorError(
            "the owner anchor does not open with your key: it was forged, edited or "
            "belongs to another owner"
        ) from None
    try:
        document: Any = json.loads(plain)
        size, root = document["size"], base64.b64decode(document["root"], validate=True)
        when, note = float(document["time"]), document["note"].encode("utf-8")
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise AnchorError(f"the owner anchor is damaged ({exc})") from None
    if not isinstance(size, int) or size < 0 or len(root) != 32:
        raise AnchorError("the owner anchor holds a bad size or root")
    return Anchor(size, root, when, note)


def read_anchor(data_dir: Path, key: bytes) -> Anchor:
    """Read and open ``<data_dir>/owner-anchor``.

    Raises :class:`AnchorMissing` when there is none, :class:`AnchorError` when it does not
    open (see :func:`unseal`) or cannot be read.
    """
    path = anchor_path(data_dir)
    if not path.parent.exists() and not path.parent.is_symlink():
        legacy = DataDir(data_dir).legacy_owner_anchor
        if legacy.exists() or legacy.is_symlink():
            return unseal(_read_checked(legacy, check_dir=False), key)
    return unseal(_read_checked(path, check_dir=True), key)


def _read_checked(path: Path, *, check_dir: bool) -> bytes:
    """The bytes of the anchor file at ``path`` after the owner and mode checks."""
    if check_dir:
        try:
            info = os.lstat(path.parent)
        except FileNotFoundError:
            raise AnchorMissing(f"{path}: there is no owner anchor") from None
        if not stat.S_ISDIR(info.st_mode):
            raise AnchorError(f"{path.parent}: the owner anchor's directory is not a directory")
        _check_owner_and_mode(path.parent, info, "owner anchor's directory")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise AnchorMissing(f"{path}: there is no owner anchor") from None
    except OSError as exc:
        raise AnchorError(f"{path}: cannot read the owner anchor: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise AnchorError(f"{path}: the owner anchor is not a regular file")
        _check_owner_and_mode(path, info, "owner anchor")
        data = handle.read(_MAX_ANCHOR_BYTES + 1)
    if len(data) > _MAX_ANCHOR_BYTES:
        raise AnchorError(f"{path}: too large to be an owner anchor")
    return data


def write_anchor(data_dir: Path, anchor: Anchor, key: bytes) -> None:
    """Replace ``<data_dir>/owner/owner-anchor`` atomically (mode 0600; the directory is made
    0700 when missing), and remove a data dir's older ``<data_dir>/owner-anchor``.

    Raises :class:`StorageError` if the data dir is not writable.
    """
    path = anchor_path(data_dir)
    try:
        path.parent.mkdir(mode=ANCHOR_DIR_MODE, exist_ok=True)
        write_file_atomic(path, seal(anchor, key), mode=ANCHOR_MODE)
        DataDir(data_dir).legacy_owner_anchor.unlink(missing_ok=True)
    except PermissionError as exc:
        raise StorageError(f"{path}: cannot write the owner anchor: {exc.strerror}") from None


def check_log(log_size: int, root_at: Callable[[int], bytes], anchor: Anchor) -> None:
    """Raise :class:`AnchorError` unless the log (``log_size`` entries, ``root_at(n)`` its
    head at ``n``) still produces the anchored root at the anchored size."""
    if log_size < anchor.size:
        raise AnchorError(
            f"the audit log has {log_size} entries but you cosigned {anchor.size}: "
            "it was rolled back"
        )
    try:
        root = root_at(anchor.size)
    except AuditError as exc:
        raise AnchorError(f"the audit log cannot produce its head at {anchor.size}: {exc}") from exc
    if root != anchor.root:
        raise AnchorError(
            f"the audit log's first {anchor.size} entries are not the ones you cosigned: "
            "history was rewritten"
        )


@dataclass(frozen=True)
class AnchoredCosignature:
    """What :func:`cosign_anchored` did: the cosignature note and how the anchor stood."""

    note: bytes
    #: "ok" (the log matched the anchor) or "created" (first anchor of an older data dir)
    status: str


def cosign_anchored(
    log: AuditLog,
    anchor_key: bytes,
    cosigning_key: Ed25519PrivateKey,
    name: str,
    *,
    clock: Callable[[], float] = time.time,
) -> AnchoredCosignature:
    """Check the log against the owner anchor, cosign, and move the anchor on.

    ``log`` is an open :class:`doorbell.audit.log.AuditLog`. With an anchor, the log must
    produce its root at its size (:func:`check_log`) and the new checkpoint must extend it.
    Without one (a data dir made before anchors existed), the anchor is created only when
    the whole log verifies against this owner's cosigning key and the owner cosigned it
    before (the latest cosignature is then the reference) and ``keys.created`` does not say
    an anchor was made at init. Nothing is signed or written when a check fails:
    :class:`AnchorMissing` or :class:`AnchorError` says why. Raises :class:`AuditError`
    when cosigning itself is refused and :class:`StorageError` when the anchor cannot be
    written (the cosignature then stands; the next unlock retries the anchor).
    """
    from doorbell.audit.note import CosignatureSigner

    data_dir = Path(log.data_dir)
    try:
        anchor = read_anchor(data_dir, anchor_key)
    except AnchorMissing:
        vkey = CosignatureSigner(name, cosigning_key).vkey
        _check_migration(log, vkey)
        note = log.cosign(cosigning_key, name)  # checked against the latest cosignature
        status = "created"
    else:
        check_log(log.size, log.root_at, anchor)
        try:
            log.check_leaves(anchor.size)  # the roots come from stored hashes: re-hash
        except AuditError as exc:
            raise AnchorError(str(exc)) from exc
        if not log.has_cosignature_at(anchor.size):
            raise AnchorError(
                f"your cosignature of the log at size {anchor.size} (the one the owner anchor "
                "records) is gone from the log: cosignatures were deleted"
            )
        note = log.cosign(cosigning_key, name, trusted=(anchor.size, anchor.root))
        status = "ok"
    write_anchor(data_dir, anchor_from_cosignature(note, clock), anchor_key)
    return AnchoredCosignature(note, status)


def owner_cosign(
    log: AuditLog,
    anchor_key: bytes,
    cosigning_key: Ed25519PrivateKey,
    name: str,
    *,
    accept: bool = False,
    clock: Callable[[], float] = time.time,
) -> bytes:
    """The owner's cosignature, checked through the anchor and audited; returns its note.

    The one place both owner paths cosign once they hold the owner keys: web unlock
    (:mod:`doorbell.ui.auth`) and ``doorbell requests approve`` (before it approves,
    :func:`doorbell.exports.service.approve_and_build`). Runs :func:`cosign_anchored` and
    records the outcome in ``log`` (actor ``owner``): ``audit.anchor_created`` for a first
    anchor; on refusal ``audit.anchor_missing`` (:class:`AnchorMissing`),
    ``audit.anchor_mismatch`` (:class:`AnchorError`) or ``audit.cosign_refused`` (any other
    :class:`AuditError` or :class:`StorageError`), each with the reason, then re-raises.
    Nothing is cosigned and the anchor is untouched on refusal (except a
    :class:`StorageError` writing the anchor, see :func:`cosign_anchored`).

    ``accept``: the owner explicitly takes the log as it is now as the new reference
    (cosign with nothing to check against, then write the anchor); the caller audits
    ``audit.anchor_reset`` first.
    """
    try:
        if accept:
            note = log.cosign(cosigning_key, name, first=True)
            write_anchor(Path(log.data_dir), anchor_from_cosignature(note, clock), anchor_key)
            return note
        done = cosign_anchored(log, anchor_key, cosigning_key, name, clock=clock)
    except AnchorMissing as exc:
        log.append("owner", "audit.anchor_missing", ANCHOR_OBJECT, {"reason": str(exc)[:500]})
        raise
    except AnchorError as exc:
        log.append("owner", "audit.anchor_mismatch", ANCHOR_OBJECT, {"reason": str(exc)[:500]})
        raise
    except (AuditError, StorageError) as exc:
        log.append("owner", "audit.cosign_refused", "", {"reason": str(exc)[:500]})
        raise
    if done.status == "created":
        log.append("owner", "audit.anchor_created", ANCHOR_OBJECT, {})
    return done.note


def _check_migration(log: AuditLog, vkey: str) -> None:
    """May a data dir without an anchor get its first one now? Raise AnchorMissing if not."""
    from doorbell.audit.entries import EntryError, decode_entry

    for _index, leaf in log.entries(0):
        try:
            entry = decode_entry(leaf)
        except EntryError:
            continue
        if entry["action"] == "keys.created":
            if isinstance(entry["details"], dict) and entry["details"].get("owner_anchor"):
                raise AnchorMissing(
                    "the owner anchor made at setup is gone: it was deleted (or the data dir "
                    "restored without it)"
                )
            break
    result = log.verify(cosigner_vkeys=(vkey,))
    if not result.ok:
        raise AnchorMissing(
            f"there is no owner anchor and the log does not verify: {result.summary()}"
        )
