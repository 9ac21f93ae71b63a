"""The specific errors of the age package, one per failed check.

All of them subclass :class:`doorbell.errors.AgeError` (itself a ``ValueError``), so a caller
can catch the family or one precise failure. The grouping follows the C2SP test-vector
outcomes: header failure, HMAC failure, no match, payload failure, armor failure.
"""

from __future__ import annotations

from doorbell.errors import AgeError


class KeyFormatError(AgeError):
    """A recipient or identity string is not a valid age key (Bech32, prefix, length)."""


class HeaderError(AgeError):
    """The header is malformed, non-canonical, or uses an unsupported version or stanza."""


class UnsupportedVersionError(HeaderError):
    """The file is not age v1 (a future or unknown ``age-encryption.org/`` version)."""


class StanzaError(HeaderError):
    """A recipient stanza addressed to one of our identity types is malformed."""


class WorkFactorError(StanzaError):
    """An scrypt stanza asks for a work factor above the identity's allowed maximum."""


class HeaderMacError(AgeError):
    """The header MAC does not match: the header was changed after encryption."""


class NoIdentityMatchError(AgeError):
    """None of the given identities can unwrap the file key (wrong key or passphrase)."""


class PayloadError(AgeError):
    """The encrypted payload failed to decrypt and authenticate."""


class ChunkAuthenticationError(PayloadError):
    """A payload chunk's tag does not verify: the data was changed or damaged."""


class TruncatedError(PayloadError):
    """The payload ends before its final chunk: the file was cut short."""


class TrailingDataError(PayloadError):
    """Bytes follow the final chunk: something was appended to the file."""


class EmptyFinalChunkError(PayloadError):
    """The final chunk is empty although the payload is not (not allowed by age v1)."""


class ArmorError(AgeError):
    """The ASCII armor (PEM ``AGE ENCRYPTED FILE``) is malformed or non-canonical."""


class RecipientError(AgeError):
    """A set of recipients cannot be used together (an scrypt recipient must be alone)."""
