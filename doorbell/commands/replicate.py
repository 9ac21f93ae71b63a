"""``doorbell replicate`` (the off-site copy service) and ``doorbell restore`` (rebuild from it)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from doorbell.commands.options import config_options, load_cli_config
from doorbell.errors import UsageError


def _connector(config: Any) -> Any:
    from doorbell.replicate.destination import open_destination

    replicate = config.replicate

    def connect() -> Any:
        return open_destination(
            replicate.destination,
            host_key=replicate.host_key,
            identity_file=replicate.identity_file,
            timeout_s=replicate.timeout_s,
        )

    return connect


@click.command("replicate")
@config_options
@click.option("--once", is_flag=True, help="Run one pass and exit (1 if the copy failed).")
def replicate(config_path: Path | None, data_dir: Path | None, once: bool) -> None:
    """Copy clips (as they are recorded), thumbnails, index rows and the audit log off-site.

    Reads the data dir, writes only <data_dir>/replicate/state.json there (and its
    replicate.* audit entries); the destination is [replicate] destination. Runs until
    SIGTERM; a destination that fails is retried every replicate.retry_s seconds.
    """
    from doorbell.audit.log import AuditLog
    from doorbell.errors import ReplicationError
    from doorbell.replicate.replicator import Replicator
    from doorbell.service import Notifier, StopSignals, Watchdog, watchdog_interval

    config = load_cli_config(config_path, data_dir)
    settings = config.replicate
    if not settings.destination:
        raise UsageError(
            f"{config.source or 'config'}: replicate.destination is empty; set it to a "
            "mounted directory or sftp://user@host/path (docs/replicate.md)"
        )
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with AuditLog.open(config.data_dir) as audit:
        replicator = Replicator(
            config.data_dir,
            _connector(config),
            audit=audit,
            delete_delay_s=settings.delete_delay_days * 86400.0,
            description=settings.destination,
        )
        if once:
            try:
                report = replicator.sync()
            except ReplicationError as exc:
                replicator.record_failure(str(exc))
                replicator.close()
                click.echo(f"replication failed: {exc}", err=True)
                click.get_current_context().exit(1)
            replicator.close()
            click.echo(
                f"copied {report.bytes_copied} bytes, {report.entries_copied} log entries; "
                f"{report.bytes_behind} bytes behind"
            )
            return
        notifier = Notifier()
        watchdog = Watchdog(notifier, watchdog_interval())
        with StopSignals() as signals:
            notifier.ready(f"replicating to {settings.destination}")
            replicator.run(
                signals.event,
                interval_s=settings.interval_s,
                retry_s=settings.retry_s,
                on_pass=watchdog.kick,
            )
            notifier.stopping()


@click.command("restore")
@click.option(
    "--from",
    "source",
    required=True,
    metavar="DESTINATION",
    help="The copy: a directory, or sftp://user@host[:port]/path.",
)
@click.option(
    "--data-dir",
    "data_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="New (or empty) data directory to rebuild.",
)
@click.option(
    "--key-file",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The owner's key file (owner.key.age, from your backup).",
)
@click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Read the owner passphrase from this file (mode 0600); default: ask on the terminal.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Take replicate.host_key and replicate.identity_file (sftp) from this config file.",
)
@click.option("--host-key", default=None, help="sftp: the server's pinned host key line.")
@click.option(
    "--identity-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="sftp: the private key to log in with.",
)
def restore(
    source: str,
    data_dir: Path,
    key_file: Path,
    passphrase_file: Path | None,
    config_path: Path | None,
    host_key: str | None,
    identity_file: Path | None,
) -> None:
    """Rebuild a browsable data dir from an off-site copy, verifying the log and every clip.

    Exit 0 when the log verifies and every clip matches its hash, 1 otherwise (what was
    restored stays, with the problems listed). Then run `doorbell web --data-dir NEW`.
    """
    import getpass

    from doorbell.config import load_config
    from doorbell.passphrase import read_passphrase_file
    from doorbell.replicate.destination import open_destination
    from doorbell.replicate.restore import restore as restore_copy

    settings = load_config(config_path).replicate if config_path is not None else None
    if passphrase_file is not None:
        passphrase = read_passphrase_file(passphrase_file)
    elif sys.stdin is not None and sys.stdin.isatty():
        passphrase = getpass.getpass("Owner passphrase: ")
    else:
        raise UsageError("no terminal to ask the passphrase on; use --passphrase-file F")
    dest = open_destination(
        source,
        host_key=host_key or (settings.host_key if settings else ""),
        identity_file=identity_file or (settings.identity_file if settings else ""),
        timeout_s=settings.timeout_s if settings else 15.0,
    )
    try:
        report = restore_copy(dest, data_dir, key_file=key_file, passphrase=passphrase)
    finally:
        dest.close()
    if report.audit is not None:
        click.echo(f"audit log: {report.audit.summary()}")
    interrupted = f", {len(report.interrupted)} interrupted" if report.interrupted else ""
    click.echo(f"restored {report.clips} clips ({report.bytes} bytes){interrupted} into {data_dir}")
    for problem in report.problems:
        click.echo(f"problem: {problem}", err=True)
    if not report.ok:
        click.get_current_context().exit(1)
