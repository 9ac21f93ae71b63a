"""A real ``doorbell web`` on loopback, and the raw HTTP a hostile LAN device would send.

The site is what `doorbell init` makes (real owner key file at a small scrypt work factor,
device key, anchor, TLS certificate); the server is ``doorbell web`` as a child process.
Clients speak HTTPS with :mod:`http.client` and may pick their source address among
127.0.0.0/8, which Linux routes to loopback, so "many addresses" needs no network setup.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from stress_helpers import start_doorbell, stderr_tail
from ui_helpers import owner_init

from doorbell.audit.devicekey import create_device_key
from doorbell.keys import create_owner_keys, derive_owner_cosigning_key
from doorbell.tls import create_self_signed_certificate
from doorbell.ui.vault import OwnerKeys

PASSPHRASE = "purple-otter canvas 7 migrate lantern"
OWNER_ADDRESS = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_site(root: Path, *, data_dir: Path | None = None, **web: object) -> tuple[Path, Path]:
    """A data dir with real keys and certificate, and a config serving it on a free port."""
    data_dir = data_dir or root / "data"
    data_dir.mkdir(exist_ok=True)
    identity = create_owner_keys(data_dir, PASSPHRASE, work_factor=10)
    create_device_key(data_dir / "keys", "doorbell.test/attack")
    owner_init(data_dir, OwnerKeys(identity, derive_owner_cosigning_key(identity)))
    create_self_signed_certificate(data_dir, ["localhost"], clock=time.time)
    settings = {"port": free_port(), "tls": True, **web}
    lines = [f"[storage]\ndata_dir = {str(data_dir)!r}\nmin_free_gb = 0.0\n", "[web]"]
    lines += [f"{key} = {_toml(value)}" for key, value in settings.items()]
    lines.append(f"[live]\nsocket_path = {str(root / 'live.sock')!r}")
    config = root / "doorbell.toml"
    config.write_text("\n".join(lines) + "\n")
    return data_dir, config


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value).replace("'", '"')
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


def port_of(config: Path) -> int:
    match = re.search(r"^port = (\d+)$", config.read_text(), re.MULTILINE)
    assert match is not None
    return int(match.group(1))


@dataclass
class WebProcess:
    process: subprocess.Popen
    port: int

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        tail = stderr_tail(self.process)
        log = getattr(self.process, "stderr_log", None)
        if log is not None:
            log.close()
        return tail


def start_web(config: Path) -> WebProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("NOTIFY_SOCKET", None)
    process = start_doorbell("web", "--config", str(config), env=env)
    web = WebProcess(process, port_of(config))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"doorbell web exited: {web.stop()}")
        try:
            socket.create_connection(("127.0.0.1", web.port), timeout=0.5).close()
            return web
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"doorbell web did not listen: {web.stop()}")


def tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Browser:
    """One HTTPS client with a cookie jar, from ``source`` (an address in 127.0.0.0/8)."""

    port: int
    source: str = OWNER_ADDRESS
    timeout_s: float = 30.0
    host: str = "localhost"
    cookies: dict[str, str] = field(default_factory=dict)

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None, **headers: str
    ) -> Response:
        from urllib.parse import urlencode

        connection = http.client.HTTPSConnection(
            "127.0.0.1",
            self.port,
            timeout=self.timeout_s,
            context=tls_context(),
            source_address=(self.source, 0),
        )
        try:
            sent = {"Host": f"{self.host}:{self.port}", **headers}
            if self.cookies:
                sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            body = None
            if form is not None:
                body = urlencode(form).encode()
                sent["Content-Type"] = "application/x-www-form-urlencoded"
            connection.request(method, path, body=body, headers=sent)
            answer = connection.getresponse()
            data = answer.read()
            for name, value in answer.getheaders():
                if name.lower() == "set-cookie":
                    pair = value.split(";", 1)[0]
                    key, _, cookie = pair.partition("=")
                    if cookie:
                        self.cookies[key.strip()] = cookie.strip()
                    else:
                        self.cookies.pop(key.strip(), None)
            return Response(answer.status, {k.lower(): v for k, v in answer.getheaders()}, data)
        finally:
            connection.close()

    def form_token(self, path: str = "/unlock") -> str:
        page = self.request("GET", path)
        match = re.search(rb'name="csrf_token" value="([^"]+)"', page.body)
        if match is None:
            raise AssertionError(f"no CSRF token on {path}: {page.status} {page.body[:300]!r}")
        return match.group(1).decode()

    def unlock(self, passphrase: str = PASSPHRASE, token: str | None = None) -> Response:
        token = token if token is not None else self.form_token()
        return self.request("POST", "/unlock", {"csrf_token": token, "passphrase": passphrase})


def unlocked(answer: Response) -> bool:
    """A successful unlock redirects to the timeline."""
    return answer.status == 302 and "/unlock" not in answer.headers.get("location", "")


def timed_unlock(port: int, source: str = OWNER_ADDRESS) -> tuple[Response, float]:
    browser = Browser(port, source)
    started = time.monotonic()
    answer = browser.unlock()
    return answer, time.monotonic() - started
