"""Hostile configs: random documents and random files either load or raise ConfigError.

Anything else (a TypeError from a list where a number belongs, a RecursionError, an
OverflowError from a huge integer) would crash a daemon at start with a traceback instead of
a message naming the key.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doorbell.config import SECTIONS, Config, ConfigError, load_config, parse_config

KNOWN_KEYS = sorted({f.name for cls in SECTIONS.values() for f in dataclasses.fields(cls)})

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["mock", "file", "picamera2", "relay", "doorstep", "", "/tmp", "0.5"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
keys = st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=12))
tables = st.dictionaries(keys, values, max_size=6)
documents = st.dictionaries(
    st.one_of(st.sampled_from(sorted(SECTIONS)), st.text(max_size=10)),
    st.one_of(tables, values),
    max_size=5,
)


@settings(max_examples=200, deadline=None)
@given(documents)
def test_random_documents_load_or_raise_config_error(document: dict) -> None:
    try:
        config = parse_config(document)
    except ConfigError as error:
        assert str(error).strip(), "the message names what is wrong"
        return
    assert isinstance(config, Config)
    for section in dataclasses.fields(config):
        value = getattr(config, section.name)
        if dataclasses.is_dataclass(value):
            for field in dataclasses.fields(value):
                item = getattr(value, field.name)
                if isinstance(item, float):
                    assert math.isfinite(item), f"{section.name}.{field.name} accepted {item}"


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value > 0 else "-inf")
            if math.isinf(value)
            else repr(value)
        )
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.encode("unicode_escape").decode().replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value if v is not None) + "]"
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(f'"{k}" = {toml_value(v)}' for k, v in value.items() if v is not None)
            + "}"
        )
    return '""'


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        documents.map(
            lambda doc: "\n".join(
                f'["{name}"]\n'
                + "\n".join(f'"{k}" = {toml_value(v)}' for k, v in table.items() if v is not None)
                if isinstance(table, dict)
                else f'"{name}" = {toml_value(table)}'
                for name, table in doc.items()
            ).encode()
        ),
        st.binary(max_size=300),
        st.text(max_size=300).map(str.encode),
    )
)
def test_random_files_load_or_raise_config_error(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "doorbell.toml"
        path.write_bytes(raw)
        try:
            assert isinstance(load_config(path), Config)
        except ConfigError as error:
            assert str(path) in str(error), "the message names the file"


def test_deeply_nested_and_huge_documents_are_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "doorbell.toml"
    for text in ("[" * 5000 + "]" * 5000, "9" * 5000, "1" * 400, "1e999"):
        path.write_text(f"[camera]\nwidth = {text}\n")
        with pytest.raises(ConfigError, match=r"doorbell\.toml"):
            load_config(path)
