"""The data directory: every path below it, spelled once.

Layout (see docs/formats.md for what each file holds)::

    keys/owner.key.age        the owner identity, sealed with the passphrase (web only)
    keys/owner.recipients     the owner's public age recipients (what the recorder encrypts to)
    keys/device.key           the device's Ed25519 signing key for the audit log
    keys/device.vkey          its public verifier key
    keys/owner-cosigner.vkey  the owner's public cosigner key (what verifiers pin)
    index.sqlite3             the index of clips and events (doorbell.store)
    audit.sqlite3             the signed audit log (doorbell.audit.log)
    exports.sqlite3           the export registry (doorbell.exports)
    owner/owner-anchor        the last audit head the owner cosigned (web user only, 0700 dir)
    settings.toml             the owner's settings from the web UI
    clips/YYYY/MM/DD/<id>.mp4.age, thumbs/<id>.jpg.age    encrypted footage
    exports/                  export bundles being built or waiting for download
    tls/cert.pem, tls/key.pem the web UI's self-signed certificate

Modules take a data dir and ask a :class:`DataDir` for the path they need, so a file name
lives here and nowhere else. This module imports nothing from doorbell: anything may use it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

KEYS_DIR = "keys"
OWNER_KEY_FILE = "owner.key.age"
OWNER_RECIPIENTS_FILE = "owner.recipients"
DEVICE_KEY_FILE = "device.key"
DEVICE_VKEY_FILE = "device.vkey"
OWNER_COSIGNER_VKEY_FILE = "owner-cosigner.vkey"
INDEX_FILE = "index.sqlite3"
AUDIT_DB_FILE = "audit.sqlite3"
EXPORTS_INDEX_FILE = "exports.sqlite3"
#: the web user's own directory (0700), hidden from the recorder's unit
OWNER_DIR = "owner"
#: the owner anchor, relative to the data dir
ANCHOR_FILE = f"{OWNER_DIR}/owner-anchor"
#: where data dirs made before the owner directory kept it (read once, then moved)
LEGACY_ANCHOR_FILE = "owner-anchor"
SETTINGS_FILE = "settings.toml"
CLIPS_DIR = "clips"
THUMBS_DIR = "thumbs"
EXPORTS_DIR = "exports"
TLS_DIR = "tls"
TLS_CERT_FILE = "cert.pem"
TLS_KEY_FILE = "key.pem"
#: The owner key file as audit entries name it (their ``object``), relative to the data dir.
OWNER_KEY_OBJECT = f"{KEYS_DIR}/{OWNER_KEY_FILE}"


@dataclass(frozen=True)
class DataDir:
    """The paths of one data directory rooted at ``root`` (nothing is created or checked)."""

    root: Path

    def __init__(self, root: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def keys(self) -> Path:
        """``keys/``: owner and device keys."""
        return self.root / KEYS_DIR

    @property
    def owner_key(self) -> Path:
        """``keys/owner.key.age``: the passphrase-sealed owner identity."""
        return self.keys / OWNER_KEY_FILE

    @property
    def owner_cosigner_vkey(self) -> Path:
        """``keys/owner-cosigner.vkey``: the owner's public cosigner key, written at init."""
        return self.keys / OWNER_COSIGNER_VKEY_FILE

    @property
    def owner_recipients(self) -> Path:
        """``keys/owner.recipients``: the owner's public recipients."""
        return self.keys / OWNER_RECIPIENTS_FILE

    @property
    def device_key(self) -> Path:
        """``keys/device.key``: the device's audit signing key."""
        return self.keys / DEVICE_KEY_FILE

    @property
    def device_vkey(self) -> Path:
        """``keys/device.vkey``: the device's audit verifier key."""
        return self.keys / DEVICE_VKEY_FILE

    @property
    def index(self) -> Path:
        """``index.sqlite3``: clips and events."""
        return self.root / INDEX_FILE

    @property
    def audit(self) -> Path:
        """``audit.sqlite3``: the audit log."""
        return self.root / AUDIT_DB_FILE

    @property
    def exports_index(self) -> Path:
        """``exports.sqlite3``: the export registry."""
        return self.root / EXPORTS_INDEX_FILE

    @property
    def owner_dir(self) -> Path:
        """``owner/``: the web user's own directory (0700), hidden from the recorder."""
        return self.root / OWNER_DIR

    @property
    def owner_anchor(self) -> Path:
        """``owner/owner-anchor``: the last audit head the owner cosigned."""
        return self.root / ANCHOR_FILE

    @property
    def legacy_owner_anchor(self) -> Path:
        """``owner-anchor``: where older data dirs kept the anchor (moved on first write)."""
        return self.root / LEGACY_ANCHOR_FILE

    @property
    def settings(self) -> Path:
        """``settings.toml``: the owner's settings."""
        return self.root / SETTINGS_FILE

    @property
    def clips(self) -> Path:
        """``clips/``: encrypted clips, by day."""
        return self.root / CLIPS_DIR

    @property
    def thumbs(self) -> Path:
        """``thumbs/``: encrypted thumbnails."""
        return self.root / THUMBS_DIR

    @property
    def exports(self) -> Path:
        """``exports/``: export bundles."""
        return self.root / EXPORTS_DIR

    @property
    def tls(self) -> Path:
        """``tls/``: the web UI's certificate and key."""
        return self.root / TLS_DIR

    @property
    def tls_cert(self) -> Path:
        """``tls/cert.pem``."""
        return self.tls / TLS_CERT_FILE

    @property
    def tls_key(self) -> Path:
        """``tls/key.pem``."""
        return self.tls / TLS_KEY_FILE
