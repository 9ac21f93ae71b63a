"""`doorbell doctor`: a pass/fail list of everything a working doorbell needs."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from doorbell.commands.options import config_options, load_cli_config

MARKS = {"pass": "PASS", "warn": "WARN", "fail": "FAIL"}


@click.command("doctor")
@config_options
def doctor(config_path: Path | None, data_dir: Path | None) -> None:
    """Check this doorbell: camera, services, file modes, free space, clock, TLS, audit log,
    and that no doorbell process talks to the internet.

    Prints one line per check (PASS, WARN for what cannot be checked here, FAIL) and exits 1
    if anything failed. It only reads: nothing is changed or decrypted.
    """
    from doorbell.doctor import run_checks

    config = load_cli_config(config_path, data_dir)
    results = run_checks(config)
    width = max(len(check.name) for check in results)
    for check in results:
        click.echo(f"{MARKS[check.status]}  {check.name:<{width}}  {check.detail}")
    failed = [check.name for check in results if check.status == "fail"]
    if failed:
        click.echo(f"doctor: {len(failed)} check(s) failed: {', '.join(failed)}")
        sys.exit(1)
    click.echo("doctor: all checks passed")
