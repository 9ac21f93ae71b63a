"""The decrypting side of age keys: identities (secret keys and passphrases).

An identity looks at the header's stanzas and returns the file key if one is addressed to
it. Only the web process (after the owner unlocks) and the CLI import this module; the
recorder never does (a test enforces it).

Text form of an X25519 identity: ``AGE-SECRET-KEY-1...`` (uppercase Bech32). Identity files
(as ``age-keygen`` writes them) hold one per line with ``#`` comments.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from doorbell.age import bech32
from doorbell.age.errors import (
    HeaderError,
    KeyFormatError,
    NoIdentityMatchError,
    StanzaError,
    WorkFactorError,
)
from doorbell.age.header import Stanza
from doorbell.age.primitives import FILE_KEY_SIZE, b64decode, hkdf_sha256, unwrap_file_key
from doorbell.age.recipients import (
    MAX_SCRYPT_WORK_FACTOR,
    SCRYPT_SALT_LABEL,
    X25519_INFO,
    X25519Recipient,
)

X25519_IDENTITY_HRP = "age-secret-key-"
_WRAPPED_KEY_SIZE = FILE_KEY_SIZE + 16
_DECIMAL = re.compile(r"[1-9][0-9]*")


class Identity(Protocol):
    """Anything that can try to unwrap a file key from a header's stanzas."""

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None: ...


class X25519Identity:
    """An age X25519 secret key. ``str()`` gives ``AGE-SECRET-KEY-1...``; keep it secret."""

    __slots__ = ("_key", "_raw")

    def __init__(self, secret_bytes: bytes) -> None:
        if len(secret_bytes) != 32:
            raise KeyFormatError(f"X25519 identity must be 32 bytes, got {len(secret_bytes)}")
        self._raw = bytes(secret_bytes)
        self._key = X25519PrivateKey.from_private_bytes(self._raw)

    @classmethod
    def generate(cls) -> X25519Identity:
        """A fresh random identity from the operating system's CSPRNG."""
        return cls(X25519PrivateKey.generate().private_bytes_raw())

    @property
    def secret_bytes(self) -> bytes:
        """The 32 raw secret bytes (for key derivation; never log or store them in clear)."""
        return self._raw

    @property
    def recipient(self) -> X25519Recipient:
        """The public recipient (``age1...``) that encrypts to this identity."""
        return X25519Recipient(self._key.public_key().public_bytes_raw())

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        """The file key from the first ``X25519`` stanza addressed to us, else None.

        Raises :class:`StanzaError` for a malformed ``X25519`` stanza (argument count,
        non-canonical or wrong-length share, body length, low-order share).
        """
        for stanza in stanzas:
            if stanza.type != "X25519":
                continue
            if len(stanza.args) != 1:
                raise StanzaError(f"X25519 stanza has {len(stanza.args)} arguments, expected 1")
            share = b64decode(stanza.args[0].encode("ascii"), StanzaError, "X25519 share")
            if len(share) != 32:
                raise StanzaError(f"X25519 share is {len(share)} bytes, expected 32")
            if len(stanza.body) != _WRAPPED_KEY_SIZE:
                raise StanzaError(f"X25519 stanza body is {len(stanza.body)} bytes, expected 32")
            try:
                shared = self._key.exchange(X25519PublicKey.from_public_bytes(share))
            except ValueError:
                raise StanzaError("X25519 share is a low-order point (all-zero secret)") from None
            if shared == bytes(32):  # pragma: no cover - cryptography already refuses
                raise StanzaError("X25519 shared secret is all zero")
            recipient = self._key.public_key().public_bytes_raw()
            wrap_key = hkdf_sha256(shared, share + recipient, X25519_INFO)
            file_key = unwrap_file_key(wrap_key, stanza.body)
            if file_key is not None:
                return file_key
        return None

    def __str__(self) -> str:
        return bech32.encode(X25519_IDENTITY_HRP, self._raw, upper=True)

    def __repr__(self) -> str:
        return f"X25519Identity(recipient={str(self.recipient)!r})"


class ScryptIdentity:
    """Decrypts files encrypted to a passphrase.

    Files asking for a work factor above ``max_work_factor`` (default 22, age's own limit:
    4 GiB of memory) are refused with :class:`WorkFactorError` before any work is done.
    """

    __slots__ = ("_passphrase", "max_work_factor")

    def __init__(
        self, passphrase: str | bytes, max_work_factor: int = MAX_SCRYPT_WORK_FACTOR
    ) -> None:
        if isinstance(passphrase, str):
            passphrase = passphrase.encode("utf-8")
        self._passphrase = bytes(passphrase)
        self.max_work_factor = max_work_factor

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        """The file key from an ``scrypt`` stanza if the passphrase opens it, else None.

        Raises :class:`StanzaError` for a malformed stanza, :class:`WorkFactorError` for a
        work factor above the maximum.
        """
        for stanza in stanzas:
            if stanza.type != "scrypt":
                continue
            if len(stanza.args) != 2:
                raise StanzaError(f"scrypt stanza has {len(stanza.args)} arguments, expected 2")
            salt = b64decode(stanza.args[0].encode("ascii"), StanzaError, "scrypt salt")
            if len(salt) != 16:
                raise StanzaError(f"scrypt salt is {len(salt)} bytes, expected 16")
            if not _DECIMAL.fullmatch(stanza.args[1]):
                raise StanzaError(f"scrypt work factor {stanza.args[1][:20]!r} is not valid")
            # A long digit string is simply huge: refuse it without converting it.
            work_factor = int(stanza.args[1]) if len(stanza.args[1]) <= 3 else 1000
            if work_factor > self.max_work_factor:
                raise WorkFactorError(
                    f"scrypt work factor {work_factor} is above the allowed maximum "
                    f"{self.max_work_factor} (it would need {2 ** (work_factor - 3)} KiB of "
                    "memory); refusing to decrypt this file"
                )
            if len(stanza.body) != _WRAPPED_KEY_SIZE:
                raise StanzaError(f"scrypt stanza body is {len(stanza.body)} bytes, expected 32")
            kdf = Scrypt(salt=SCRYPT_SALT_LABEL + salt, length=32, n=1 << work_factor, r=8, p=1)
            file_key = unwrap_file_key(kdf.derive(self._passphrase), stanza.body)
            if file_key is not None:
                return file_key
        return None

    def __repr__(self) -> str:
        return f"ScryptIdentity(max_work_factor={self.max_work_factor})"


def unwrap_header_key(stanzas: Sequence[Stanza], identities: Iterable[Identity]) -> bytes:
    """The file key of a header, from the first identity that can unwrap it.

    Raises :class:`HeaderError` when an scrypt stanza is not alone (the spec forbids
    mixing), :class:`StanzaError` for a malformed stanza of a known type, and
    :class:`NoIdentityMatchError` when no identity matches.
    """
    if any(s.type == "scrypt" for s in stanzas) and len(stanzas) != 1:
        raise HeaderError("an scrypt stanza must be the only stanza of the header")
    tried = 0
    for identity in identities:
        tried += 1
        file_key = identity.unwrap(stanzas)
        if file_key is not None:
            return file_key
    if not tried:
        raise NoIdentityMatchError("no identity given to decrypt with")
    types = ", ".join(sorted({s.type for s in stanzas}))
    raise NoIdentityMatchError(
        f"no identity matched any of the file's {len(stanzas)} recipient stanza(s) ({types}): "
        "wrong key or passphrase"
    )


def parse_identity(text: str) -> X25519Identity:
    """Parse one ``AGE-SECRET-KEY-1...`` string (surrounding whitespace ignored).

    Raises :class:`KeyFormatError` with what is wrong.
    """
    text = text.strip()
    if text.startswith("age1"):
        raise KeyFormatError("this is a public recipient (age1...), not a secret identity")
    hrp, data = bech32.decode(text)
    if hrp != X25519_IDENTITY_HRP or text != text.upper():
        raise KeyFormatError("unsupported identity type: expected AGE-SECRET-KEY-1...")
    if len(data) != 32:
        raise KeyFormatError(f"X25519 identity has {len(data)} bytes, expected 32")
    return X25519Identity(data)


def parse_identities(text: str, *, source: str = "identity file") -> list[X25519Identity]:
    """Parse an identity file: one key per line, blank lines and ``#`` comments ignored.

    Raises :class:`KeyFormatError` naming ``source`` and the line (never echoing the key),
    or when the file holds no identity.
    """
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            found.append(parse_identity(stripped))
        except KeyFormatError as exc:
            raise KeyFormatError(f"{source}:{number}: {exc}") from None
    if not found:
        raise KeyFormatError(f"{source}: no identity found")
    return found
