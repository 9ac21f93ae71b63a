"""The owner's keys as the web UI sees them: unlock, change passphrase, open encrypted files.

:class:`KeyFileVault` is the real one, over :mod:`doorbell.keys` (the passphrase-wrapped
``keys/owner.key.age``) and :mod:`doorbell.age`. Tests may pass any object with the same
methods to :func:`doorbell.ui.create_app` (``vault=``).

This is the only module of the UI that touches the decrypting half of age.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from doorbell.errors import AgeError, PassphraseError, StorageError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from doorbell.age.identities import X25519Identity
    from doorbell.age.random_access import RandomAccessReader

#: Thumbnails larger than this are refused (they are small JPEGs; this bounds memory).
MAX_THUMBNAIL_BYTES = 4 << 20


@dataclass(frozen=True)
class OwnerKeys:
    """The unwrapped owner secrets: age identity and Ed25519 cosigning key."""

    identity: X25519Identity
    cosigning_key: Ed25519PrivateKey


class Vault(Protocol):
    def unlock(self, passphrase: str) -> OwnerKeys:
        """Unwrap the owner key; raises :class:`PassphraseError` if the passphrase is wrong."""
        ...

    def change_passphrase(self, old: str, new: str) -> None:
        """Rewrap the owner key under ``new``; raises :class:`PassphraseError`."""
        ...


class KeyFileVault:
    """The owner key file of a data dir (``keys/owner.key.age``)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)

    def unlock(self, passphrase: str) -> OwnerKeys:
        from doorbell import keys

        identity = keys.unlock_owner_identity(self.data_dir, passphrase)
        return OwnerKeys(identity, keys.derive_owner_cosigning_key(identity))

    def change_passphrase(self, old: str, new: str) -> None:
        """Rewrap under ``new`` with the scrypt work factor the file already uses."""
        from doorbell import keys

        work_factor = keys.owner_key_work_factor(self.data_dir)
        keys.change_owner_passphrase(self.data_dir, old, new, work_factor=work_factor)


@dataclass
class OpenedFile:
    """A decrypting, seekable reader over an encrypted file, and what we know of it."""

    reader: RandomAccessReader
    size: int
    truncated: bool

    def close(self) -> None:
        self.reader.close()


def open_encrypted(
    path: Path, identity: X25519Identity, *, allow_truncated: bool = True
) -> OpenedFile:
    """Open ``path`` (an age file) for random-access plaintext reads with ``identity``.

    ``allow_truncated``: an interrupted clip reads up to its last authenticated chunk;
    :attr:`OpenedFile.truncated` then says so. Raises :class:`StorageError` when the file is
    missing and :class:`AgeError` when it does not decrypt.
    """
    from doorbell.age.decrypt import decrypt_random_access

    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed with the reader
    except FileNotFoundError:
        raise StorageError(f"{path.name}: the encrypted file is missing") from None
    try:
        reader = decrypt_random_access(raw, [identity], allow_truncated=allow_truncated)
        size = reader.size
    except BaseException:
        raw.close()
        raise
    reader_close = reader.close

    def close() -> None:
        try:
            reader_close()
        finally:
            raw.close()

    reader.close = close  # type: ignore[method-assign]
    return OpenedFile(reader, size, bool(reader.truncated))


def decrypt_small(path: Path, identity: X25519Identity) -> bytes:
    """The whole plaintext of a small encrypted file (a thumbnail), in memory only."""
    opened = open_encrypted(path, identity, allow_truncated=False)
    try:
        if opened.size > MAX_THUMBNAIL_BYTES:
            raise StorageError(f"{path.name}: {opened.size} bytes is too large for a thumbnail")
        return opened.reader.read()
    finally:
        opened.close()


@contextlib.contextmanager
def reading(opened: OpenedFile) -> Iterator[io.RawIOBase]:
    try:
        yield opened.reader
    finally:
        opened.close()


__all__ = [
    "AgeError",
    "KeyFileVault",
    "OpenedFile",
    "OwnerKeys",
    "PassphraseError",
    "Vault",
    "decrypt_small",
    "open_encrypted",
]
