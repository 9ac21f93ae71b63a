"""`doorbell demo`: the whole product on any machine, in one command.

Creates a demo data dir (keys with a printed demo passphrase, a config for the mock camera),
then runs the recorder and the web UI as two processes, exactly as on a Pi, until Ctrl-C.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import click

from doorbell.commands.demo_processes import Child
from doorbell.datadir import DataDir
from doorbell.errors import UsageError
from doorbell.fsutil import write_file_atomic

DEMO_PASSPHRASE_FILE = "DEMO-PASSPHRASE.txt"  # noqa: S105 - a file name, not a secret
#: A line with only one of these shows the banner again (any other line rings).
SHOW_AGAIN = ("i", "?", "h", "help")


def demo_config(data_dir: Path, port: int, width: int, height: int, fps: int) -> str:
    """The demo's doorbell.toml: mock doorstep camera in real time, UI on localhost only."""
    return f"""# doorbell demo configuration (made by `doorbell demo`)
[camera]
backend = "mock"
scenario = "doorstep"
realtime = true
width = {width}
height = {height}
fps = {fps}

[recording]
pre_roll_s = 3.0
post_roll_s = 4.0
max_clip_s = 60.0

[storage]
data_dir = "{data_dir}"
retention_days = 1
min_free_gb = 0.5

[web]
bind = "127.0.0.1"
port = {port}
tls = true

[live]
socket_path = "{data_dir / "live.sock"}"

[[privacy.masks]]
name = "street (demo privacy mask)"
points = [[0.0, 0.0], [1.0, 0.0], [1.0, 0.12], [0.0, 0.12]]
"""


def _doorbell(*args: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        "import sys; from doorbell.cli import main; sys.exit(main())",
        *args,
    ]


def _prepare(data_dir: Path, port: int, size: tuple[int, int, int]) -> tuple[Path, str]:
    from doorbell.passphrase import generate_passphrase

    data_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
    config_path = data_dir / "doorbell.toml"
    write_file_atomic(config_path, demo_config(data_dir, port, *size).encode(), mode=0o640)
    passphrase_file = data_dir / DEMO_PASSPHRASE_FILE
    if not DataDir(data_dir).owner_recipients.exists():
        passphrase, _bits = generate_passphrase()
        write_file_atomic(passphrase_file, f"{passphrase}\n".encode(), mode=0o600)
        click.echo("demo: creating keys (a real owner would choose the passphrase)")
        init = subprocess.run(
            _doorbell(
                "init", "--config", str(config_path), "--passphrase-file", str(passphrase_file)
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if init.returncode != 0:
            raise click.ClickException(f"doorbell init failed:\n{init.stderr.strip()}")
        click.echo(init.stdout.rstrip())
    else:
        click.echo(
            f"demo: reusing {data_dir}: its keys, recordings and the same demo passphrase "
            "as before (delete that directory, or pass --data-dir, to start afresh)"
        )
    passphrase = passphrase_file.read_text().strip() if passphrase_file.exists() else "(unknown)"
    return config_path, passphrase


def port_problem(port: int, host: str = "127.0.0.1") -> str | None:
    """Why the web UI could not listen on ``host``:``port``, or None when it can."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # the same option cheroot sets: a port in TIME_WAIT is free, a listening one is not
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return (
                    f"port {port} is already in use (another demo or program is serving "
                    f"it): stop it, or choose another port with --port, for example "
                    f'`make demo ARGS="--port {port + 10000 if port < 55535 else 18443}"`'
                )
            return f"cannot listen on {host} port {port}: {error}; choose another with --port"
    return None


def live_socket_problem(path: Path) -> str | None:
    """Why the demo's recorder could not publish on ``path``, or None when it can."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return None  # absent or stale: the recorder replaces a stale socket
    return (
        f"a demo is already running on {path.parent} (its recorder serves {path.name}): "
        "stop it first, or use another --data-dir and --port"
    )


def _fingerprint(data_dir: Path) -> str:
    from doorbell.errors import DoorbellError
    from doorbell.tls import certificate_fingerprint

    try:
        return certificate_fingerprint(DataDir(data_dir).tls_cert)
    except DoorbellError:
        return "(no certificate: run `doorbell init`)"


def banner(data_dir: Path, port: int, passphrase: str, *, web: bool, fingerprint: str) -> str:
    """What a newcomer needs, printed last (and again on request): URL, fingerprint, passphrase."""
    lines = ["", f"doorbell demo running; data in {data_dir}"]
    if web:
        lines += [
            f"  open https://127.0.0.1:{port}/",
            f"  certificate SHA-256 {fingerprint}",
            "    (self-signed: your browser warns once; check this fingerprint, then accept)",
        ]
    else:
        lines.append("  web UI not started (--no-web, or this version has no `doorbell web` yet)")
    lines += [
        f"  demo passphrase: {passphrase}",
        "  press Enter to ring the doorbell; i + Enter shows this again; Ctrl-C to stop",
    ]
    return "\n".join(lines)


class _Stop(Exception):
    """SIGTERM or SIGHUP: stop the demo like Ctrl-C."""


@click.command("demo")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-data"),
    show_default=True,
    help="Demo data directory (created; reused if it exists).",
)
@click.option(
    "--port",
    type=click.IntRange(1024, 65535),
    default=8443,
    show_default=True,
    help="Port of the web UI on 127.0.0.1.",
)
@click.option("--width", type=int, default=1280, show_default=True, help="Mock camera width.")
@click.option("--height", type=int, default=720, show_default=True, help="Mock camera height.")
@click.option("--fps", type=int, default=10, show_default=True, help="Mock camera frame rate.")
@click.option(
    "--seconds",
    type=float,
    default=None,
    help="Stop by itself this many seconds after both processes are up (default: Ctrl-C).",
)
@click.option("--no-web", is_flag=True, help="Run only the recorder (no web UI).")
def demo(
    data_dir: Path,
    port: int,
    width: int,
    height: int,
    fps: int,
    seconds: float | None,
    no_web: bool,
) -> None:
    """Run the demo: mock camera, real encryption, real web UI, on this machine.

    Creates a demo data dir with keys protected by a generated demo passphrase (printed, and
    kept in DEMO-PASSPHRASE.txt inside the demo dir: never do that with real keys), starts
    the recorder on a synthetic doorstep scene and the web UI on https://127.0.0.1:PORT/.
    Within a minute the timeline shows real encrypted events. Press Enter to ring the
    doorbell; Ctrl-C stops both processes cleanly. From `make`: make demo ARGS="--port 18443".
    """
    from doorbell.commands import demo_processes

    data_dir = data_dir.resolve()
    web_available = not no_web and _web_command_exists()
    # Everything that can be in the way is checked before anything starts or is announced.
    problem = live_socket_problem(data_dir / "live.sock")
    if problem is None and web_available:
        problem = port_problem(port)
    if problem is not None:
        raise click.ClickException(problem)
    try:
        config_path, passphrase = _prepare(data_dir, port, (width, height, fps))
    except KeyboardInterrupt:
        raise click.ClickException("demo: interrupted while preparing; nothing started") from None
    previous = {
        signum: signal.signal(signum, _stop_signal) for signum in (signal.SIGTERM, signal.SIGHUP)
    }
    children: list[Child] = []
    failure: str | None = None
    try:
        children.append(
            demo_processes.start_child(
                "recorder", _doorbell("recorder", "--config", str(config_path))
            )
        )
        if web_available:
            children.append(
                demo_processes.start_child("web", _doorbell("web", "--config", str(config_path)))
            )
        click.echo("demo: starting the recorder and the web UI ...")
        demo_processes.wait_until_ready(children)
        text = banner(
            data_dir, port, passphrase, web=web_available, fingerprint=_fingerprint(data_dir)
        )
        click.echo(text)
        _run(children, text, seconds)
    except (KeyboardInterrupt, _Stop):
        click.echo("\ndemo: stopping")
    except UsageError as error:
        failure = str(error)
    finally:
        # a second Ctrl-C must not leave the children running: the stop takes seconds anyway
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.SIG_IGN)
        killed = demo_processes.stop_children(children)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if failure is not None:
        raise click.ClickException(failure)
    if killed:
        raise click.ClickException(f"demo: {', '.join(killed)} did not stop in time; killed")
    failed = {
        child.name: child.process.returncode
        for child in children
        if child.process.returncode not in (0, -signal.SIGTERM)
    }
    if failed:
        raise click.ClickException(f"demo: process(es) failed: {failed}")
    click.echo("demo: stopped cleanly")


def _run(children: list[Child], text: str, seconds: float | None) -> None:
    """Forward Enter to the recorder as a ring until Ctrl-C, --seconds, or a child exits."""
    from doorbell.commands.demo_processes import read_notifications

    recorder = children[0].process
    stop_at = None if seconds is None else time.monotonic() + seconds
    stdin_fd = _terminal_input()
    pending = b""
    while all(child.process.poll() is None for child in children):
        if stop_at is not None and time.monotonic() >= stop_at:
            return
        read_notifications(children, 0.0)
        if stdin_fd is None:
            time.sleep(0.25)
            continue
        ready, _w, _x = select.select([stdin_fd], [], [], 0.25)
        if not ready:
            continue
        chunk = os.read(stdin_fd, 1024)
        if not chunk:  # end of input (Ctrl-D, a closed pipe): keep running, stop listening
            click.echo("demo: input closed; the demo runs on until Ctrl-C")
            stdin_fd = None
            continue
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip().decode("utf-8", "replace").lower() in SHOW_AGAIN:
                click.echo(text)
            else:
                recorder.send_signal(signal.SIGUSR1)
                click.echo("demo: ding dong (simulated doorbell press)")


def _terminal_input() -> int | None:
    """The terminal's fd with everything typed so far discarded, or None without a terminal.

    Lines typed while the demo was installing or starting are not rings: the owner pressed
    Enter before anything could answer.
    """
    import termios

    if sys.stdin is None or not sys.stdin.isatty():
        return None
    fd = sys.stdin.fileno()
    termios.tcflush(fd, termios.TCIFLUSH)
    return fd


def _stop_signal(_signum: int, _frame: FrameType | None) -> None:
    raise _Stop


def _web_command_exists() -> bool:
    from doorbell.cli import LAZY_COMMANDS

    return "web" in LAZY_COMMANDS
