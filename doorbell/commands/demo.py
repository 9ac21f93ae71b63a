"""`doorbell demo`: the whole product on any machine, in one command.

Creates a demo data dir (keys with a printed demo passphrase, a config for the mock camera),
then runs the recorder and the web UI as two processes, exactly as on a Pi, until Ctrl-C.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from doorbell.datadir import DataDir
from doorbell.fsutil import write_file_atomic

DEMO_PASSPHRASE_FILE = "DEMO-PASSPHRASE.txt"  # noqa: S105 - a file name, not a secret
STOP_TIMEOUT_S = 20.0


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
    passphrase = passphrase_file.read_text().strip() if passphrase_file.exists() else "(unknown)"
    return config_path, passphrase


def _stop(processes: dict[str, subprocess.Popen]) -> None:
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for name, process in processes.items():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            click.echo(f"demo: {name} did not stop in {STOP_TIMEOUT_S:.0f} s; killing it", err=True)
            process.kill()
            process.wait()


@click.command("demo")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-data"),
    show_default=True,
    help="Demo data directory (created; reused if it exists).",
)
@click.option("--port", type=click.IntRange(1024, 65535), default=8443, show_default=True)
@click.option("--width", type=int, default=1280, show_default=True, help="Mock camera width.")
@click.option("--height", type=int, default=720, show_default=True, help="Mock camera height.")
@click.option("--fps", type=int, default=10, show_default=True, help="Mock camera frame rate.")
@click.option(
    "--seconds",
    type=float,
    default=None,
    help="Stop by itself after this many seconds (default: run until Ctrl-C).",
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
    doorbell; Ctrl-C stops both processes cleanly.
    """
    data_dir = data_dir.resolve()
    config_path, passphrase = _prepare(data_dir, port, (width, height, fps))
    processes = {"recorder": subprocess.Popen(_doorbell("recorder", "--config", str(config_path)))}
    web_available = not no_web and _web_command_exists()
    if web_available:
        processes["web"] = subprocess.Popen(_doorbell("web", "--config", str(config_path)))
    click.echo("")
    click.echo(f"doorbell demo running; data in {data_dir}")
    if web_available:
        click.echo(
            f"  open https://127.0.0.1:{port}/ (self-signed certificate: see the fingerprint above)"
        )
    else:
        click.echo("  web UI not started (--no-web, or this version has no `doorbell web` yet)")
    click.echo(f"  demo passphrase: {passphrase}")
    click.echo("  press Enter to ring the doorbell; Ctrl-C to stop")
    stop_at = None if seconds is None else time.monotonic() + seconds
    interactive = sys.stdin is not None and sys.stdin.isatty()
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        while all(p.poll() is None for p in processes.values()):
            if stop_at is not None and time.monotonic() >= stop_at:
                break
            if interactive and _line_ready(0.5):
                sys.stdin.readline()
                processes["recorder"].send_signal(signal.SIGUSR1)
                click.echo("demo: ding dong (simulated doorbell press)")
            elif not interactive:
                time.sleep(0.5)
    except KeyboardInterrupt:
        click.echo("\ndemo: stopping")
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stop(processes)
    failed = {n: p.returncode for n, p in processes.items() if p.returncode not in (0, -15)}
    if failed:
        raise click.ClickException(f"demo: process(es) failed: {failed}")
    click.echo("demo: stopped cleanly")


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the demo like Ctrl-C


def _line_ready(timeout_s: float) -> bool:
    import select

    ready, _w, _x = select.select([sys.stdin], [], [], timeout_s)
    return bool(ready)


def _web_command_exists() -> bool:
    from doorbell.cli import LAZY_COMMANDS

    return "web" in LAZY_COMMANDS
