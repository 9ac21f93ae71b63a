"""Options every ``doorbell`` subcommand shares, and the one way they load the configuration.

Commands import these from here; :mod:`doorbell.cli` only dispatches.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from doorbell.config import DEFAULT_CONFIG_PATH, Config, load_config


def config_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Add the ``--config`` and ``--data-dir`` options every command takes."""
    function = click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Data directory; overrides storage.data_dir from the config file.",
    )(function)
    function = click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help=f"Configuration file (default {DEFAULT_CONFIG_PATH}; built-in defaults if absent).",
    )(function)
    return function


def load_cli_config(config_path: Path | None, data_dir: Path | None) -> Config:
    """Load the configuration the way every command does.

    An explicit ``--config`` must exist; the default path may be absent (built-in defaults).
    ``--data-dir`` overrides ``storage.data_dir``. ``<data_dir>/settings.toml`` (owner
    settings saved by the web UI) is laid over it (:mod:`doorbell.settingsfile`).
    """
    config = load_config(config_path, required=config_path is not None)
    if data_dir is not None:
        config = config.with_data_dir(data_dir)
    from doorbell.settingsfile import with_owner_settings  # the web UI's owner settings

    return with_owner_settings(config)
