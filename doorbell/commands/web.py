"""``doorbell web``: serve the owner's web UI with TLS, in one process with a thread pool.

One process on purpose: the owner identity, once unlocked, lives in this process's memory
(per session) and nowhere else. Several worker processes would each need their own unlock,
or a way to share the key between processes, which is exactly what we must not build.
Threads serve concurrent requests (cheroot's pool); decryption releases the GIL in
``cryptography``, so playback of several clips still overlaps. See docs/web.md.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import click

from doorbell.commands.options import config_options, load_cli_config
from doorbell.config import Config
from doorbell.errors import KeyFileError, UsageError

log = logging.getLogger(__name__)

#: Worker threads: a few browsers, each with a handful of parallel requests, plus live streams.
THREADS = 24


def build_server(app: Any, config: Config, data_dir: Path, *, port: int | None = None) -> Any:
    """A cheroot WSGI server for ``app`` on ``web.bind``:``web.port`` (``port`` overrides),
    with TLS from ``<data_dir>/tls`` when ``web.tls`` is on, hardened by
    :mod:`doorbell.webserver` (header limit and deadline, per-address connection cap).

    Raises :class:`KeyFileError` when TLS is on and the certificate or key is missing.
    """
    from doorbell.tls import CERT_FILE, KEY_FILE, TLS_DIR
    from doorbell.webserver import DeferredHandshakeAdapter, GuardedServer

    address = (config.web.bind, config.web.port if port is None else port)
    server = GuardedServer(
        address,
        app,
        numthreads=THREADS,
        server_name="doorbell",
        request_queue_size=64,
        timeout=30,
        shutdown_timeout=5,
    )
    if config.web.tls:
        cert, key = data_dir / TLS_DIR / CERT_FILE, data_dir / TLS_DIR / KEY_FILE
        for path in (cert, key):
            if not path.is_file():
                raise KeyFileError(f"{path}: missing; run `doorbell init` (or set web.tls = false)")
        server.ssl_adapter = DeferredHandshakeAdapter(str(cert), str(key))
    return server


def _notifier() -> Any:
    try:
        from doorbell.service import Notifier
    except ImportError:  # pragma: no cover - service.py ships with doorbell
        return None
    return Notifier()


def serve(server: Any, stop: threading.Event, *, ready: Any = None, stopping: Any = None) -> None:
    """Run ``server`` on a named thread until ``stop`` is set, then stop it and join.

    ``ready()`` is called once the socket listens, ``stopping()`` when shutdown begins.
    Raises :class:`UsageError` if the server thread dies on its own.
    """
    server.prepare()
    if ready is not None:
        ready()
    thread = threading.Thread(target=server.serve, name="web-server", daemon=False)
    thread.start()
    try:
        while not stop.wait(0.5):
            if not thread.is_alive():
                raise UsageError("the web server stopped unexpectedly")
    finally:
        if stopping is not None:
            stopping()
        server.stop()
        thread.join()


@click.command("web")
@config_options
def web(config_path: Path | None, data_dir: Path | None) -> None:
    """Serve the owner's web UI (HTTPS with the certificate from `doorbell init`).

    Runs until SIGTERM or Ctrl-C. Unlocking keeps the owner key in this process's memory
    only; stopping the process locks every session.
    """
    from doorbell.service import StopSignals
    from doorbell.ui import close_app, create_app

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = load_cli_config(config_path, data_dir)
    app = create_app(config)
    state = app.extensions["doorbell"]
    scheme = "https" if config.web.tls else "http"
    url = f"{scheme}://{config.web.bind}:{config.web.port}/"
    notifier = _notifier()

    def ready() -> None:
        click.echo(f"doorbell web: serving {url}", err=True)
        if state.tls_fingerprint:
            click.echo(f"  certificate SHA-256: {state.tls_fingerprint}", err=True)
        if notifier is not None:
            notifier.ready(f"serving {url}")

    def stopping() -> None:
        if notifier is not None:
            notifier.stopping("locking every session and stopping")

    try:
        server = build_server(app, config, config.data_dir)
        with StopSignals() as signals:
            serve(server, signals.event, ready=ready, stopping=stopping)
    finally:
        close_app(app)
    click.echo("doorbell web: stopped; every session is locked", err=True)
