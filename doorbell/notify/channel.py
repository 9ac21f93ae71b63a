"""What every channel is: a name, one destination, ``send`` that raises or returns."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Protocol

from doorbell.errors import ConfigError
from doorbell.notify.alerts import Alert

#: A secret file larger than this is not a password or a token.
MAX_SECRET_BYTES = 4096


class Channel(Protocol):
    """A way to reach the owner. ``destination`` is ``host:port``: what the audit log names."""

    name: str
    destination: str

    def start(self) -> None:
        """Connect or prepare; must not block for long (persistent connections connect in
        the background)."""

    def send(self, alert: Alert, timeout_s: float) -> None:
        """Deliver ``alert`` within ``timeout_s`` seconds or raise :class:`NotifyError`."""

    def close(self) -> None:
        """Disconnect; safe to call twice."""


def read_secret(path: str, key: str) -> str:
    """The first line of the secret file ``path`` (config key ``key``), without its newline.

    Raises :class:`ConfigError` naming the key when the file cannot be read or is empty.
    """
    try:
        raw = Path(path).read_bytes()[: MAX_SECRET_BYTES + 1]
    except OSError as error:
        raise ConfigError(
            f"{key}: cannot read {path} ({error.strerror or error}); the notifier's user "
            "must be able to read it"
        ) from error
    if len(raw) > MAX_SECRET_BYTES:
        raise ConfigError(f"{key}: {path} is larger than {MAX_SECRET_BYTES} bytes")
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise ConfigError(f"{key}: {path} is not UTF-8 text") from None
    if not lines or not lines[0]:
        raise ConfigError(f"{key}: {path} is empty")
    return lines[0]


def tls_context(ca_file: str, key: str) -> ssl.SSLContext:
    """A verifying TLS client context; ``ca_file`` (config key ``key``) replaces the system CAs.

    Raises :class:`ConfigError` when the CA file cannot be loaded.
    """
    try:
        return ssl.create_default_context(cafile=ca_file or None)
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(f"{key}: cannot load {ca_file}: {error}") from error


def short_error(error: BaseException) -> str:
    """A one-line description of a delivery error for logs and audit entries (200 chars)."""
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return " ".join(text.split())[:200]
