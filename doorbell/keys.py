"""The owner's key file: create, unlock, change its passphrase, derive the cosigning key.

Files in ``<data_dir>/keys/``:

- ``owner.recipients`` (0644): the owner's ``age1...`` recipient; all the recorder needs.
- ``owner.key.age`` (0600): a plain age identity file (``# comments`` and one
  ``AGE-SECRET-KEY-1...`` line, as ``age-keygen`` writes), encrypted with age's scrypt
  passphrase recipient. The stock tool opens clips with it directly:
  ``age -d -i keys/owner.key.age clip.mp4.age > clip.mp4`` (age asks for the passphrase).

The owner's audit cosigning key (Ed25519) is not stored anywhere: it is derived from the
identity with HKDF-SHA-256 and the fixed label :data:`COSIGNING_KEY_INFO`, so a backup of the
identity is a backup of both. So is the key sealing the owner anchor (label
:data:`ANCHOR_KEY_INFO`, see :mod:`doorbell.audit.anchor`). This module is decryption side:
the recorder never imports it.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from doorbell.age.decrypt import decrypt
from doorbell.age.encrypt import encrypt
from doorbell.age.errors import KeyFormatError, NoIdentityMatchError
from doorbell.age.header import read_header
from doorbell.age.identities import ScryptIdentity, X25519Identity, parse_identities
from doorbell.age.primitives import hkdf_sha256
from doorbell.age.recipients import MAX_SCRYPT_WORK_FACTOR, ScryptRecipient
from doorbell.datadir import DataDir
from doorbell.errors import AgeError, KeyFileError, PassphraseError
from doorbell.fsutil import write_file_atomic
from doorbell.pubkeys import load_owner_recipients

#: scrypt work factor (log2 N) of owner.key.age: age's own default, 2**18 * 1 KiB = 256 MiB
#: of memory, about 0.56 s per guess on an x86 core and about 8 s per unlock on a Raspberry
#: Pi Zero 2 W (issue 17: 2**16 was ~140 ms per guess against a stolen SD card); see
#: docs/keys.md. Key files written at 2**16 before still open (the stanza says its factor).
OWNER_KEY_WORK_FACTOR = 18
#: HKDF-SHA-256 info label deriving the owner's audit cosigning key from the identity.
COSIGNING_KEY_INFO = b"doorbell.owner-cosigning-key.v1"
#: HKDF-SHA-256 info label deriving the key that seals ``<data_dir>/owner/owner-anchor``.
ANCHOR_KEY_INFO = b"doorbell.owner-anchor-key.v1"
#: The key name under which the owner cosigns audit checkpoints.
OWNER_COSIGNER_NAME = "doorbell-owner"
#: The owner's cosigner verifier key (public), written at ``doorbell init``; what a bundle's
#: ``audit/cosigner.vkey`` must equal (``doorbell keys show`` prints it).
_MAX_KEY_FILE_BYTES = 64 * 1024


def owner_key_path(data_dir: Path) -> Path:
    """``<data_dir>/keys/owner.key.age``."""
    return DataDir(data_dir).owner_key


def derive_owner_cosigning_key(identity: X25519Identity) -> Ed25519PrivateKey:
    """The owner's Ed25519 audit cosigning key, derived from the identity's secret bytes.

    HKDF-SHA-256(ikm = 32 secret bytes, salt = empty, info = ``doorbell.owner-cosigning-key.v1``)
    gives the 32-byte Ed25519 seed. Deterministic: the same identity gives the same key.
    """
    return Ed25519PrivateKey.from_private_bytes(
        hkdf_sha256(identity.secret_bytes, b"", COSIGNING_KEY_INFO)
    )


def owner_cosigner_vkey(identity: X25519Identity) -> str:
    """The owner's cosigner verifier key (``doorbell-owner+<id>+<base64>``, type 0x04)."""
    from doorbell.audit.note import CosignatureSigner

    return CosignatureSigner(OWNER_COSIGNER_NAME, derive_owner_cosigning_key(identity)).vkey


def write_owner_cosigner_vkey(data_dir: Path, identity: X25519Identity) -> str:
    """Write ``keys/owner-cosigner.vkey`` (public, mode 0644); return the vkey."""
    from doorbell.fsutil import atomic_write

    vkey = owner_cosigner_vkey(identity)
    with atomic_write(DataDir(data_dir).owner_cosigner_vkey, mode=0o644) as handle:
        handle.write((vkey + "\n").encode("ascii"))
    return vkey


def derive_owner_anchor_key(identity: X25519Identity) -> bytes:
    """The 32-byte ChaCha20-Poly1305 key sealing the owner anchor (:mod:`doorbell.audit.anchor`).

    HKDF-SHA-256(ikm = 32 secret bytes, salt = empty, info = ``doorbell.owner-anchor-key.v1``).
    Deterministic, and independent of the cosigning key (a different label).
    """
    return hkdf_sha256(identity.secret_bytes, b"", ANCHOR_KEY_INFO)


def fingerprint(text: str) -> str:
    """A short, comparable fingerprint of a public key string: SHA-256, first 16 hex digits."""
    digest = hashlib.sha256(text.strip().encode("utf-8")).hexdigest()[:16]
    return ":".join(digest[i : i + 4] for i in range(0, 16, 4))


def identity_file_text(identity: X25519Identity, created: float) -> str:
    """The plain age identity file: comments as ``age-keygen`` writes them, then the key."""
    stamp = datetime.datetime.fromtimestamp(created, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"# doorbell owner identity, created: {stamp}\n"
        f"# public key: {identity.recipient}\n"
        f"{identity}\n"
    )


def _seal_identity(
    identity: X25519Identity, passphrase: str, work_factor: int, created: float
) -> bytes:
    sink = io.BytesIO()
    with encrypt(sink, [ScryptRecipient(passphrase, work_factor=work_factor)]) as writer:
        writer.write(identity_file_text(identity, created).encode("utf-8"))
    return sink.getvalue()


def create_owner_keys(
    data_dir: Path,
    passphrase: str,
    *,
    work_factor: int = OWNER_KEY_WORK_FACTOR,
    clock: Callable[[], float] = time.time,
) -> X25519Identity:
    """Generate the owner identity; write ``owner.key.age`` (0600) and ``owner.recipients``.

    The caller has already judged the passphrase. Refuses to overwrite either file
    (:class:`KeyFileError`). Returns the identity (keep it in memory only).
    """
    paths = DataDir(data_dir)
    paths.keys.mkdir(mode=0o755, parents=True, exist_ok=True)
    for path in (paths.owner_key, paths.owner_recipients):
        if path.exists():
            raise KeyFileError(f"{path}: already exists; refusing to replace it")
    identity = X25519Identity.generate()
    sealed = _seal_identity(identity, passphrase, work_factor, clock())
    recipients = f"# doorbell owner recipient (public)\n{identity.recipient}\n"
    try:
        write_file_atomic(paths.owner_key, sealed, mode=0o600, overwrite=False)
        write_file_atomic(paths.owner_recipients, recipients.encode(), mode=0o644, overwrite=False)
    except FileExistsError as exc:
        raise KeyFileError(str(exc)) from None
    return identity


def _read_owner_key_file(data_dir: Path) -> bytes:
    path = owner_key_path(data_dir)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no owner key; run `doorbell init` first") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the owner key: {exc.strerror}") from None
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"{path}: too large to be an owner key file")
    return data


def owner_key_work_factor(data_dir: Path) -> int:
    """The scrypt work factor owner.key.age was sealed with (read from its header only)."""
    header, _size, _rest = read_header(io.BytesIO(_read_owner_key_file(data_dir)))
    stanza = header.stanzas[0]
    if stanza.type != "scrypt" or len(stanza.args) != 2 or not stanza.args[1].isdigit():
        raise KeyFileError(f"{owner_key_path(data_dir)}: not passphrase-encrypted")
    return int(stanza.args[1])


def unlock_owner_identity(
    data_dir: Path, passphrase: str, *, max_work_factor: int = MAX_SCRYPT_WORK_FACTOR
) -> X25519Identity:
    """Decrypt ``owner.key.age`` with ``passphrase``; return the owner identity.

    Raises :class:`PassphraseError` for a wrong passphrase, :class:`KeyFileError` when the
    file is damaged, holds other than one identity, or does not match ``owner.recipients``.
    """
    path = owner_key_path(data_dir)
    data = _read_owner_key_file(data_dir)
    try:
        text = decrypt(io.BytesIO(data), [ScryptIdentity(passphrase, max_work_factor)]).read()
    except NoIdentityMatchError:
        raise PassphraseError("wrong passphrase for the owner key") from None
    except AgeError as exc:
        raise KeyFileError(f"{path}: cannot be decrypted: {exc}") from None
    try:
        identities = parse_identities(text.decode("utf-8"), source=str(path))
    except (UnicodeDecodeError, KeyFormatError) as exc:
        raise KeyFileError(f"{path}: does not hold a valid age identity: {exc}") from None
    if len(identities) != 1:
        raise KeyFileError(f"{path}: holds {len(identities)} identities, expected exactly 1")
    identity = identities[0]
    recipients_file = DataDir(data_dir).owner_recipients
    if recipients_file.exists() and identity.recipient not in load_owner_recipients(data_dir):
        raise KeyFileError(
            f"{path}: the identity does not match owner.recipients; the key files are "
            "from different setups"
        )
    return identity


def change_owner_passphrase(
    data_dir: Path,
    old_passphrase: str,
    new_passphrase: str,
    *,
    work_factor: int = OWNER_KEY_WORK_FACTOR,
    clock: Callable[[], float] = time.time,
) -> X25519Identity:
    """Re-seal ``owner.key.age`` under a new passphrase (atomic replace); same identity.

    The new passphrase must pass :func:`doorbell.passphrase.require_strong` and differ from
    the old one (:class:`PassphraseError` otherwise, before any scrypt runs). Raises like
    :func:`unlock_owner_identity` when the old passphrase does not open the file.
    """
    from doorbell.passphrase import require_strong

    if new_passphrase == old_passphrase:
        raise PassphraseError("the new passphrase must differ from the old one")
    require_strong(new_passphrase)
    identity = unlock_owner_identity(data_dir, old_passphrase)
    sealed = _seal_identity(identity, new_passphrase, work_factor, clock())
    write_file_atomic(owner_key_path(data_dir), sealed, mode=0o600, overwrite=True)
    return identity
