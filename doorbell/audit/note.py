"""C2SP signed notes, tlog checkpoints and timestamped cosignatures (Ed25519 only).

Specs (CC BY 4.0, C2SP authors), kept in ``../shared/vectors/specs``:

- signed-note v1.0.0: text ending in a newline, a blank line, then signature lines
  ``— <key name> base64(key ID || signature)``. Key ID = ``SHA-256(name || 0x0A || type ||
  public key)[:4]``; type 0x01 is Ed25519 over the note text. Verifier keys (vkeys) are
  ``<name>+<hex key ID>+base64(type || public key)``.
- Go private keys (golang.org/x/mod/sumdb/note, not part of C2SP):
  ``PRIVATE+KEY+<name>+<hex key ID>+base64(0x01 || 32-byte Ed25519 seed)``.
- tlog-checkpoint v1.0.0: the note text is ``origin\\nsize\\nbase64(root)\\n`` plus optional
  extension lines.
- tlog-cosignature (Ed25519, type 0x04): the signature is ``u64 timestamp || Ed25519 sig`` over
  ``"cosignature/v1\\ntime <timestamp>\\n" || checkpoint text``.

Verification follows the spec: signatures from unknown keys are ignored, a known key whose
signature fails rejects the note, and a note with no verified known signature is rejected.
Like Go's x/mod we accept at most 100 signature lines.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from doorbell.errors import AuditError

SIG_ED25519 = 0x01
SIG_COSIGNATURE_V1 = 0x04
MAX_SIGNATURES = 100
_DASH = "\u2014 "
_NAME_FORBIDDEN = re.compile(r"[\s+]")


class NoteError(AuditError):
    """A note, key or checkpoint is malformed or does not verify."""


class MalformedNote(NoteError):
    """The note (or key string, or checkpoint body) does not follow the format."""


class NoteSignatureError(NoteError):
    """A signature from a known key failed to verify."""


class NoVerifiableSignatures(NoteError):
    """No signature on the note comes from a key the verifier knows."""


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise MalformedNote(f"{what}: not valid base64") from exc


def _check_name(name: str) -> None:
    if not name or _NAME_FORBIDDEN.search(name):
        raise MalformedNote(f"key name {name!r}: must be non-empty, without spaces or '+'")


def key_id(name: str, sig_type: int, public_key: bytes) -> bytes:
    """The 4-byte key ID ``SHA-256(name || 0x0A || type || public key)[:4]``."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public_key).digest()[:4]


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


# --- signers and verifiers ---------------------------------------------------------------


class Signer:
    """An Ed25519 signed-note signer (type 0x01): the device key signing checkpoints."""

    sig_type = SIG_ED25519

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        _check_name(name)
        self.name = name
        self._private_key = private_key
        self.public_key = _raw_public(private_key.public_key())
        self.key_id = key_id(name, self.sig_type, self.public_key)

    def sign(self, text: bytes) -> bytes:
        """Signature bytes (without the key ID) over the note ``text``."""
        return self._private_key.sign(text)

    @property
    def vkey(self) -> str:
        """The verifier key string ``name+hexid+base64(type||pub)``."""
        blob = base64.b64encode(bytes([self.sig_type]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{blob}"

    def verifier(self) -> Verifier:
        return Verifier.from_vkey(self.vkey)

    def private_key_string(self) -> str:
        """Go x/mod private key string ``PRIVATE+KEY+name+hexid+base64(0x01||seed)``."""
        seed = self._private_key.private_bytes_raw()
        blob = base64.b64encode(bytes([SIG_ED25519]) + seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.key_id.hex()}+{blob}"

    @classmethod
    def from_private_key_string(cls, text: str) -> Signer:
        """Parse a Go private key string; raises :class:`MalformedNote` on any mismatch."""
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise MalformedNote("private key: want PRIVATE+KEY+<name>+<hex id>+<base64>")
        name, hex_id, blob = parts[2], parts[3], _b64decode(parts[4], "private key")
        if len(blob) != 33 or blob[0] != SIG_ED25519:
            raise MalformedNote("private key: not an Ed25519 (type 0x01) 32-byte seed")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(blob[1:]))
        if signer.key_id.hex() != hex_id:
            raise MalformedNote(f"private key {name}: key ID {hex_id} does not match the key")
        return signer


class CosignatureSigner(Signer):
    """A tlog-cosignature/v1 Ed25519 signer (type 0x04): the owner cosigning checkpoints."""

    sig_type = SIG_COSIGNATURE_V1

    def sign_at(self, text: bytes, timestamp: int) -> bytes:
        """``u64 timestamp || Ed25519 signature`` over the cosigned message for ``text``."""
        if not 0 <= timestamp < 2**63:
            raise NoteError(f"cosignature timestamp {timestamp} is out of range")
        message = cosigned_message(text, timestamp)
        return struct.pack(">Q", timestamp) + self._private_key.sign(message)

    def sign(self, text: bytes) -> bytes:  # pragma: no cover - the timestamp must be explicit
        raise NoteError("cosignatures need a timestamp: call sign_at(text, timestamp)")

    def private_key_string(self) -> str:  # pragma: no cover - the owner key lives in the vault
        raise NoteError("the owner cosigning key is derived, never written as a string")


def cosigned_message(text: bytes, timestamp: int) -> bytes:
    """The bytes an Ed25519 cosignature signs: header, time line, checkpoint text."""
    return b"cosignature/v1\ntime %d\n" % timestamp + text


@dataclass(frozen=True)
class Verifier:
    """A known key: name, key ID, type and Ed25519 public key, parsed from a vkey."""

    name: str
    key_id: bytes
    sig_type: int
    public_key: bytes

    @classmethod
    def from_vkey(cls, vkey: str) -> Verifier:
        """Parse ``name+hexid+base64(type||pub)``; types 0x01 and 0x04, checks the key ID."""
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise MalformedNote(f"verifier key {vkey!r}: want <name>+<hex id>+<base64>")
        name, hex_id, blob = parts[0], parts[1], _b64decode(parts[2], "verifier key")
        _check_name(name)
        if len(hex_id) != 8 or not re.fullmatch(r"[0-9a-f]{8}", hex_id):
            raise MalformedNote(f"verifier key {name}: key ID {hex_id!r} is not 8 hex digits")
        if len(blob) != 33 or blob[0] not in (SIG_ED25519, SIG_COSIGNATURE_V1):
            raise MalformedNote(f"verifier key {name}: not an Ed25519 key of type 0x01 or 0x04")
        if key_id(name, blob[0], blob[1:]).hex() != hex_id:
            raise MalformedNote(f"verifier key {name}: key ID {hex_id} does not match the key")
        return cls(name, bytes.fromhex(hex_id), blob[0], blob[1:])

    @property
    def vkey(self) -> str:
        blob = base64.b64encode(bytes([self.sig_type]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{blob}"

    def verify(self, text: bytes, signature: bytes) -> bool:
        """True when ``signature`` (without key ID) is valid over note ``text``."""
        if self.sig_type == SIG_COSIGNATURE_V1:
            if len(signature) != 72:
                return False
            (timestamp,) = struct.unpack(">Q", signature[:8])
            if timestamp >= 2**63:
                return False
            message, signature = cosigned_message(text, timestamp), signature[8:]
        else:
            message = text
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


# --- notes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes  # without the key ID

    def line(self) -> str:
        return f"{_DASH}{self.name} {base64.b64encode(self.key_id + self.signature).decode()}\n"

    @property
    def timestamp(self) -> int | None:
        """The cosignature timestamp (POSIX seconds) if this is a 72-byte cosignature."""
        return struct.unpack(">Q", self.signature[:8])[0] if len(self.signature) == 72 else None


@dataclass(frozen=True)
class Note:
    text: bytes
    signatures: tuple[NoteSignature, ...]
    verified: tuple[NoteSignature, ...] = ()

    def to_bytes(self) -> bytes:
        return self.text + b"\n" + "".join(s.line() for s in self.signatures).encode()


def parse_note(data: bytes) -> Note:
    """Split a signed note into text and signatures; raises :class:`MalformedNote`."""
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedNote("note: not valid UTF-8") from exc
    if any(ord(c) < 0x20 and c != "\n" for c in decoded):
        raise MalformedNote("note: contains a control character")
    if not decoded.endswith("\n"):
        raise MalformedNote("note: does not end with a newline")
    split = decoded.rfind("\n\n")
    if split < 0:
        raise MalformedNote("note: no blank line before the signatures")
    text, block = decoded[: split + 1], decoded[split + 2 :]
    lines = block.split("\n")[:-1]
    if not lines:
        raise MalformedNote("note: no signature lines")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNote(f"note: more than {MAX_SIGNATURES} signatures")
    signatures = []
    for line in lines:
        if not line.startswith(_DASH):
            raise MalformedNote(f"note: signature line {line[:40]!r} does not start with '— '")
        name, space, blob = line[len(_DASH) :].partition(" ")
        if not space:
            raise MalformedNote("note: signature line has no space before the signature")
        _check_name(name)
        raw = _b64decode(blob, f"signature by {name}")
        if len(raw) < 5:
            raise MalformedNote(f"note: signature by {name} is too short")
        signatures.append(NoteSignature(name, raw[:4], raw[4:]))
    return Note(text.encode(), tuple(signatures))


def open_note(data: bytes, verifiers: list[Verifier]) -> Note:
    """Parse and verify a note against known keys; the result lists the verified signatures.

    Raises :class:`MalformedNote`, :class:`NoteSignatureError` (a known key's signature is
    bad) or :class:`NoVerifiableSignatures`.
    """
    note = parse_note(data)
    known = {(v.name, v.key_id): v for v in verifiers}
    verified = []
    for signature in note.signatures:
        verifier = known.get((signature.name, signature.key_id))
        if verifier is None:
            continue
        if not verifier.verify(note.text, signature.signature):
            raise NoteSignatureError(f"note: invalid signature for key {signature.name}")
        verified.append(signature)
    if not verified:
        raise NoVerifiableSignatures("note: no signature from a known key")
    return Note(note.text, note.signatures, tuple(verified))


def sign_note(text: bytes, signer: Signer) -> bytes:
    """A signed note with one Ed25519 signature over ``text`` (which must end in a newline)."""
    if not text.endswith(b"\n"):
        raise MalformedNote("note text must end with a newline")
    signature = NoteSignature(signer.name, signer.key_id, signer.sign(text))
    return Note(text, (signature,)).to_bytes()


# --- checkpoints ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A tlog-checkpoint v1.0.0 body: origin, tree size, root hash (+ extension lines)."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> bytes:
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode()]
        return ("\n".join([*lines, *self.extensions]) + "\n").encode()


def parse_checkpoint(text: bytes) -> Checkpoint:
    """Parse a checkpoint note text (not the signatures); raises :class:`MalformedNote`."""
    try:
        lines = text.decode("utf-8").split("\n")
    except UnicodeDecodeError as exc:
        raise MalformedNote("checkpoint: not valid UTF-8") from exc
    if len(lines) < 4 or lines[-1] != "" or any(line == "" for line in lines[:-1]):
        raise MalformedNote("checkpoint: need origin, size and root lines, none empty")
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    if not re.fullmatch(r"0|[1-9][0-9]{0,19}", size_text):
        raise MalformedNote(f"checkpoint: tree size {size_text!r} is not a decimal number")
    root = _b64decode(root_text, "checkpoint root hash")
    if len(root) != 32:
        raise MalformedNote(f"checkpoint: root hash is {len(root)} bytes, want 32")
    return Checkpoint(origin, int(size_text), root, tuple(lines[3:-1]))
