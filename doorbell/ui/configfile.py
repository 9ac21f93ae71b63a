"""Save owner settings: validate, serialise as TOML, replace ``<data_dir>/settings.toml``.

The owner settings file (:mod:`doorbell.settingsfile`) is read as a TOML document, the
changed keys are set in it, the result laid over the main configuration is validated with
:func:`doorbell.config.parse_config` (the same checks as at start-up) and written with
:func:`doorbell.fsutil.write_file_atomic`: a crash leaves the old file or the new one. The
main configuration file (root's, read-only to the web unit) is never written. Keys the
owner did not touch keep their values; comments in the file are not kept
(Python's standard library reads TOML but does not write it), which the written header says.

The serialiser covers exactly the value types the configuration allows: booleans, integers,
finite floats, strings and arrays of polygon tables. It proves itself on every write: the
text it produced must parse back to the same document, or nothing is written.
"""

from __future__ import annotations

import json
import math
import tomllib
from typing import Any

from doorbell.config import Config, Polygon
from doorbell.errors import ConfigError, StorageError
from doorbell.fsutil import write_file_atomic
from doorbell.settingsfile import layered_config, read_toml, settings_path

#: settings.toml: the web user writes it, the recorder (group doorbell) reads it.
SETTINGS_MODE = 0o640
OWNER_HEADER = (
    "# doorbell owner settings, saved by the web UI and laid over the main configuration\n"
    "# file (see docs/web.md). Only owner settings may appear here. Comments are not kept.\n"
)

HEADER = (
    "# doorbell configuration (see `doorbell check-config`).\n"
    "# Saved by the web UI: comments are not preserved; values are.\n"
)


def _scalar(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"{where}: {value} is not a finite number")
        return repr(value)
    if isinstance(value, str):
        # Non-ASCII verbatim: with ensure_ascii JSON would write a character beyond U+FFFF as
        # a surrogate-pair escape, which TOML forbids. What JSON still escapes (quote,
        # backslash, U+0000..U+001F) are valid TOML escapes; DEL, which TOML also wants
        # escaped, JSON leaves raw, so escape it here.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    raise ConfigError(f"{where}: cannot write a {type(value).__name__} to the config file")


def to_toml(document: dict[str, Any]) -> str:
    """Serialise a configuration document (sections of scalars, string lists, polygon arrays)."""
    lines = [HEADER.rstrip("\n")]
    for section, table in document.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{section}: not a table")
        lines += ["", f"[{section}]"]
        arrays = []
        for key, value in table.items():
            if isinstance(value, list) and all(isinstance(item, str) for item in value):
                # a list of strings (event kinds, quiet hours), or an empty list: inline
                items = ", ".join(_scalar(item, f"{section}.{key}") for item in value)
                lines.append(f"{key} = [{items}]")
            elif isinstance(value, list):
                arrays.append((key, value))
            else:
                lines.append(f"{key} = {_scalar(value, f'{section}.{key}')}")
        for key, polygons in arrays:
            for polygon in polygons:
                lines += ["", f"[[{section}.{key}]]"]
                if polygon.get("name"):
                    lines.append(f"name = {_scalar(polygon['name'], f'{section}.{key}.name')}")
                points = ", ".join(
                    f"[{_scalar(float(x), 'x')}, {_scalar(float(y), 'y')}]"
                    for x, y in polygon["points"]
                )
                lines.append(f"points = [{points}]")
    return "\n".join(lines) + "\n"


def polygons_to_document(polygons: tuple[Polygon, ...]) -> list[dict[str, Any]]:
    result = []
    for polygon in polygons:
        table: dict[str, Any] = {"points": [[x, y] for x, y in polygon.points]}
        if polygon.name:
            table["name"] = polygon.name
        result.append(table)
    return result


def save_changes(config: Config, changes: dict[tuple[str, str], Any]) -> tuple[Config, dict]:
    """Apply ``changes`` ({(section, key): value}) to ``<data_dir>/settings.toml`` atomically.

    The owner settings file is laid over the main configuration
    (:mod:`doorbell.settingsfile`); the main file is never written. Returns the new
    validated :class:`Config` and {dotted key: (old, new)} of what changed. Raises
    :class:`ConfigError` (nothing written) if the result does not validate or a key is not
    an owner setting, :class:`StorageError` if the file cannot be written.
    """
    path = settings_path(config.data_dir)
    document = read_toml(path)
    changed: dict[str, tuple[Any, Any]] = {}
    for (section, key), value in changes.items():
        table = document.setdefault(section, {})
        old = table.get(key)
        if old != value:
            changed[f"{section}.{key}"] = (old, value)
            table[key] = value
    new_config = layered_config(config, document)
    text = OWNER_HEADER + to_toml(document)[len(HEADER) :]
    if tomllib.loads(text) != document:  # pragma: no cover - the serialiser proves itself
        raise ConfigError(f"{path}: internal error: the TOML written would not read back")
    try:
        write_file_atomic(path, text.encode("utf-8"), mode=SETTINGS_MODE)
    except OSError as exc:
        raise StorageError(
            f"{path}: cannot be written ({exc.strerror or exc}). The web UI saves settings "
            "in the data dir: it must be writable by the web user (group doorbell; run "
            "`systemd-tmpfiles --create /etc/tmpfiles.d/doorbell.conf`)."
        ) from exc
    return new_config, changed
