"""The one typed way into the web app's shared state: :func:`web_state`.

:class:`doorbell.ui.WebState` lives in ``app.extensions["doorbell"]``; every blueprint asks
:func:`web_state` for it instead of reading the untyped extensions dict. :class:`LiveFeed`
is what the pages need of the live view (:class:`doorbell.ui.live.LiveHub`, or a test's).
"""

from __future__ import annotations

import queue
from typing import TYPE_CHECKING, Any, Protocol

from flask import current_app

if TYPE_CHECKING:
    from doorbell.live.wire import LiveMessage
    from doorbell.localtime import LocalTime
    from doorbell.ui import WebState


class LiveFeed(Protocol):
    """The recorder's live frames and events, as the web pages read them."""

    @property
    def recording(self) -> bool:
        """True while the recorder says it is recording."""
        ...

    @property
    def last_event(self) -> dict[str, Any] | None:
        """The latest event the recorder published, if any."""
        ...

    def frame(self, after_seq: int, timeout: float) -> LiveMessage | None:
        """The newest frame with a higher sequence number, waiting up to ``timeout`` s."""
        ...

    def connected(self) -> bool:
        """True while the recorder's socket is connected."""
        ...

    def listen(self) -> queue.Queue[dict[str, Any]] | None:
        """A new event queue, or None when too many streams are open."""
        ...

    def forget(self, waiting: queue.Queue[dict[str, Any]]) -> None:
        """Drop a queue :meth:`listen` returned."""
        ...

    def close(self) -> None:
        """Stop receiving."""
        ...


def web_state() -> WebState:
    """The :class:`~doorbell.ui.WebState` of the app handling the current request.

    Raises :class:`RuntimeError` outside an app context, as Flask's ``current_app`` does,
    and :class:`TypeError` if the app was not built by :func:`doorbell.ui.create_app`.
    """
    from doorbell.ui import WebState

    state = current_app.extensions["doorbell"]
    if not isinstance(state, WebState):
        raise TypeError(f"app.extensions['doorbell'] is {type(state).__name__}, not WebState")
    return state


def local_time() -> LocalTime:
    """The pages' time zone (``web.timezone``, default the system's) of the current app."""
    from doorbell.localtime import LocalTime

    local = current_app.extensions["doorbell_localtime"]
    if not isinstance(local, LocalTime):
        raise TypeError(f"app.extensions['doorbell_localtime'] is {type(local).__name__}")
    return local
