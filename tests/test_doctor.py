"""`doorbell doctor` on a fresh mock-camera doorbell, and each check failing when it should."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from doorbell.config import parse_config
from doorbell.doctor import FAIL, PASS, check_modes, check_outbound, run_checks


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("doctor")
    data_dir = root / "data"
    passphrase = root / "passphrase"
    passphrase.write_text("quiet-lantern-maple-orbit-7\n")
    os.chmod(passphrase, 0o600)
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from doorbell.cli import main; sys.exit(main())",
            "init",
            "--data-dir",
            str(data_dir),
            "--passphrase-file",
            str(passphrase),
            "--owner-key-work-factor",
            "10",
        ],
        check=True,
        capture_output=True,
    )
    os.chmod(data_dir, 0o750)  # noqa: S103 - group access is the deployed layout
    return data_dir


def config_for(data_dir: Path, **camera: object):
    return parse_config(
        {
            "camera": {
                "width": 320,
                "height": 240,
                "lores_width": 160,
                "lores_height": 120,
                "realtime": False,
                **camera,
            },
            "storage": {"data_dir": str(data_dir), "min_free_gb": 0.0},
        }
    )


def test_fresh_doorbell_passes_every_check_it_can_make(initialised: Path) -> None:
    results = {check.name: check for check in run_checks(config_for(initialised))}
    assert results["camera"].status == PASS, results["camera"]
    assert results["file modes"].status == PASS, results["file modes"]
    assert results["free space"].status == PASS
    assert results["TLS"].status == PASS and "SHA-256" in results["TLS"].detail
    assert results["audit log"].status == PASS, results["audit log"]
    assert results["no phoning home"].status == PASS
    assert all(check.status != FAIL for check in results.values()), results


def test_doctor_command_exit_codes(initialised: Path, tmp_path: Path) -> None:
    config = tmp_path / "doorbell.toml"
    config.write_text(
        f"[camera]\nwidth = 320\nheight = 240\nlores_width = 160\nlores_height = 120\n"
        f'realtime = false\n[storage]\ndata_dir = "{initialised}"\nmin_free_gb = 0.0\n'
    )
    run = [sys.executable, "-c", "import sys; from doorbell.cli import main; sys.exit(main())"]
    ok = subprocess.run([*run, "doctor", "--config", str(config)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "PASS  camera" in ok.stdout and "doctor: all checks passed" in ok.stdout
    missing = subprocess.run(
        [*run, "doctor", "--config", str(config), "--data-dir", str(tmp_path / "nothing")],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 1
    assert "FAIL  file modes" in missing.stdout


def test_loose_key_mode_fails(initialised: Path) -> None:
    key = initialised / "keys" / "device.key"
    os.chmod(key, 0o644)
    try:
        check = check_modes(initialised)
    finally:
        os.chmod(key, 0o600)
    assert check.status == FAIL and "keys/device.key is 0644" in check.detail


def test_camera_that_cannot_open_fails(initialised: Path, tmp_path: Path) -> None:
    config = config_for(initialised, backend="file", path=str(tmp_path / "missing.mp4"))
    results = {check.name: check for check in run_checks(config)}
    assert results["camera"].status == FAIL


def test_outbound_connection_from_a_doorbell_process_fails(tmp_path: Path) -> None:
    """A fake /proc where a process named doorbell holds a socket connected to 93.184.216.34."""
    proc = tmp_path / "proc"
    pid = proc / "4242"
    (pid / "fd").mkdir(parents=True)
    (pid / "cmdline").write_bytes(
        b"/opt/doorbell/venv/bin/python\0/opt/doorbell/venv/bin/doorbell\0web\0"
    )
    os.symlink("socket:[777]", pid / "fd" / "5")
    (proc / "net").mkdir()
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt  uid\n"
    local = socket.inet_aton("192.168.1.20")[::-1].hex().upper()
    remote = socket.inet_aton("93.184.216.34")[::-1].hex().upper()
    line = (
        f"   0: {local}:D431 {remote}:01BB 01 00000000:00000000 00:00000000 00000000  0 0 777 1\n"
    )
    (proc / "net" / "tcp").write_text(header + line)
    config = config_for(tmp_path)
    check = check_outbound(config, proc)
    assert check.status == FAIL and "93.184.216.34:443" in check.detail
    (proc / "net" / "tcp").write_text(header)
    assert check_outbound(config, proc).status == PASS
