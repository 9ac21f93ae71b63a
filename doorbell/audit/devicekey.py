"""The device signing key: the Ed25519 key that signs the audit log's checkpoints.

Files, in the data dir's ``keys/`` directory:

- ``device.key`` (0600): the Go signed-note private key string
  ``PRIVATE+KEY+<name>+<hex key ID>+base64(0x01 || 32-byte seed)`` and a newline.
- ``device.vkey`` (0644): the verifier key ``<name>+<hex key ID>+base64(0x01 || public key)``
  and a newline. Anyone may hold it; ``doorbell audit verify`` needs nothing else.

The key name is also the log's checkpoint origin (tlog-checkpoint says they SHOULD match).
The default, :func:`default_device_key_name`, is ``doorbell.local/<16 random hex digits>``:
unique per device, a schema-less URL as the spec recommends, and deliberately free of the
hostname, which often names the household and would end up in every exported log.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from doorbell.audit.note import MalformedNote, Signer, Verifier
from doorbell.datadir import DEVICE_KEY_FILE, DEVICE_VKEY_FILE
from doorbell.errors import KeyFileError
from doorbell.fsutil import write_file_atomic

MAX_KEY_FILE_BYTES = 4096


def default_device_key_name() -> str:
    """A fresh device key name and log origin: ``doorbell.local/<16 hex digits>``."""
    return f"doorbell.local/{secrets.token_hex(8)}"


def create_device_key(keys_dir: Path, name: str | None = None) -> str:
    """Create ``device.key`` (0600) and ``device.vkey`` (0644) in ``keys_dir``; return the vkey.

    ``name`` defaults to :func:`default_device_key_name`. Refuses to overwrite either file
    (raises :class:`KeyFileError`); raises it too for a name with spaces or ``+``.
    """
    keys_dir = Path(keys_dir)
    for file_name in (DEVICE_KEY_FILE, DEVICE_VKEY_FILE):
        if (keys_dir / file_name).exists():
            raise KeyFileError(f"{keys_dir / file_name}: already exists; refusing to replace it")
    try:
        signer = Signer(name or default_device_key_name(), Ed25519PrivateKey.generate())
    except MalformedNote as exc:
        raise KeyFileError(f"device key name {name!r}: {exc}") from exc
    try:
        write_file_atomic(
            keys_dir / DEVICE_KEY_FILE,
            (signer.private_key_string() + "\n").encode(),
            mode=0o600,
            overwrite=False,
        )
        write_file_atomic(
            keys_dir / DEVICE_VKEY_FILE, (signer.vkey + "\n").encode(), mode=0o644, overwrite=False
        )
    except FileExistsError as exc:
        raise KeyFileError(f"{exc}") from exc
    return signer.vkey


def _read_key_file(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_KEY_FILE_BYTES + 1)
    except FileNotFoundError as exc:
        raise KeyFileError(
            f"{path}: missing; run `doorbell init` to create the device key"
        ) from exc
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read ({exc.strerror})") from exc
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"{path}: too large to be a key file")
    try:
        return data.decode("ascii").strip()
    except UnicodeDecodeError as exc:
        raise KeyFileError(f"{path}: not an ASCII key string") from exc


def load_device_signer(keys_dir: Path) -> Signer:
    """Load ``keys_dir/device.key``; refuses a file readable by group or others.

    Raises :class:`KeyFileError` when missing, malformed or too widely readable.
    """
    path = Path(keys_dir) / DEVICE_KEY_FILE
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError as exc:
        raise KeyFileError(
            f"{path}: missing; run `doorbell init` to create the device key"
        ) from exc
    if mode & 0o077:
        raise KeyFileError(f"{path}: mode {mode & 0o777:o} is too open; run chmod 600 {path}")
    try:
        return Signer.from_private_key_string(_read_key_file(path))
    except MalformedNote as exc:
        raise KeyFileError(f"{path}: {exc}") from exc


def load_device_verifier(keys_dir: Path) -> Verifier:
    """Load ``keys_dir/device.vkey``; raises :class:`KeyFileError` when missing or malformed."""
    path = Path(keys_dir) / DEVICE_VKEY_FILE
    try:
        verifier = Verifier.from_vkey(_read_key_file(path))
    except MalformedNote as exc:
        raise KeyFileError(f"{path}: {exc}") from exc
    if verifier.sig_type != 0x01:
        raise KeyFileError(f"{path}: not an Ed25519 signed-note key (type 0x01)")
    return verifier
