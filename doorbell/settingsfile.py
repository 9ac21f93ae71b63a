"""Owner settings saved by the web UI: ``<data_dir>/settings.toml``, layered over the config.

Why a second file: in production ``/etc/doorbell/doorbell.toml`` belongs to root and the web
unit runs with ``ProtectSystem=strict``, so the web UI cannot (and should not) rewrite it.
The settings page writes only the keys the owner may change there (:data:`OWNER_KEYS`:
retention, quota, motion sensitivity, zones and masks, privacy masks) into the data dir,
which the web user can write (group ``doorbell``, see systemd/tmpfiles.d) and the recorder
can read.

:func:`with_owner_settings` is how every process reads its configuration
(:func:`doorbell.commands.options.load_cli_config`, :func:`doorbell.ui.create_app`): the main
file's document with ``settings.toml``'s keys laid over it, validated as one by
:func:`doorbell.config.parse_config` (the same strict checks). A key outside
:data:`OWNER_KEYS` in ``settings.toml`` is a :class:`ConfigError`: the web user cannot move
the data dir, open a port or point the camera elsewhere through it.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

from doorbell.config import MAX_CONFIG_BYTES, Config, parse_config
from doorbell.datadir import DataDir
from doorbell.errors import ConfigError

#: (section, key) pairs the owner may set from the web UI, and nothing else.
OWNER_KEYS: frozenset[tuple[str, str]] = frozenset(
    {
        ("storage", "retention_days"),
        ("storage", "quota_gb"),
        ("storage", "min_free_gb"),
        ("motion", "enabled"),
        ("motion", "threshold"),
        ("motion", "min_area_px"),
        ("motion", "zones"),
        ("motion", "masks"),
        ("privacy", "masks"),
        # alerts (doorbell/ui/notifications.py): which channels, which events, when quiet;
        # where they go (hosts, secrets) stays in the main file
        ("gpio", "quiet_hours"),
        ("mqtt", "enabled"),
        ("mqtt", "events"),
        ("mqtt", "quiet_hours"),
        ("ntfy", "enabled"),
        ("ntfy", "events"),
        ("ntfy", "quiet_hours"),
        ("email", "enabled"),
        ("email", "events"),
        ("email", "quiet_hours"),
    }
)


def settings_path(data_dir: Path) -> Path:
    """``<data_dir>/settings.toml``."""
    return DataDir(data_dir).settings


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML document of ``path`` ({} if the file does not exist).

    Raises :class:`ConfigError` if it cannot be read, is too large or is not valid TOML.
    """
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes")
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def check_owner_document(document: dict[str, Any], where: Path) -> None:
    """Raise :class:`ConfigError` for any key the web UI may not set."""
    problems = []
    for section, table in document.items():
        if not isinstance(table, dict):
            problems.append(f"{where}: {section}: not a table")
            continue
        for key in table:
            if (section, key) not in OWNER_KEYS:
                problems.append(
                    f"{where}: {section}.{key}: not an owner setting; set it in "
                    "the main configuration file"
                )
    if problems:
        raise ConfigError("\n".join(problems), problems)


def layer(base: dict[str, Any], owner: dict[str, Any]) -> dict[str, Any]:
    """``base`` with each key of ``owner`` replacing the same key (one level of sections)."""
    merged = {
        section: dict(table) if isinstance(table, dict) else table
        for section, table in base.items()
    }
    for section, table in owner.items():
        target = merged.setdefault(section, {})
        if isinstance(target, dict):
            target.update(table)
    return merged


def layered_config(config: Config, owner: dict[str, Any]) -> Config:
    """``config`` with the owner document ``owner`` laid over it.

    Validation parses the main file's document (re-read from ``config.source``) with
    ``owner`` laid over it, all at once; the owner's values are then set on ``config``
    itself, so everything else (a ``--data-dir`` override included) stays as it was.
    """
    check_owner_document(owner, settings_path(config.data_dir))
    base = read_toml(config.source) if config.source is not None else {}
    parsed = parse_config(layer(base, owner), source=config.source)
    changed: dict[str, Any] = {}
    for section, table in owner.items():
        values = {key: getattr(getattr(parsed, section), key) for key in table}
        changed[section] = dataclasses.replace(getattr(config, section), **values)
    return dataclasses.replace(config, **changed)


def with_owner_settings(config: Config) -> Config:
    """``config`` with ``<data_dir>/settings.toml`` laid over it (unchanged if there is none).

    Raises :class:`ConfigError` when settings.toml is invalid, holds a key outside
    :data:`OWNER_KEYS`, or makes the configuration invalid.
    """
    owner = read_toml(settings_path(config.data_dir))
    if not owner:
        return config
    return layered_config(config, owner)
