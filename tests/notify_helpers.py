"""Real servers on loopback for the notifier tests: a throwaway CA, Mosquitto (TLS + password
file), an HTTP server that records requests (the ntfy protocol), and an SMTP server
(aiosmtpd, STARTTLS + AUTH)."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from conftest import require_tool
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

MOSQUITTO = "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class TlsFiles:
    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def make_tls(directory: Path) -> TlsFiles:
    """A throwaway CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("doorbell test CA"))
        .issuer_name(_name("doorbell test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(common: str, server: bool) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]
                    if server
                    else [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), key

    files = TlsFiles(
        ca=directory / "ca.pem",
        cert=directory / "server.pem",
        key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
    )
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server_pem, server_key = leaf("127.0.0.1", True)
    files.cert.write_bytes(server_pem)
    _write_key(files.key, server_key)
    client_pem, client_key = leaf("doorbell", False)
    files.client_cert.write_bytes(client_pem)
    _write_key(files.client_key, client_key)
    return files


def server_context(tls: TlsFiles) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls.cert, tls.key)
    return context


class Mosquitto:
    """A real Mosquitto broker on 127.0.0.1:``port``: TLS, a password file, persistence.

    ``require_certificate`` makes it accept only clients with a certificate from the CA
    (then the client certificate's CN is the user name).
    """

    def __init__(
        self,
        directory: Path,
        tls: TlsFiles,
        users: dict[str, str],
        *,
        require_certificate: bool = False,
    ) -> None:
        self.binary = require_tool(MOSQUITTO)
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        passwords = directory / "passwords"
        passwords.write_text("")
        tool = shutil.which("mosquitto_passwd")
        if tool is None:
            require_tool("mosquitto_passwd")
        for user, password in users.items():
            subprocess.run(
                [str(tool), "-b", str(passwords), user, password], check=True, timeout=30
            )
        (directory / "data").mkdir(exist_ok=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"cafile {tls.ca}",
            f"certfile {tls.cert}",
            f"keyfile {tls.key}",
            f"require_certificate {'true' if require_certificate else 'false'}",
            f"use_identity_as_username {'true' if require_certificate else 'false'}",
            f"allow_anonymous {'false' if not require_certificate else 'true'}",
            f"password_file {passwords}",
            "persistence true",
            f"persistence_location {directory / 'data'}/",
            "autosave_interval 1",
            f"log_dest file {directory / 'mosquitto.log'}",
            "log_type all",
            "user root",
        ]
        if require_certificate:
            lines.remove(f"password_file {passwords}")
        self.config = directory / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen: {self.log()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def log(self) -> str:
        path = self.directory / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""


class Subscriber:
    """A paho client subscribed (QoS 1) to ``topic`` that records every message."""

    def __init__(self, broker: Mosquitto, tls: TlsFiles, user: str, password: str) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[tuple[str, bytes, bool, float]] = []
        self._changed = threading.Condition()
        self.connected = threading.Event()
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-subscriber-{os.getpid()}",
            protocol=paho.MQTTv311,
            clean_session=False,
        )
        client.username_pw_set(user, password)
        client.tls_set(ca_certs=str(tls.ca))
        client.reconnect_delay_set(1, 1)

        def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
            if not reason.is_failure:
                client.subscribe("#", qos=1)
                self.connected.set()

        def on_disconnect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
            self.connected.clear()

        def on_message(client: Any, userdata: Any, message: Any) -> None:
            with self._changed:
                self.messages.append(
                    (message.topic, bytes(message.payload), bool(message.retain), time.time())
                )
                self._changed.notify_all()

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_message = on_message
        client.connect_async("127.0.0.1", broker.port, 10)
        client.loop_start()
        self.client = client
        if not self.connected.wait(10):
            raise RuntimeError(f"test subscriber could not connect: {broker.log()}")
        time.sleep(0.2)  # the SUBACK

    def wait_for(self, topic: str, timeout: float = 10.0, count: int = 1) -> list[bytes]:
        def found() -> list[bytes]:
            return [payload for name, payload, _r, _t in self.messages if name == topic]

        with self._changed:
            self._changed.wait_for(lambda: len(found()) >= count, timeout)
            return found()

    def arrival(self, topic: str) -> float | None:
        with self._changed:
            for name, _payload, _retain, at in self.messages:
                if name == topic:
                    return at
        return None

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpRecorder:
    """A small HTTP(S) server on loopback that records every request (ntfy's protocol)."""

    status: int = 200
    tls: TlsFiles | None = None
    location: str = ""
    requests: list[Recorded] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with recorder.changed:
                    recorder.requests.append(
                        Recorded(self.command, self.path, dict(self.headers.items()), body)
                    )
                    recorder.arrivals.append(time.time())
                    recorder.changed.notify_all()
                self.send_response(recorder.status)
                payload = json.dumps({"id": "x", "event": "message"}).encode()
                self.send_header("Content-Type", "application/json")
                if recorder.location:
                    self.send_header("Location", recorder.location)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if self.tls is not None:
            self.server.socket = server_context(self.tls).wrap_socket(
                self.server.socket, server_side=True
            )
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="test-http", daemon=False
        )
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Recorded]:
        with self.changed:
            self.changed.wait_for(lambda: len(self.requests) >= count, timeout)
            return list(self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
