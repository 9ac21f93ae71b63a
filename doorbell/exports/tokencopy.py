"""The owner's copy of a requester's status token: encrypted to the owner's age recipients.

The export registry keeps only a hash of each requester's access token, so a disk thief
cannot get a working status or download link. The owner's request page still shows the
requester's status link (to hand it over again when it is lost), so at submission the token
is also stored encrypted to the owner's recipients (``keys/owner.recipients``, public keys
the web process and the CLI can read). Only an unlocked owner session holds an identity
that opens it, and opens it in memory; nothing here writes the token anywhere else.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from doorbell.age.decrypt import decrypt
from doorbell.age.encrypt import encrypt
from doorbell.age.identities import Identity
from doorbell.age.recipients import Recipient
from doorbell.errors import KeyFileError

#: Most plaintext read back from a copy (a token is 43 characters).
_MAX_TOKEN_BYTES = 256


def seal_token(token: str, recipients: Sequence[Recipient]) -> bytes:
    """``token`` as an age file (binary) for ``recipients``; raises AgeError for none."""
    sink = io.BytesIO()
    with encrypt(sink, recipients) as writer:
        writer.write(token.encode("ascii"))
    return sink.getvalue()


def owner_copy(data_dir: Path, token: str) -> bytes | None:
    """``token`` sealed to the owner's recipients of ``data_dir``; None when the data dir has
    no usable ``keys/owner.recipients`` (not set up with ``doorbell init``): a request is
    never refused for that, its page then says that no link copy was kept."""
    from doorbell.pubkeys import load_owner_recipients

    try:
        recipients = load_owner_recipients(data_dir)
    except KeyFileError:
        return None
    return seal_token(token, recipients)


def open_token(sealed: bytes, identity: Identity) -> str:
    """The text in ``sealed``, decrypted in memory with the owner's ``identity`` (at most
    256 characters; the caller checks it against the request's token hash).

    Raises :class:`~doorbell.errors.AgeError` (e.g. ``NoIdentityMatchError`` when it was
    sealed to a key the owner no longer holds).
    """
    plain = decrypt(io.BytesIO(sealed), identity).read(_MAX_TOKEN_BYTES)
    return plain.decode("ascii", errors="replace")
