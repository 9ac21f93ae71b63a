"""E-mail alerts against a real SMTP server on loopback (aiosmtpd: STARTTLS, TLS, AUTH)."""

from __future__ import annotations

import email
import email.policy
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from notify_helpers import TlsFiles, free_port, make_tls, server_context

from doorbell.audit.entries import decode_entry
from doorbell.audit.log import AuditLog
from doorbell.config import Config, parse_config
from doorbell.errors import NotifyError
from doorbell.notify.alerts import Alert
from doorbell.notify.mail import EmailChannel
from doorbell.notify.service import Notifier

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
from aiosmtpd.smtp import AuthResult, LoginPassword  # noqa: E402

USER, PASSWORD = "doorbell@home.example", "smtp secret 42"


@dataclass
class Mailbox:
    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth: Any) -> Any:
    ok = (
        isinstance(auth, LoginPassword)
        and auth.login == USER.encode()
        and auth.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    return make_tls(tmp_path / "tls")


@pytest.fixture
def smtp_server(tls: TlsFiles) -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = free_port()
    controller = aiosmtpd_controller.Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=server_context(tls),
        require_starttls=True,
        authenticator=_authenticator,
        auth_require_tls=True,
        server_hostname="mail.test",
    )
    controller.start()
    yield mailbox, port
    controller.stop()


def _config(tmp_path: Path, port: int, tls: TlsFiles, **email_keys: Any) -> Config:
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    secret = tmp_path / "smtp-password"
    secret.write_text(email_keys.pop("password", PASSWORD) + "\n")
    section = {
        "enabled": True,
        "host": "127.0.0.1",
        "port": port,
        "ca_file": str(tls.ca),
        "username": USER,
        "password_file": str(secret),
        "sender": "doorbell@home.example",
        "to": ["owner@home.example"],
        **email_keys,
    }
    return parse_config(
        {
            "storage": {"data_dir": str(data_dir)},
            "notify": {"ui_url": "https://doorbell.lan:8443/"},
            "email": section,
        }
    )


def test_starttls_login_and_the_message(
    tmp_path: Path, tls: TlsFiles, smtp_server: tuple[Mailbox, int]
) -> None:
    mailbox, port = smtp_server
    config = _config(tmp_path, port, tls)
    with (
        AuditLog.open(config.data_dir) as audit,
        Notifier(
            config, [EmailChannel(config.email, ui_url=config.notify.ui_url)], audit, live=False
        ) as notifier,
    ):
        notifier.submit(Alert("storage_full", time.time(), "storage_full:1"))
        assert notifier.wait_for_outcome("email", "storage_full", 10) == "sent"
    (sender, recipients, raw) = mailbox.messages[0]
    assert sender == "doorbell@home.example" and recipients == ["owner@home.example"]
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Subject"] == "[doorbell] Storage full"
    body = message.get_body().get_content()  # type: ignore[union-attr]
    assert "storage is full" in body and "https://doorbell.lan:8443/" in body
    assert not message.is_multipart(), "text only: no attachment, no picture"
    with AuditLog.open(config.data_dir) as audit:
        sent = [decode_entry(leaf) for _i, leaf in audit.entries()][-1]
    assert sent["action"] == "notify.sent"
    assert sent["details"]["host"] == f"127.0.0.1:{port}"
    assert PASSWORD not in str(sent)


def test_a_wrong_smtp_password_is_named(
    tmp_path: Path, tls: TlsFiles, smtp_server: tuple[Mailbox, int]
) -> None:
    _mailbox, port = smtp_server
    channel = EmailChannel(_config(tmp_path, port, tls, password="nope").email)
    with pytest.raises(NotifyError, match=r"refused the login .* email.password_file"):
        channel.send(Alert("camera_down", time.time(), "c"), 10.0)


def test_a_server_without_starttls_gets_nothing(tmp_path: Path, tls: TlsFiles) -> None:
    mailbox = Mailbox()
    port = free_port()
    plain = aiosmtpd_controller.Controller(mailbox, hostname="127.0.0.1", port=port)
    plain.start()
    try:
        channel = EmailChannel(_config(tmp_path, port, tls, username="", password_file="").email)
        with pytest.raises(NotifyError, match="does not offer STARTTLS"):
            channel.send(Alert("camera_down", time.time(), "c"), 10.0)
    finally:
        plain.stop()
    assert mailbox.messages == []


def test_implicit_tls(tmp_path: Path, tls: TlsFiles) -> None:
    mailbox = Mailbox()
    port = free_port()
    controller = aiosmtpd_controller.Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        ssl_context=server_context(tls),
        authenticator=_authenticator,
        auth_require_tls=False,  # aiosmtpd does not see implicit TLS as TLS; it is
    )
    controller.start()
    try:
        channel = EmailChannel(_config(tmp_path, port, tls, security="tls").email)
        channel.send(Alert("export_request", time.time(), "request:r1"), 10.0)
    finally:
        controller.stop()
    assert len(mailbox.messages) == 1
