"""Small shared building blocks of age v1: canonical base64, HKDF, file-key wrapping.

Everything cryptographic comes from ``cryptography``; this module only fixes the parameters
age v1 uses. It holds no keys and is safe for the encrypt-only side to import.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from doorbell.errors import AgeError

#: Size of the symmetric file key, in bytes.
FILE_KEY_SIZE = 16
_ZERO_NONCE = bytes(12)
_BASE64_CHARS = re.compile(rb"[A-Za-z0-9+/]*")


def b64encode(data: bytes) -> bytes:
    """Standard base64 without ``=`` padding (age's header encoding)."""
    return base64.b64encode(data).rstrip(b"=")


def b64decode(text: bytes, error: type[AgeError], what: str) -> bytes:
    """Decode unpadded, canonical base64 or raise ``error`` naming ``what``.

    Rejects padding, line breaks, characters outside the alphabet and non-canonical
    encodings (unused trailing bits set), as the age spec requires.
    """
    if not _BASE64_CHARS.fullmatch(text) or len(text) % 4 == 1:
        raise error(f"{what}: not valid unpadded base64: {text[:80]!r}")
    try:
        data = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except binascii.Error as exc:  # pragma: no cover - excluded by the checks above
        raise error(f"{what}: not valid base64: {exc}") from None
    if b64encode(data) != text:
        raise error(f"{what}: non-canonical base64 encoding {text[:80]!r}")
    return data


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    """HKDF-SHA-256 (extract then expand) to 32 bytes, as every age derivation uses."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def header_mac(file_key: bytes, header_without_mac: bytes) -> bytes:
    """HMAC-SHA-256 of the header up to and including ``---``, keyed from the file key."""
    key = hkdf_sha256(file_key, b"", b"header")
    return hmac.new(key, header_without_mac, "sha256").digest()


def wrap_file_key(wrap_key: bytes, file_key: bytes) -> bytes:
    """Encrypt the file key with ChaCha20-Poly1305 under the all-zero nonce (stanza body)."""
    return ChaCha20Poly1305(wrap_key).encrypt(_ZERO_NONCE, file_key, None)


def unwrap_file_key(wrap_key: bytes, body: bytes) -> bytes | None:
    """Decrypt a 32-byte stanza body; None when the tag does not verify (not for us)."""
    try:
        return ChaCha20Poly1305(wrap_key).decrypt(_ZERO_NONCE, body, None)
    except InvalidTag:
        return None
