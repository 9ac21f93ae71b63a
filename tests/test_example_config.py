"""firmware_config/doorbell.toml: the commented example of every configuration key.

The example follows one convention, which these tests hold it to:

- ``key = value`` sets a key; the comment just above it ends with ``(default X)``, and X
  must be the built-in default;
- ``# key = value`` leaves a key commented out, and the value shown must be the default;
- a polygon list (``motion.zones`` ...) appears as its ``[[section.key]]`` tables.

A helper who adds a key to doorbell/config.py without documenting it here is told so by
``test_every_key_appears``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from typing import Any

import pytest

from doorbell.config import Polygon, describe_keys, load_config
from tests.conftest import PROJECT_ROOT

EXAMPLE = PROJECT_ROOT / "firmware_config" / "doorbell.toml"
KEY_LINE = re.compile(r"^(?P<commented>#\s*)?(?P<key>[a-z_]+) = (?P<value>.+)$")
SECTION_LINE = re.compile(r"^\[(?P<name>[a-z_]+)\]$")
TABLES_LINE = re.compile(r"^\[\[(?P<name>[a-z_]+\.[a-z_]+)\]\]$")
DEFAULT_NOTE = re.compile(r"\(default (?P<value>[^)]*)\)\s*$")


def _toml_value(text: str) -> Any:
    return tomllib.loads(f"v = {text}")["v"]


def _same(loaded: Any, literal: Any) -> bool:
    if isinstance(loaded, float) and isinstance(literal, int | float):
        return loaded == float(literal)
    if isinstance(loaded, tuple) and isinstance(literal, list):  # TOML arrays load as tuples
        return loaded == tuple(literal)
    return bool(loaded == literal)


def _entries() -> dict[str, dict[str, Any]]:
    """Dotted key -> {"set": bool, "value": ..., "default_note": ... or None}."""
    entries: dict[str, dict[str, Any]] = {}
    section = ""
    comment: list[str] = []
    for line in EXAMPLE.read_text().splitlines():
        if match := SECTION_LINE.match(line):
            section, comment = match["name"], []
            continue
        if match := TABLES_LINE.match(line):
            entries.setdefault(match["name"], {"set": True, "value": None, "default_note": None})
            section, comment = "", []
            continue
        match = KEY_LINE.match(line)
        if match and section:
            dotted = f"{section}.{match['key']}"
            note = DEFAULT_NOTE.search(comment[-1]) if comment else None
            entries[dotted] = {
                "set": match["commented"] is None,
                "value": _toml_value(match["value"]),
                "default_note": note["value"] if note else None,
            }
            comment = []
        elif line.startswith("#"):
            comment.append(line)
        else:
            comment = []
    return entries


def test_check_config_accepts_the_example() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "doorbell.cli", "check-config", "--config", str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=PROJECT_ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{EXAMPLE}: OK" in result.stdout


def test_every_key_appears() -> None:
    entries = _entries()
    absent = [key for key, _, _ in describe_keys() if key not in entries]
    assert not absent, f"keys missing from {EXAMPLE.name} (add each, commented or set): {absent}"
    unknown = sorted(set(entries) - {key for key, _, _ in describe_keys()})
    assert not unknown, f"{EXAMPLE.name} documents keys doorbell does not know: {unknown}"


@pytest.mark.parametrize(("key", "default"), [(k, d) for k, d, _ in describe_keys()])
def test_what_the_comments_claim_is_true(key: str, default: Any) -> None:
    entry = _entries().get(key)
    if entry is None:
        pytest.fail(f"{key} is missing from {EXAMPLE.name}")
    section, name = key.split(".")
    loaded = getattr(getattr(load_config(EXAMPLE), section), name)
    if isinstance(default, tuple) and key.endswith(("zones", "masks")):  # polygon tables
        assert loaded and all(isinstance(p, Polygon) for p in loaded), key
        return
    if entry["set"]:
        assert _same(loaded, entry["value"]), f"{key}: loads as {loaded!r}"
        note = entry["default_note"]
        assert note is not None, f"{key} is set: end its comment with (default ...)"
        claimed = _toml_value(note)
        assert _same(default, claimed), f"{key}: comment says default {note}, it is {default!r}"
    else:
        assert _same(default, entry["value"]), (
            f"{key}: commented out as {entry['value']!r}, but the default is {default!r}"
        )
        assert _same(loaded, default), key


def test_example_is_a_pi_at_the_front_door() -> None:
    config = load_config(EXAMPLE)
    assert config.camera.backend == "picamera2"
    assert config.gpio.enabled
    assert config.web.bind == "0.0.0.0"  # noqa: S104 - behind the nftables rule, as documented
    assert config.web.port == 8443  # the port the nftables rule and the units expect
    assert config.live.socket_path.startswith("/run/doorbell/")  # made by tmpfiles.d
    assert config.storage.data_dir == "/var/lib/doorbell"
    assert {len(config.motion.zones), len(config.motion.masks), len(config.privacy.masks)} != {0}
