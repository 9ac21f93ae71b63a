"""E-mail through the owner's SMTP server, for slower news (STARTTLS or TLS, optional login).

Never in plain text: with ``security = "starttls"`` a server that does not offer STARTTLS is
refused. The greeting names ``doorbell`` instead of looking up this machine's name (no DNS
query the owner did not configure), and the Message-ID uses the sender's domain.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from doorbell.config import EmailConfig
from doorbell.errors import NotifyError
from doorbell.notify.alerts import Alert, describe
from doorbell.notify.channel import read_secret, short_error, tls_context

HELO_NAME = "doorbell"


class EmailChannel:
    """Send each alert as a short e-mail to ``config.to``."""

    name = "email"

    def __init__(self, config: EmailConfig, *, ui_url: str = "") -> None:
        self.config = config
        self.destination = f"{config.host}:{config.port}"
        self.ui_url = ui_url
        self._password = (
            read_secret(config.password_file, "email.password_file") if config.password_file else ""
        )
        self._context = tls_context(config.ca_file, "email.ca_file")

    def start(self) -> None:
        """Nothing to do: one SMTP session per alert."""

    def close(self) -> None:
        """Nothing to do."""

    def message_for(self, alert: Alert) -> EmailMessage:
        """The e-mail for ``alert``: subject, the kind's message, the link to the UI."""
        wording = describe(alert)
        message = EmailMessage()
        message["From"] = self.config.sender
        message["To"] = ", ".join(self.config.to)
        message["Subject"] = f"[doorbell] {wording.title}"
        message["Date"] = formatdate(alert.time, localtime=True)
        domain = self.config.sender.rpartition("@")[2] or HELO_NAME
        message["Message-ID"] = make_msgid("doorbell", domain=domain)
        link = f"\n\nOpen the doorbell: {self.ui_url}\n" if self.ui_url else "\n"
        message.set_content(wording.message + link)
        return message

    def send(self, alert: Alert, timeout_s: float) -> None:
        """Send the alert's e-mail; raises :class:`NotifyError` on any failure."""
        config = self.config
        try:
            smtp: smtplib.SMTP
            if config.security == "tls":
                smtp = smtplib.SMTP_SSL(
                    config.host,
                    config.port,
                    local_hostname=HELO_NAME,
                    timeout=timeout_s,
                    context=self._context,
                )
            else:
                smtp = smtplib.SMTP(
                    config.host, config.port, local_hostname=HELO_NAME, timeout=timeout_s
                )
            with smtp:
                if config.security == "starttls":
                    smtp.ehlo()
                    if not smtp.has_extn("starttls"):
                        raise NotifyError(
                            f"SMTP server {self.destination} does not offer STARTTLS; "
                            "refusing to send in plain text"
                        )
                    smtp.starttls(context=self._context)
                    smtp.ehlo()
                if config.username:
                    smtp.login(config.username, self._password)
                smtp.send_message(self.message_for(alert))
        except smtplib.SMTPAuthenticationError as error:
            raise NotifyError(
                f"SMTP server {self.destination} refused the login for {config.username!r} "
                f"({error.smtp_code}); check email.username and email.password_file"
            ) from None
        except (OSError, ssl.SSLError, smtplib.SMTPException) as error:
            raise NotifyError(f"SMTP server {self.destination}: {short_error(error)}") from None
