"""Device key files: keys/device.key and keys/device.vkey."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from doorbell.audit.devicekey import (
    create_device_key,
    default_device_key_name,
    load_device_signer,
    load_device_verifier,
)
from doorbell.audit.note import open_note, sign_note
from doorbell.errors import KeyFileError


def test_create_load_and_sign(tmp_path: Path) -> None:
    vkey = create_device_key(tmp_path, "doorbell.local/abc")
    assert vkey.startswith("doorbell.local/abc+")
    assert os.stat(tmp_path / "device.key").st_mode & 0o777 == 0o600
    assert os.stat(tmp_path / "device.vkey").st_mode & 0o777 == 0o644
    assert (tmp_path / "device.key").read_text().startswith("PRIVATE+KEY+doorbell.local/abc+")
    signer = load_device_signer(tmp_path)
    verifier = load_device_verifier(tmp_path)
    assert verifier.vkey == vkey == signer.vkey
    assert open_note(sign_note(b"hello\n", signer), [verifier]).verified


def test_refuses_to_overwrite_and_bad_names(tmp_path: Path) -> None:
    create_device_key(tmp_path, "doorbell.local/abc")
    before = (tmp_path / "device.key").read_bytes()
    with pytest.raises(KeyFileError, match="refusing"):
        create_device_key(tmp_path, "doorbell.local/other")
    assert (tmp_path / "device.key").read_bytes() == before
    with pytest.raises(KeyFileError):
        create_device_key(tmp_path / "x", "bad name")


def test_default_name_is_unique_and_hostname_free() -> None:
    first, second = default_device_key_name(), default_device_key_name()
    assert first != second and first.startswith("doorbell.local/")
    assert os.uname().nodename not in first


def test_loading_refuses_open_permissions_and_garbage(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="missing"):
        load_device_signer(tmp_path)
    create_device_key(tmp_path)
    os.chmod(tmp_path / "device.key", 0o644)
    with pytest.raises(KeyFileError, match="too open"):
        load_device_signer(tmp_path)
    (tmp_path / "device.vkey").write_text("not a key\n")
    with pytest.raises(KeyFileError):
        load_device_verifier(tmp_path)
