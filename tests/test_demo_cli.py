"""The demo's command line for a newcomer: options through make, the README, a restart,
a second demo on the same data, the web's own answer to a port in use."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import require_tool
from demo_helpers import free_port

from doorbell.commands.web import build_server, serve
from doorbell.config import parse_config
from doorbell.errors import UsageError
from doorbell.tls import certificate_fingerprint

ROOT = Path(__file__).resolve().parent.parent
DOORBELL = (sys.executable, "-c", "import sys; from doorbell.cli import main; sys.exit(main())")
SMALL = ("--width", "320", "--height", "240", "--fps", "5")


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DOORBELL, "demo", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_make_demo_passes_args_and_the_readme_says_how() -> None:
    make = require_tool("make")
    dry = subprocess.run(
        [make, "-n", "-C", str(ROOT), "demo", "ARGS=--port 18443 --seconds 60"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "scripts/demo --port 18443 --seconds 60" in dry.stdout
    readme = (ROOT / "README.md").read_text()
    assert 'make demo ARGS="--port 18443 --seconds 60"' in readme
    assert ".venv/bin/doorbell" in readme and "source .venv/bin/activate" in readme


def test_a_restart_says_it_reuses_the_data_and_prints_the_fingerprint(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    first = run_demo(
        "--data-dir", str(data_dir), "--port", str(free_port()), "--seconds", "0", *SMALL
    )
    assert first.returncode == 0, first.stdout + first.stderr
    second = run_demo(
        "--data-dir", str(data_dir), "--port", str(free_port()), "--seconds", "0", *SMALL
    )
    assert second.returncode == 0, second.stdout + second.stderr
    passphrase = (data_dir / "DEMO-PASSPHRASE.txt").read_text().strip()
    fingerprint = certificate_fingerprint(data_dir / "tls" / "cert.pem")
    assert "creating keys" not in second.stdout
    assert re.search(
        rf"reusing {re.escape(str(data_dir))}: its keys.*same demo passphrase", second.stdout
    )
    banner = second.stdout.split("doorbell demo running")[1]
    assert f"demo passphrase: {passphrase}" in banner
    assert fingerprint in banner
    assert "see the fingerprint above" not in second.stdout


def test_a_second_demo_on_the_same_data_is_one_line_and_starts_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    data_dir.mkdir()
    with socket.socket(socket.AF_UNIX) as running:  # the first demo's recorder, serving
        running.bind(str(data_dir / "live.sock"))
        running.listen(1)
        result = run_demo("--data-dir", str(data_dir), "--port", str(free_port()))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert output.strip().count("\n") == 0, output
    assert "already running" in output and "running on" in output
    assert "Traceback" not in output and "doorbell demo running" not in output
    assert not (data_dir / "keys").exists()


# cheroot leaves its unbound socket to the garbage collector when bind() fails
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_the_web_server_names_a_port_in_use(tmp_path: Path) -> None:
    config = parse_config(
        {"web": {"tls": False, "port": 1}, "storage": {"data_dir": str(tmp_path)}}
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        server = build_server(lambda environ, start: [], config, tmp_path, port=port)
        with pytest.raises(
            UsageError, match=rf"port {port} on 127.0.0.1 is already in use.*--port"
        ):
            serve(server, threading.Event())


@pytest.mark.parametrize("tls", [False, True])
def test_a_stalled_stream_does_not_hold_the_web_server_stop(tmp_path: Path, tls: bool) -> None:
    """A paused video: the client keeps the connection and stops reading, the worker blocks
    in send. Stopping the server still takes seconds, not the 30 s socket timeout."""
    import ssl
    import time

    from doorbell.tls import create_self_signed_certificate

    if tls:
        create_self_signed_certificate(tmp_path, ["doorbell.local"], clock=time.time)
    config = parse_config({"web": {"tls": tls}, "storage": {"data_dir": str(tmp_path)}})
    chunk = b"\0" * 65536

    def endless(environ: dict, start_response) -> object:
        start_response("200 OK", [("Content-Type", "video/mp4")])
        return iter(lambda: chunk, None)

    server = build_server(endless, config, tmp_path, port=free_port())
    stop = threading.Event()
    serving = threading.Thread(target=serve, args=(server, stop), name="test-web", daemon=False)
    serving.start()
    deadline = time.monotonic() + 10
    client = None
    while client is None:
        try:
            client = socket.create_connection(server.bind_addr, timeout=10)
        except ConnectionRefusedError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    try:
        if tls:
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            client = context.wrap_socket(client)
        client.sendall(b"GET /clip.mp4 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        client.recv(1024)  # the response started; now the "browser" pauses
        time.sleep(1.0)  # every buffer on the way fills up, the worker blocks in send
        started = time.monotonic()
        stop.set()
        serving.join(timeout=20)
        took = time.monotonic() - started
    finally:
        client.close()
    assert not serving.is_alive()
    assert took < 4.0, f"stop took {took:.1f} s"
