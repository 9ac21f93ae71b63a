"""Where the live socket goes when /run/doorbell is not there (a first manual run)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from doorbell.commands.demo_processes import start_child, wait_until_ready
from doorbell.config import parse_config
from doorbell.doctor import FAIL, PASS, check_live_socket
from doorbell.live.socketpath import prepare_live_socket_dir, resolve_live_socket
from doorbell.passphrase import generate_passphrase


def config(data_dir: Path, **live: str):
    return parse_config({"storage": {"data_dir": str(data_dir)}, "live": live})


def test_the_system_directory_wins_when_it_exists(tmp_path: Path) -> None:
    system = tmp_path / "run-doorbell"
    system.mkdir()
    env = {"RUNTIME_DIRECTORY": str(tmp_path / "rt"), "XDG_RUNTIME_DIR": str(tmp_path)}
    place = resolve_live_socket(config(tmp_path / "data"), env=env, system_dir=system)
    assert place.path == system / "live.sock" and not place.fallback


def test_without_it_runtime_directory_then_xdg_then_the_data_dir(tmp_path: Path) -> None:
    absent, data = tmp_path / "no-run-doorbell", tmp_path / "data"
    xdg = tmp_path / "xdg"
    xdg.mkdir()
    both = {"RUNTIME_DIRECTORY": str(tmp_path / "rt"), "XDG_RUNTIME_DIR": str(xdg)}
    place = resolve_live_socket(config(data), env=both, system_dir=absent)
    assert place.path == tmp_path / "rt" / "live.sock"
    assert "RUNTIME_DIRECTORY" in place.reason
    place = resolve_live_socket(config(data), env={"XDG_RUNTIME_DIR": str(xdg)}, system_dir=absent)
    assert place.path == xdg / "doorbell" / "live.sock" and place.fallback
    for env in ({}, {"XDG_RUNTIME_DIR": "relative"}, {"XDG_RUNTIME_DIR": str(tmp_path / "gone")}):
        place = resolve_live_socket(config(data), env=env, system_dir=absent)
        assert place.path == data / "run" / "live.sock", env
        assert "data dir" in place.reason
    prepare_live_socket_dir(place)
    assert (data / "run").is_dir()


def test_a_configured_path_is_used_as_written(tmp_path: Path) -> None:
    mine = tmp_path / "elsewhere" / "feed.sock"
    place = resolve_live_socket(
        config(tmp_path, socket_path=str(mine)), env={}, system_dir=tmp_path / "absent"
    )
    assert place.path == mine and not place.fallback
    prepare_live_socket_dir(place)
    assert not mine.parent.exists(), "a configured directory is the owner's to make"


def test_doctor_says_where_and_why(tmp_path: Path) -> None:
    check = check_live_socket(config(tmp_path / "data"), system_dir=tmp_path / "absent")
    assert check.status == PASS
    assert "live.sock" in check.detail and "is not there" in check.detail
    missing = config(tmp_path, socket_path=str(tmp_path / "nope" / "live.sock"))
    check = check_live_socket(missing, system_dir=tmp_path / "absent")
    assert check.status == FAIL and "nope" in check.detail


def test_a_first_manual_recorder_run_just_works(tmp_path: Path) -> None:
    """`doorbell recorder --config my.toml`, no [live] section, no /run/doorbell: it serves
    its live socket under $XDG_RUNTIME_DIR/doorbell instead of failing."""
    data, xdg = tmp_path / "data", tmp_path / "xdg"
    xdg.mkdir(mode=0o700)
    my_toml = tmp_path / "my.toml"
    my_toml.write_text(
        "[camera]\nwidth = 320\nheight = 240\nlores_width = 160\nlores_height = 120\n"
        f'[storage]\ndata_dir = "{data}"\nmin_free_gb = 0.0\n'
    )
    passphrase = tmp_path / "pass"
    passphrase.write_text(generate_passphrase()[0] + "\n")
    passphrase.chmod(0o600)
    cli = [sys.executable, "-c", "import sys; from doorbell.cli import main; sys.exit(main())"]
    subprocess.run(
        [*cli, "init", "--config", str(my_toml), "--passphrase-file", str(passphrase)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    env = {**os.environ, "XDG_RUNTIME_DIR": str(xdg)}
    env.pop("RUNTIME_DIRECTORY", None)
    expected = resolve_live_socket(config(data), env=env).path
    recorder = start_child("recorder", [*cli, "recorder", "--config", str(my_toml)], env=env)
    try:
        wait_until_ready([recorder], timeout_s=120)
        assert expected.is_socket(), expected
    finally:
        recorder.process.send_signal(signal.SIGTERM)
        code = recorder.process.wait(timeout=20)
        recorder.notify.close()
    assert code == 0
