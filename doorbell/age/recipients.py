"""The encrypting side of age keys: recipients (public keys and passphrase wrapping).

This module never imports an identity or anything that can decrypt, so code that only
encrypts (the recorder) cannot reach a secret key. A recipient's job is one method,
:meth:`wrap`, which turns a file key into the header stanzas that carry it.

Recipient text forms: ``age1...`` (Bech32, X25519). Recipients files hold one per line;
blank lines and ``#`` comments are ignored.
"""

from __future__ import annotations

import os
import secrets
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from doorbell.age import bech32
from doorbell.age.errors import KeyFormatError, RecipientError
from doorbell.age.header import Stanza
from doorbell.age.primitives import b64encode, hkdf_sha256, wrap_file_key

X25519_RECIPIENT_HRP = "age"
X25519_INFO = b"age-encryption.org/v1/X25519"
SCRYPT_SALT_LABEL = b"age-encryption.org/v1/scrypt"
#: Default scrypt work factor (log2 N) for files encrypted to a passphrase: age's own default.
DEFAULT_SCRYPT_WORK_FACTOR = 18
#: The largest work factor this package will produce or accept (age's decryption maximum).
MAX_SCRYPT_WORK_FACTOR = 22


class Recipient(Protocol):
    """Anything that can wrap a file key into header stanzas."""

    def wrap(self, file_key: bytes) -> list[Stanza]: ...


class X25519Recipient:
    """An age X25519 public key (``age1...``): files encrypted to it open with its identity."""

    __slots__ = ("_key", "_raw")

    def __init__(self, public_bytes: bytes) -> None:
        if len(public_bytes) != 32:
            raise KeyFormatError(f"X25519 recipient must be 32 bytes, got {len(public_bytes)}")
        self._raw = bytes(public_bytes)
        self._key = X25519PublicKey.from_public_bytes(self._raw)

    @property
    def public_bytes(self) -> bytes:
        """The 32 raw bytes of the public key."""
        return self._raw

    def wrap(self, file_key: bytes) -> list[Stanza]:
        """One ``X25519`` stanza carrying ``file_key``, with a fresh ephemeral key."""
        ephemeral = X25519PrivateKey.generate()
        share = ephemeral.public_key().public_bytes_raw()
        shared = ephemeral.exchange(self._key)
        wrap_key = hkdf_sha256(shared, share + self._raw, X25519_INFO)
        body = wrap_file_key(wrap_key, file_key)
        return [Stanza("X25519", (b64encode(share).decode("ascii"),), body)]

    def __str__(self) -> str:
        return bech32.encode(X25519_RECIPIENT_HRP, self._raw)

    def __repr__(self) -> str:
        return f"X25519Recipient({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, X25519Recipient) and other._raw == self._raw

    def __hash__(self) -> int:
        return hash(self._raw)


class ScryptRecipient:
    """Encrypts to a passphrase with scrypt (must be the only recipient of a file).

    ``work_factor`` is log2 of scrypt's N (r=8, p=1): memory is 128 * 8 * 2**work_factor
    bytes, so 18 needs 256 MiB and 16 needs 64 MiB. Range 1..22.
    """

    __slots__ = ("_passphrase", "work_factor")

    def __init__(
        self, passphrase: str | bytes, work_factor: int = DEFAULT_SCRYPT_WORK_FACTOR
    ) -> None:
        if isinstance(passphrase, str):
            passphrase = passphrase.encode("utf-8")
        if not passphrase:
            raise RecipientError("an empty passphrase cannot protect anything")
        if not 1 <= work_factor <= MAX_SCRYPT_WORK_FACTOR:
            raise RecipientError(
                f"scrypt work factor {work_factor} outside 1..{MAX_SCRYPT_WORK_FACTOR}"
            )
        self._passphrase = bytes(passphrase)
        self.work_factor = work_factor

    def wrap(self, file_key: bytes) -> list[Stanza]:
        """One ``scrypt`` stanza: salt, work factor, and the file key under the derived key."""
        salt = secrets.token_bytes(16)
        kdf = Scrypt(salt=SCRYPT_SALT_LABEL + salt, length=32, n=1 << self.work_factor, r=8, p=1)
        body = wrap_file_key(kdf.derive(self._passphrase), file_key)
        return [Stanza("scrypt", (b64encode(salt).decode("ascii"), str(self.work_factor)), body)]

    def __repr__(self) -> str:
        return f"ScryptRecipient(work_factor={self.work_factor})"


def parse_recipient(text: str) -> X25519Recipient:
    """Parse one ``age1...`` recipient (surrounding whitespace ignored).

    Raises :class:`KeyFormatError` with what is wrong (prefix, checksum, length).
    """
    text = text.strip()
    if text.startswith("AGE-SECRET-KEY-"):
        raise KeyFormatError("this is a secret key (AGE-SECRET-KEY-...), not a recipient")
    hrp, data = bech32.decode(text)
    if hrp != X25519_RECIPIENT_HRP or text != text.lower():
        raise KeyFormatError(f"unsupported recipient type {hrp!r}: expected an age1... key")
    if len(data) != 32:
        raise KeyFormatError(f"X25519 recipient has {len(data)} bytes, expected 32")
    return X25519Recipient(data)


def parse_recipients(text: str, *, source: str = "recipients") -> list[X25519Recipient]:
    """Parse a recipients list: one per line, blank lines and ``#`` comments ignored.

    Raises :class:`KeyFormatError` naming ``source`` and the line number of a bad line, or
    when no recipient is found.
    """
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            found.append(parse_recipient(stripped))
        except KeyFormatError as exc:
            raise KeyFormatError(f"{source}:{number}: {exc}") from None
    if not found:
        raise KeyFormatError(f"{source}: no recipient found")
    return found


def parse_recipients_file(path: str | os.PathLike[str]) -> list[X25519Recipient]:
    """Read and parse a recipients file (see :func:`parse_recipients`).

    Raises :class:`KeyFormatError` for bad content and ``OSError`` when unreadable.
    """
    with open(path, encoding="utf-8") as handle:
        return parse_recipients(handle.read(), source=os.fspath(path))
