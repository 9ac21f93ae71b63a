"""cheroot's error output, routed to :mod:`logging` so a normal visit leaves a quiet terminal.

cheroot writes every problem straight to stderr, with a traceback: a browser leaving a
video or the live page mid-stream (``SSLEOFError``, broken pipe), or aborting the TLS
handshake over the self-signed certificate, prints dozens of lines the owner can do nothing
about. Those are client disconnects: they are logged at DEBUG, one line each. Anything else
keeps its level and its traceback, through the ``doorbell.web.server`` logger.
"""

from __future__ import annotations

import logging
import ssl
import sys
from typing import Any

log = logging.getLogger("doorbell.web.server")

#: Message starts cheroot uses for a peer that went away (see cheroot/connections.py).
_DISCONNECT_MESSAGES = ("Client ",)
#: Exceptions that mean "the client went away", not "the server is broken".
_DISCONNECT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,  # reset, aborted, broken pipe
    ssl.SSLError,  # the peer's TLS failed: EOF mid-stream, bad certificate alert, version
    TimeoutError,
)


def is_client_disconnect(message: str, error: BaseException | None) -> bool:
    """True when cheroot reports a client that left (or never finished the handshake)."""
    if error is not None:
        # cheroot's FatalSSLAlert: a handshake the browser aborted
        return isinstance(error, _DISCONNECT_ERRORS) or (type(error).__name__ == "FatalSSLAlert")
    return message.startswith(_DISCONNECT_MESSAGES)


def error_log(msg: str = "", level: int = logging.INFO, traceback: bool = False) -> None:
    """Drop-in for ``cheroot.server.HTTPServer.error_log`` (same signature)."""
    error = sys.exc_info()[1] if traceback else None
    if is_client_disconnect(str(msg), error):
        detail = f": {type(error).__name__}: {error}" if error is not None else ""
        log.debug("client disconnected: %s%s", " ".join(str(msg).split()), detail)
        return
    log.log(level, "%s", msg, exc_info=error if traceback else None)


def quiet_server_errors(server: Any) -> None:
    """Make ``server`` (a cheroot server) report through :func:`error_log`."""
    server.error_log = error_log
