"""The `doorbell` command: help, version, check-config and its exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_config import BAD_CONFIGS

from doorbell import __version__
from doorbell.cli import LAZY_COMMANDS, cli, main


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """The real console entry point, in a fresh interpreter."""
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from doorbell.cli import main; sys.exit(main())",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_help_and_version_exit_zero() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert "privacy-first video doorbell" in result.stdout
    assert "check-config" in result.stdout
    version = run("--version")
    assert version.returncode == 0
    assert __version__ in version.stdout


def test_every_subcommand_has_help_text() -> None:
    runner = CliRunner()
    for name in ["check-config", *LAZY_COMMANDS]:
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert len(result.output.splitlines()) > 3, name


def test_unknown_command_is_bad_usage() -> None:
    result = run("frobnicate")
    assert result.returncode == 2
    assert "No such command" in result.stderr


def test_check_config_on_empty_file(tmp_path: Path) -> None:
    config = tmp_path / "doorbell.toml"
    config.write_text("")
    result = run("check-config", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert f"{config}: OK" in result.stdout
    assert "camera: mock, 1280x720 @ 15 fps" in result.stdout


def test_check_config_data_dir_flag_overrides(tmp_path: Path) -> None:
    config = tmp_path / "doorbell.toml"
    config.write_text('[storage]\ndata_dir = "/nowhere"\n')
    result = CliRunner().invoke(
        cli, ["check-config", "--config", str(config), "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 0
    assert f"storage: {tmp_path}," in result.output


@pytest.mark.parametrize(("text", "expected"), BAD_CONFIGS)
def test_check_config_bad_files_exit_two_naming_the_key(
    tmp_path: Path, text: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "doorbell.toml"
    config.write_text(text)
    assert main(["check-config", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("doorbell: error: ")
    assert expected in err


def test_check_config_missing_explicit_file_exits_two(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "no such file" in capsys.readouterr().err
