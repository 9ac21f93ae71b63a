"""The one exception tree of doorbell.

Every error the package raises on purpose is a :class:`DoorbellError`, and each one also
subclasses the builtin it most resembles, so callers that only know the standard library
(``except ValueError``) still catch it. Messages say what failed, where, and what to do.
"""


class DoorbellError(Exception):
    """Base of every error doorbell raises on purpose."""


# --- configuration and usage -------------------------------------------------------------


class ConfigError(DoorbellError, ValueError):
    """The configuration file is missing, unreadable or invalid.

    ``problems`` holds one line per problem found, so several are reported at once.
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems) if problems else [message]


class UsageError(DoorbellError, ValueError):
    """A command was called in a way that cannot work (bad flag combination, bad path)."""


# --- files and storage -------------------------------------------------------------------


class StorageError(DoorbellError, OSError):
    """The data directory or index cannot be read or written as needed."""


class DiskFullError(StorageError):
    """There is not enough free space (or quota) to write what was asked."""


class ReplicationError(StorageError):
    """The off-site copy cannot be reached, written or trusted (host key, format, conflict)."""


# --- keys and cryptography -----------------------------------------------------------------


class KeyFileError(DoorbellError, ValueError):
    """A key file is missing, malformed, of the wrong kind or has unsafe permissions."""


class PassphraseError(DoorbellError, ValueError):
    """A passphrase is wrong, or too weak to accept."""


class AgeError(DoorbellError, ValueError):
    """An age file or key could not be parsed, authenticated or decrypted.

    The age package raises specific subclasses (header, MAC, truncation, ...), defined in
    :mod:`doorbell.age.errors`.
    """


# --- audit log ---------------------------------------------------------------------------


class AuditError(DoorbellError, ValueError):
    """The audit log, a checkpoint, a signature or a proof does not verify."""


# --- devices -----------------------------------------------------------------------------


class CameraError(DoorbellError, RuntimeError):
    """The camera cannot be opened, or stopped delivering frames."""


class CameraEnded(CameraError):
    """A finite camera (a video file without loop) has no more frames. Not a fault."""


class GPIOError(DoorbellError, RuntimeError):
    """A GPIO device (button, chime, LED) could not be set up or driven."""


class VideoError(DoorbellError, RuntimeError):
    """Encoding or decoding video failed."""


class RedactionError(DoorbellError, ValueError):
    """A redaction spec is invalid, or the face detector's packaged model cannot be loaded."""


# --- requests and exports ----------------------------------------------------------------


class RequestError(DoorbellError, ValueError):
    """An export request is invalid, unknown, or not in a state that allows the action."""


class NotPermitted(DoorbellError, PermissionError):
    """The caller may not do this (no session, wrong token, expired, over a limit)."""


class Cancelled(DoorbellError, RuntimeError):
    """Work stopped before it finished because the process is shutting down."""


# --- notifications -----------------------------------------------------------------------


class NotifyError(DoorbellError, RuntimeError):
    """An alert could not be delivered: the channel is unreachable, refused it or timed out."""
