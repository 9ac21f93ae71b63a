"""Run `doorbell demo` the way a person does: on a terminal (a pty), reading its output,
typing Enter and Ctrl-C; and a small HTTPS client that keeps its session cookie."""

from __future__ import annotations

import http.client
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

from doorbell.audit.entries import decode_entry
from doorbell.audit.log import AuditLog

#: Ask the kernel for a controlling terminal: a new session, then open the pty by name.
_ON_A_TERMINAL = (
    "import os, sys; os.setsid(); os.close(os.open(os.ttyname(0), os.O_RDWR)); "
    "from doorbell.cli import main; sys.exit(main())"
)
BANNER_END = "Ctrl-C to stop"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class DemoOnATerminal:
    """`doorbell demo ARGS` with a pty as its controlling terminal (stdin, stdout, stderr)."""

    def __init__(self, *args: str) -> None:
        self.master, slave = os.openpty()
        self.process = subprocess.Popen(
            [sys.executable, "-c", _ON_A_TERMINAL, "demo", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            close_fds=True,
        )
        os.close(slave)
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="demo-pty-reader", daemon=False)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # EIO: every writer of the pty is gone
                return
            if not chunk:
                return
            with self._lock:
                self._chunks.append(chunk)

    @property
    def output(self) -> str:
        with self._lock:
            return b"".join(self._chunks).decode("utf-8", "replace").replace("\r\n", "\n")

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def ctrl_c(self) -> None:
        os.write(self.master, b"\x03")  # the terminal turns it into SIGINT for its foreground

    def wait_for(self, text: str, timeout_s: float = 120.0, *, count: int = 1) -> None:
        deadline = time.monotonic() + timeout_s
        while self.output.count(text) < count:
            if self.process.poll() is not None:
                time.sleep(0.2)  # let the reader catch the last words
                if self.output.count(text) >= count:
                    return
                raise AssertionError(f"demo exited ({self.process.returncode}):\n{self.output}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not seen in {timeout_s} s:\n{self.output}")
            time.sleep(0.05)

    def wait(self, timeout_s: float) -> int:
        code = self.process.wait(timeout=timeout_s)
        self._reader.join(timeout=5)
        return code

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=5)
        os.close(self.master)


class Browser:
    """HTTPS to the demo with its self-signed certificate, one session cookie."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}
        self.context = ssl.create_default_context()
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE

    def connect(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context, timeout=30)

    def _headers(self) -> dict[str, str]:
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return {"Cookie": cookie} if cookie else {}

    def _remember(self, response: http.client.HTTPResponse) -> None:
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                self.cookies[key] = rest.split(";", 1)[0]

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, bytes]:
        connection = self.connect()
        headers = self._headers()
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        self._remember(response)
        data = response.read()
        connection.close()
        return response.status, data

    def unlock(self, passphrase: str) -> None:
        from urllib.parse import urlencode

        _status, page = self.request("GET", "/unlock")
        match = re.search(rb'name="csrf_token" value="([^"]+)"', page)
        if match is None:
            raise AssertionError("no CSRF token on /unlock")
        form = urlencode({"csrf_token": match.group(1).decode(), "passphrase": passphrase})
        status, _ = self.request("POST", "/unlock", form)
        if status != 302:
            raise AssertionError(f"unlock answered {status}")

    def open_stream(self, path: str) -> tuple[ssl.SSLSocket, bytes]:
        """Start a streaming GET and read its first bytes; the caller keeps it or drops it
        (``close()`` without a TLS goodbye: a browser leaving mid-stream)."""
        sock = self.open_wait(path)
        first = b""
        while b"\r\n\r\n" not in first:
            piece = sock.recv(4096)
            if not piece:
                break
            first += piece
        head, _, body = first.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            sock.close()
            raise AssertionError(f"{path} answered {head[:60]!r}")
        return sock, body or sock.recv(64)

    def open_wait(self, path: str) -> ssl.SSLSocket:
        """Send a GET and do not read the answer (a long poll in progress)."""
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        try:
            sock = self.context.wrap_socket(raw)
        except BaseException:
            raw.close()
            raise
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n\r\n".encode())
        return sock


def audit_actions(data_dir: Path) -> list[dict[str, object]]:
    with AuditLog.open_readonly(data_dir) as log:
        return [decode_entry(leaf) for _, leaf in log.entries(0)]
