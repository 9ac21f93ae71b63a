"""ntfy: an HTTP POST to the owner's own ntfy server, which the ntfy Android app listens to.

One request per alert: the body is the message, headers carry ``Title``, ``Priority`` (1..5),
``Tags`` and ``Click`` (the web UI's address); ``Authorization: Bearer <token>`` when a token
file is configured. No picture, no attachment. Proxies from the environment are ignored and
redirects are refused, so the request goes to the configured host:port and nowhere else.
"""

from __future__ import annotations

import http.client
import ssl
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from doorbell.config import NtfyConfig
from doorbell.errors import NotifyError
from doorbell.notify.alerts import Alert, describe
from doorbell.notify.channel import read_secret, short_error, tls_context


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # a redirect becomes an HTTPError: we only talk to the configured server


class NtfyChannel:
    """Publish alerts to ``config.url`` (a topic on the owner's ntfy server)."""

    name = "ntfy"

    def __init__(self, config: NtfyConfig, *, ui_url: str = "") -> None:
        parts = urlsplit(config.url)
        https = parts.scheme == "https"
        self.url = config.url
        self.destination = f"{parts.hostname}:{parts.port or (443 if https else 80)}"
        self.ui_url = ui_url
        self._token = read_secret(config.token_file, "ntfy.token_file") if config.token_file else ""
        handlers: list[urllib.request.BaseHandler] = [
            urllib.request.ProxyHandler({}),
            _NoRedirect(),
        ]
        if https:
            handlers.append(
                urllib.request.HTTPSHandler(context=tls_context(config.ca_file, "ntfy.ca_file"))
            )
        self._opener = urllib.request.build_opener(*handlers)

    def start(self) -> None:
        """Nothing to do: one request per alert."""

    def close(self) -> None:
        """Nothing to do."""

    def request_for(self, alert: Alert) -> urllib.request.Request:
        """The HTTP request that publishes ``alert`` (headers ASCII only)."""
        wording = describe(alert)
        headers = {
            "Title": wording.title,
            "Priority": str(wording.priority),
            "Tags": ",".join(wording.tags),
            "Content-Type": "text/plain; charset=utf-8",
        }
        if self.ui_url:
            headers["Click"] = self.ui_url
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        body = wording.message.encode("utf-8")
        # the scheme is http(s), checked by doorbell.config (plain http only to loopback)
        return urllib.request.Request(  # noqa: S310
            self.url, data=body, headers=headers, method="POST"
        )

    def send(self, alert: Alert, timeout_s: float) -> None:
        """POST the alert; raises :class:`NotifyError` unless the server answers 2xx."""
        try:
            with self._opener.open(self.request_for(alert), timeout=timeout_s) as response:
                response.read(4096)
        except urllib.error.HTTPError as error:
            raise NotifyError(
                f"ntfy server {self.destination} answered {error.code} {error.reason}"
            ) from None
        except (OSError, ssl.SSLError, http.client.HTTPException) as error:
            raise NotifyError(
                f"ntfy server {self.destination} unreachable: {short_error(error)}"
            ) from None
