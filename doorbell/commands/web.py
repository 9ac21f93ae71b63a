"""``doorbell web``: serve the owner's web UI with TLS, in one process with a thread pool.

One process on purpose: the owner identity, once unlocked, lives in this process's memory
(per session) and nowhere else. Several worker processes would each need their own unlock,
or a way to share the key between processes, which is exactly what we must not build.
Threads serve concurrent requests (cheroot's pool); decryption releases the GIL in
``cryptography``, so playback of several clips still overlaps. See docs/web.md.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any

import click

from doorbell.commands.options import config_options, load_cli_config
from doorbell.config import Config
from doorbell.datadir import DataDir
from doorbell.errors import KeyFileError, UsageError

log = logging.getLogger(__name__)

#: Worker threads: a few browsers, each with a handful of parallel requests, plus live streams.
THREADS = 24
#: Seconds the workers get to finish their responses at shutdown before connections are cut.
STOP_GRACE_S = 1.5


def build_server(app: Any, config: Config, data_dir: Path, *, port: int | None = None) -> Any:
    """A cheroot WSGI server for ``app`` on ``web.bind``:``web.port`` (``port`` overrides),
    with TLS from ``<data_dir>/tls`` when ``web.tls`` is on, hardened by
    :mod:`doorbell.webserver` (header limit and deadline, per-address connection cap).

    Raises :class:`KeyFileError` when TLS is on and the certificate or key is missing.
    """
    from doorbell.ui.serverlog import quiet_server_errors
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
        cert, key = DataDir(data_dir).tls_cert, DataDir(data_dir).tls_key
        for path in (cert, key):
            if not path.is_file():
                raise KeyFileError(f"{path}: missing; run `doorbell init` (or set web.tls = false)")
        server.ssl_adapter = DeferredHandshakeAdapter(str(cert), str(key))
    quiet_server_errors(server)  # client disconnects: one DEBUG line, no traceback
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
    Raises :class:`UsageError` if the address is in use or the server thread dies on its own.
    """
    try:
        server.prepare()
    except OSError as error:
        raise UsageError(_bind_problem(server.bind_addr, error)) from None
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
        _stop_within(server, STOP_GRACE_S)
        thread.join()


def _stop_within(server: Any, grace_s: float) -> None:
    """``server.stop()``, cutting the connections still busy after ``grace_s`` seconds.

    A worker blocked sending to a client that stopped reading (a paused video keeps its
    connection open with a full window) would hold cheroot's stop for the socket timeout;
    shutting that connection down makes its send fail at once.
    """
    # cheroot keeps no public list of busy connections; its thread pool's workers hold
    # them (and stop() empties that list: take it first)
    workers = list(getattr(server.requests, "_threads", ()))
    stopper = threading.Thread(target=server.stop, name="web-server-stop", daemon=False)
    stopper.start()
    stopper.join(grace_s)
    if stopper.is_alive():
        for worker in workers:
            connection = getattr(worker, "conn", None)
            if connection is not None:
                _shut_down(connection.socket)
        stopper.join()


def _shut_down(sock: Any) -> None:
    """Shut a (TLS) connection down from another thread, through a duplicate descriptor:
    the TLS object of the thread using it is left alone, its next send or receive fails."""
    try:
        duplicate = socket.socket(fileno=os.dup(sock.fileno()))
    except OSError:
        return  # already closed
    with duplicate, contextlib.suppress(OSError):
        duplicate.shutdown(socket.SHUT_RDWR)


def _bind_problem(address: Any, error: OSError) -> str:
    """One line for a listening socket that could not be made (usually: port in use)."""
    host, port = (address[0], address[1]) if isinstance(address, tuple) else (address, "")
    if "in use" in str(error) or error.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is already in use (another doorbell web or demo?): "
            "stop it, or choose another port (web.port in the configuration, --port for "
            "`doorbell demo`)"
        )
    return f"cannot listen on {host} port {port}: {error}"


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
        # Lock first: the shutdown is audited (web.locked) before anything can hang; the
        # live event streams end when their session locks, and the frame polls when the
        # live feed closes, so every worker is free before the server waits for them.
        state.sessions.lock_all("shutdown")
        if state.live is not None:
            state.live.close()  # wakes the frame long polls

    try:
        server = build_server(app, config, config.data_dir)
        with StopSignals() as signals:
            serve(server, signals.event, ready=ready, stopping=stopping)
    finally:
        close_app(app)
    click.echo("doorbell web: stopped; every session is locked", err=True)
