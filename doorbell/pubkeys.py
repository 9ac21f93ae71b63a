"""The owner's public keys, as the recorder reads them (privacy invariant 2, docs/architecture.md).

``keys/owner.recipients`` lists the owner's age recipients (``age1...``), one per line. It is
all the recorder needs to encrypt clips, and it is public: this module imports only the
encrypt side of :mod:`doorbell.age`, never identities or :mod:`doorbell.keys`.
"""

from __future__ import annotations

from pathlib import Path

from doorbell.age.errors import KeyFormatError
from doorbell.age.recipients import X25519Recipient, parse_recipients_file
from doorbell.datadir import DataDir
from doorbell.errors import KeyFileError


def keys_dir(data_dir: Path) -> Path:
    """``<data_dir>/keys``."""
    return DataDir(data_dir).keys


def owner_recipients_path(data_dir: Path) -> Path:
    """``<data_dir>/keys/owner.recipients``."""
    return DataDir(data_dir).owner_recipients


def load_owner_recipients(data_dir: Path) -> list[X25519Recipient]:
    """The owner's recipients from ``keys/owner.recipients``.

    Raises :class:`KeyFileError` when the file is missing (run ``doorbell init``), unreadable
    or holds no valid recipient.
    """
    path = owner_recipients_path(data_dir)
    try:
        return parse_recipients_file(path)
    except FileNotFoundError:
        raise KeyFileError(
            f"{path}: no owner recipients file; run `doorbell init --data-dir {data_dir}` first"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: cannot read the owner recipients: {exc}") from None
    except KeyFormatError as exc:
        raise KeyFileError(f"owner recipients are invalid: {exc}") from None
