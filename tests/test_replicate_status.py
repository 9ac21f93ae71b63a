"""What the owner sees of the off-site copy: `doorbell doctor`, the audit page, the config
checks, and the `doorbell replicate --once` command."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ui_helpers import Clock, FakeVault, prepare_data_dir, unlock

from doorbell.cli import main
from doorbell.config import Config, parse_config
from doorbell.doctor import FAIL, PASS, WARN, check_outbound, check_replication
from doorbell.errors import ConfigError
from doorbell.replicate.destination import LocalDestination
from doorbell.replicate.replicator import Replicator
from doorbell.replicate.state import load_state
from doorbell.store import Store
from doorbell.ui import close_app, create_app

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def config_for(data_dir: Path, destination: str, **replicate: object) -> Config:
    return parse_config(
        {
            "storage": {"data_dir": str(data_dir)},
            "web": {"tls": False},
            "replicate": {"destination": destination, **replicate},
        }
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    prepare_data_dir(path, FakeVault())
    Store.open(path).close()
    return path


@pytest.mark.parametrize(
    ("replicate", "message"),
    [
        ({"destination": "relative/dir"}, "neither an absolute directory"),
        ({"destination": "ftp://nas/copy"}, "neither an absolute directory"),
        ({"destination": "sftp://nas/copy", "host_key": HOST_KEY}, "give the user and host"),
        ({"destination": "sftp://pi@nas/copy"}, "replicate.host_key: required"),
        ({"destination": "sftp://pi@nas/copy", "host_key": "ssh-ed25519 !!"}, "host_key"),
        ({"destination": "sftp://pi@nas:99999/copy", "host_key": HOST_KEY}, "port"),
        ({"destination": "sftp://pi:pw@nas/copy", "host_key": HOST_KEY}, "no password"),
        ({"delete_delay_days": -1}, "below 0"),
        ({"destinaton": "/srv/copy"}, "did you mean 'destination'"),
    ],
)
def test_config_rejects_bad_destinations(replicate: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"replicate": replicate})
    assert message in str(caught.value)


def test_config_accepts_both_kinds() -> None:
    parse_config({"replicate": {"destination": "/srv/doorbell-copy"}})
    config = parse_config(
        {"replicate": {"destination": "sftp://pi@192.168.1.5:2222/srv/copy", "host_key": HOST_KEY}}
    )
    assert config.replicate.delete_delay_days == 7.0


def test_doctor_reports_the_copy(data_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    assert check_replication(parse_config({})).status == PASS  # not configured
    config = config_for(data_dir, str(copy))
    check = check_replication(config)
    assert check.status == WARN and "never run" in check.detail
    Replicator(data_dir, lambda: LocalDestination(copy)).close()
    replicator = Replicator(data_dir, lambda: LocalDestination(copy))
    replicator.sync()
    replicator.close()
    check = check_replication(config)
    assert check.status == PASS, check
    assert "reachable" in check.detail and "0 bytes behind" in check.detail
    copy.rename(tmp_path / "unplugged")
    check = check_replication(config)
    assert check.status == FAIL and "unreachable" in check.detail


def test_doctor_allows_only_the_configured_sftp_destination(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    pid = proc / "4242"
    (pid / "fd").mkdir(parents=True)
    (pid / "cmdline").write_bytes(b"/opt/doorbell/venv/bin/doorbell\0replicate\0")
    os.symlink("socket:[777]", pid / "fd" / "5")
    (proc / "net").mkdir()
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt  uid\n"
    local = socket.inet_aton("192.168.1.20")[::-1].hex().upper()
    remote = socket.inet_aton("192.168.1.5")[::-1].hex().upper()
    line = (
        f"   0: {local}:D431 {remote}:0016 01 00000000:00000000 00:00000000 00000000  0 0 777 1\n"
    )
    (proc / "net" / "tcp").write_text(header + line)
    nas = parse_config(
        {"replicate": {"destination": "sftp://pi@192.168.1.5/srv/copy", "host_key": HOST_KEY}}
    )
    assert check_outbound(nas, proc).status == PASS
    other_port = parse_config(
        {"replicate": {"destination": "sftp://pi@192.168.1.5:2222/srv/copy", "host_key": HOST_KEY}}
    )
    assert check_outbound(other_port, proc).status == FAIL
    assert check_outbound(parse_config({}), proc).status == FAIL


def test_audit_page_shows_the_copy_status(data_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    replicator = Replicator(data_dir, lambda: LocalDestination(copy))
    replicator.sync()
    replicator.close()
    vault = FakeVault()
    app = create_app(config_for(data_dir, str(copy)), vault=vault, clock=Clock())
    try:
        client = app.test_client()
        unlock(client)
        page = client.get("/audit").get_data(as_text=True)
        assert 'id="replication"' in page and "Destination reachable" in page
        assert "Bytes behind the recorder: 0" in page
    finally:
        close_app(app)


def test_replicate_once_command(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    config = tmp_path / "doorbell.toml"
    config.write_text(f'[storage]\ndata_dir = "{data_dir}"\n[replicate]\ndestination = "{copy}"\n')
    assert main(["replicate", "--config", str(config), "--once"]) == 0
    assert "0 bytes behind" in capsys.readouterr().out
    assert (copy / "FORMAT").exists()
    copy.rename(tmp_path / "gone")
    assert main(["replicate", "--config", str(config), "--once"]) == 1
    assert "does not exist" in capsys.readouterr().err
    config.write_text(f'[storage]\ndata_dir = "{data_dir}"\n')
    assert main(["replicate", "--config", str(config), "--once"]) == 2


@settings(max_examples=200, deadline=None)
@given(key=st.text(max_size=200), destination=st.text(max_size=100))
def test_any_host_key_or_destination_gives_a_config_error_or_a_config(
    key: str, destination: str
) -> None:
    for url in (destination, f"sftp://pi@nas/{destination}"):
        with contextlib.suppress(ConfigError):
            parse_config({"replicate": {"destination": url, "host_key": key}})


def test_replicate_service_runs_until_sigterm(data_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    config = tmp_path / "doorbell.toml"
    config.write_text(
        f'[storage]\ndata_dir = "{data_dir}"\n[replicate]\ndestination = "{copy}"\n'
        "interval_s = 0.2\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "doorbell.cli", "replicate", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not (copy / "audit" / "entries.jsonl").exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err.decode()
    assert load_state(data_dir).status.connected
