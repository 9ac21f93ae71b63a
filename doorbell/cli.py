"""The ``doorbell`` command.

Each subcommand lives in its own module under :mod:`doorbell.commands` and is imported only
when it runs, so ``doorbell --help`` stays fast and never loads camera, video or web code.

Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad configuration.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from doorbell import __version__
from doorbell.commands.options import config_options, load_cli_config
from doorbell.config import DEFAULT_CONFIG_PATH
from doorbell.errors import ConfigError, DoorbellError, UsageError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

#: subcommand name -> "module:attribute"; the module is imported only when the command runs.
LAZY_COMMANDS: dict[str, str] = {
    "audit": "doorbell.commands.audit:audit",
    "demo": "doorbell.commands.demo:demo",
    "doctor": "doorbell.commands.doctor:doctor",
    "init": "doorbell.commands.init:init",
    "keys": "doorbell.commands.keys:keys",
    "motion-preview": "doorbell.commands.motion_preview:motion_preview",
    "notify": "doorbell.commands.notify:notify",
    "recorder": "doorbell.commands.recorder:recorder",
    "replicate": "doorbell.commands.replicate:replicate",
    "requests": "doorbell.commands.requests:requests",
    "restore": "doorbell.commands.replicate:restore",
    "verify-bundle": "doorbell.commands.verify_bundle:verify_bundle",
    "web": "doorbell.commands.web:web",
}


class DoorbellCommandError(click.ClickException):
    """A DoorbellError on its way out of the CLI, with the exit code it deserves."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self._exit_code = exit_code

    @property  # click declares exit_code on the class; ours differs per error
    def exit_code(self) -> int:
        return self._exit_code

    @exit_code.setter
    def exit_code(self, value: int) -> None:
        self._exit_code = value

    def show(self, file: Any = None) -> None:
        click.echo(f"doorbell: error: {self.format_message()}", err=True)


def _translate_errors(callback: Callable[[], Any]) -> Any:
    try:
        return callback()
    except (ConfigError, UsageError) as exc:
        raise DoorbellCommandError(str(exc), EXIT_USAGE) from exc
    except DoorbellError as exc:
        raise DoorbellCommandError(str(exc), EXIT_FAILURE) from exc


class DoorbellGroup(click.Group):
    """A click group whose subcommands are imported lazily and whose errors map to exit codes."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name not in LAZY_COMMANDS:
            return command
        module_name, attribute = LAZY_COMMANDS[cmd_name].split(":")
        found = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(found, click.Command):  # pragma: no cover - registry typo
            raise TypeError(f"{LAZY_COMMANDS[cmd_name]} is not a click command")
        return found

    def invoke(self, ctx: click.Context) -> Any:
        return _translate_errors(lambda: super(DoorbellGroup, self).invoke(ctx))


@click.group(cls=DoorbellGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="doorbell")
def cli() -> None:
    """doorbell: a privacy-first video doorbell for the Raspberry Pi.

    Footage stays on this device, encrypted to your key. Nobody gets a clip unless you approve
    that exact request, and every access is written to a signed log you can verify.
    """


@click.command("check-config")
@config_options
def check_config(config_path: Path | None, data_dir: Path | None) -> None:
    """Check a configuration file and print what it sets up.

    Every problem is listed at once, each with the file, the key, what was given and what is
    allowed. Exit code 0 when the file is valid, 2 when it is not.
    """
    config = load_cli_config(config_path, data_dir)
    where = str(config.source) if config.source else f"{DEFAULT_CONFIG_PATH} (absent: defaults)"
    camera = config.camera
    click.echo(f"{where}: OK")
    source = f" {camera.path}" if camera.backend == "file" else ""
    click.echo(
        f"  camera: {camera.backend}{source}, {camera.width}x{camera.height} @ {camera.fps} fps"
    )
    click.echo(
        f"  motion: {'on' if config.motion.enabled else 'off'}, {len(config.motion.zones)} zone(s),"
        f" {len(config.motion.masks)} mask(s); privacy masks: {len(config.privacy.masks)}"
    )
    click.echo(
        f"  recording: pre-roll {config.recording.pre_roll_s:g} s, post-roll "
        f"{config.recording.post_roll_s:g} s, max clip {config.recording.max_clip_s:g} s"
    )
    click.echo(
        f"  storage: {config.storage.data_dir}, keep {config.storage.retention_days} days, "
        f"quota {config.storage.quota_gb:g} GB, min free {config.storage.min_free_gb:g} GB"
    )
    scheme = "https" if config.web.tls else "http"
    click.echo(f"  web: {scheme}://{config.web.bind}:{config.web.port}/")


cli.add_command(check_config)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``doorbell`` console script; returns the exit code."""
    try:
        cli.main(args=argv, prog_name="doorbell", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return EXIT_OK
        if isinstance(code, int):
            return code
        click.echo(str(code), err=True)
        return EXIT_FAILURE
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
