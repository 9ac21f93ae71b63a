"""The layout of an off-site copy (the same on a mounted directory and on an SFTP server).

::

    FORMAT                              "doorbell-replica/v1"
    keys/device.vkey, keys/owner.recipients   public keys (verify the log, name the owner)
    clips/YYYY/MM/DD/<id>.mp4.age       the clip's ciphertext, byte for byte, growing as recorded
    thumbs/<id>.jpg.age                 encrypted thumbnails
    index/clips/<id>.json               the clip's index row (enough to browse and restore)
    index/events/<id>.json              motion events and rings
    audit/                              the audit log as `doorbell audit export` writes it:
      entries.jsonl                     one leaf per line, appended as the log grows
      checkpoints/<size>.note           every checkpoint the device signed (written once)
      cosignatures/<size>-<time>-<key id>.note   every owner cosignature (written once)
      cosigners.vkeys, device.vkey
    owner-anchor                        the sealed owner anchor (ciphertext, docs/audit.md)

Nothing in it is plaintext footage or a secret key: the copy can sit on storage nobody trusts.
"""

from __future__ import annotations

from doorbell.datadir import ANCHOR_FILE, DEVICE_VKEY_FILE

FORMAT_FILE = "FORMAT"
FORMAT_LINE = b"doorbell-replica/v1\n"
AUDIT_DIR = "audit"
ENTRIES_FILE = "audit/entries.jsonl"
CHECKPOINTS_DIR = "audit/checkpoints"
COSIGNATURES_DIR = "audit/cosignatures"
COSIGNERS_FILE = "audit/cosigners.vkeys"
AUDIT_DEVICE_VKEY = f"audit/{DEVICE_VKEY_FILE}"
KEYS_DIR = "keys"
CLIP_ROWS_DIR = "index/clips"
EVENT_ROWS_DIR = "index/events"
ANCHOR_COPY = ANCHOR_FILE


def clip_row_path(clip_id: str) -> str:
    return f"{CLIP_ROWS_DIR}/{clip_id}.json"


def event_row_path(event_id: str) -> str:
    return f"{EVENT_ROWS_DIR}/{event_id}.json"


def checkpoint_path(size: int) -> str:
    return f"{CHECKPOINTS_DIR}/{size}.note"
