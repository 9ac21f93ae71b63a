"""``doorbell audit``: verify, export and read the signed audit log."""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from doorbell.commands.options import config_options, load_cli_config
from doorbell.datadir import DataDir
from doorbell.errors import UsageError

if TYPE_CHECKING:
    from doorbell.config import Config


@click.group("audit")
def audit() -> None:
    """Verify, export and read the signed audit log."""


@audit.command("verify")
@config_options
@click.option(
    "--from",
    "export_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Verify an export made by `doorbell audit export` instead of the data dir.",
)
@click.option(
    "--cosigner",
    "cosigners",
    multiple=True,
    metavar="VKEY",
    help="Owner cosigner verifier key to trust (repeatable); default: the keys the log records.",
)
@click.option(
    "--owner-check",
    is_flag=True,
    help="Also check the log against the owner anchor (asks the owner passphrase).",
)
@click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="With --owner-check: read the owner passphrase from this file (mode 0600).",
)
@click.option(
    "--witness",
    default=None,
    metavar="PATH|URL",
    help="Also check the log against the off-site copy at PATH or sftp://URL (its checkpoints).",
)
def verify(
    config_path: Path | None,
    data_dir: Path | None,
    export_dir: Path | None,
    cosigners: tuple[str, ...],
    owner_check: bool,
    passphrase_file: Path | None,
    witness: str | None,
) -> None:
    """Recompute the tree and check every checkpoint and owner cosignature.

    Prints a one-line verdict with counts. Exit 0 when everything holds, 1 with the first bad
    entry index and what failed otherwise. A pinned --cosigner with no cosignature fails.
    --owner-check unlocks the owner key (passphrase on the terminal, or --passphrase-file),
    pins the owner's cosigner key and checks that the log still produces the head the owner
    last cosigned, as sealed in <data_dir>/owner/owner-anchor (see docs/audit.md).
    --witness checks that the log still produces every checkpoint the off-site copy holds
    (`doorbell replicate`): a log behind the copy was rolled back, one that differs forked.
    """
    from doorbell.audit.verify import verify_data_dir, verify_export

    if export_dir is not None and (data_dir is not None or config_path is not None):
        raise UsageError("give either --from EXPORT_DIR or --data-dir/--config, not both")
    if passphrase_file is not None and not owner_check:
        raise UsageError("--passphrase-file goes with --owner-check")
    if owner_check and export_dir is not None:
        raise UsageError("--owner-check checks a data dir, not an export")
    if witness is not None and export_dir is not None:
        raise UsageError("--witness checks a data dir, not an export")
    anchor_line = None
    witness_ok = True
    if export_dir is not None:
        result = verify_export(export_dir, cosigners)
    else:
        config = load_cli_config(config_path, data_dir)
        if owner_check:
            vkey, anchor_ok, anchor_line = _owner_check(config.data_dir, passphrase_file)
            cosigners = (*cosigners, vkey)
        result = verify_data_dir(config.data_dir, cosigners)
        if witness is not None:
            witness_ok, witness_line = _witness_check(config, witness)
            anchor_line = witness_line if anchor_line is None else f"{anchor_line}\n{witness_line}"
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(result.summary())
    if anchor_line is not None:
        click.echo(anchor_line)
    if not result.ok or (owner_check and not anchor_ok) or not witness_ok:
        click.get_current_context().exit(1)


def _witness_check(config: Config, witness: str) -> tuple[bool, str]:
    """(ok?, the line to print) for ``--witness``: the log against the copy's checkpoints."""
    from doorbell.audit.log import AuditLog
    from doorbell.replicate.destination import open_destination
    from doorbell.replicate.witness import check_against_copy

    settings = config.replicate
    dest = open_destination(
        witness,
        host_key=settings.host_key,
        identity_file=settings.identity_file,
        timeout_s=settings.timeout_s,
    )
    try:
        with AuditLog.open_readonly(config.data_dir) as log:
            result = check_against_copy(dest, log.size, log.root_at, log.device_verifier())
    finally:
        dest.close()
    verdict = "OK" if result.ok else f"FAILED ({result.verdict})"
    return result.ok, f"witness {dest.description}: {verdict}: {result.message}"


def _owner_check(data_dir: Path, passphrase_file: Path | None) -> tuple[str, bool, str]:
    """(owner cosigner vkey, anchor ok?, the line to print) for ``--owner-check``."""
    import datetime
    import getpass
    import sys

    from doorbell.audit.anchor import AnchorError, AnchorMissing, check_log, read_anchor
    from doorbell.audit.log import AuditLog
    from doorbell.audit.note import CosignatureSigner
    from doorbell.keys import (
        OWNER_COSIGNER_NAME,
        derive_owner_anchor_key,
        derive_owner_cosigning_key,
        unlock_owner_identity,
    )
    from doorbell.passphrase import read_passphrase_file

    if passphrase_file is not None:
        passphrase = read_passphrase_file(passphrase_file)
    elif sys.stdin is not None and sys.stdin.isatty():
        passphrase = getpass.getpass("Owner passphrase: ")
    else:
        raise UsageError("no terminal to ask the passphrase on; use --passphrase-file F")
    identity = unlock_owner_identity(data_dir, passphrase)
    vkey = CosignatureSigner(OWNER_COSIGNER_NAME, derive_owner_cosigning_key(identity)).vkey
    try:
        anchor = read_anchor(data_dir, derive_owner_anchor_key(identity))
        with AuditLog.open_readonly(data_dir) as log:
            check_log(log.size, log.root_at, anchor)
    except AnchorMissing as exc:
        return vkey, False, f"owner anchor: FAILED: no owner anchor ({exc})"
    except AnchorError as exc:
        return vkey, False, f"owner anchor: FAILED: {exc}"
    when = datetime.datetime.fromtimestamp(anchor.time, tz=datetime.UTC).isoformat()
    return (
        vkey,
        True,
        (f"owner anchor: OK: the log extends the head you cosigned at size {anchor.size} ({when})"),
    )


@audit.command("export")
@config_options
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="New (or empty) directory to write the export into.",
)
def export(config_path: Path | None, data_dir: Path | None, out_dir: Path) -> None:
    """Write entries, checkpoints, cosignatures, device.vkey and VERIFY.md to a directory."""
    from doorbell.audit.export import export_log

    config = load_cli_config(config_path, data_dir)
    counts = export_log(config.data_dir, out_dir)
    click.echo(
        f"exported {counts['entries']} entries, {counts['checkpoints']} checkpoints, "
        f"{counts['cosignatures']} owner cosignatures to {out_dir} (see VERIFY.md)"
    )


@audit.command("show")
@config_options
@click.option(
    "--tail",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Show only the last N matching entries.",
)
@click.option(
    "--action", default=None, help="Only this action, or this prefix when it ends in '.'."
)
def show(config_path: Path | None, data_dir: Path | None, tail: int, action: str | None) -> None:
    """List audit entries, newest last."""
    from doorbell.audit.entries import EntryError, decode_entry
    from doorbell.audit.log import connect

    config = load_cli_config(config_path, data_dir)
    path = DataDir(config.data_dir).audit
    if not path.exists():
        raise UsageError(f"{path}: no audit log here")
    conn = connect(path, readonly=True)
    shown: collections.deque[str] = collections.deque(maxlen=tail)
    try:
        for index, leaf in conn.execute("SELECT idx, leaf FROM entries ORDER BY idx"):
            try:
                entry = decode_entry(bytes(leaf))
            except EntryError:
                shown.append(f"#{index}  (not a valid entry)")
                continue
            name = entry["action"]
            if action and not (
                name == action or (action.endswith(".") and name.startswith(action))
            ):
                continue
            details = json.dumps(entry["details"], ensure_ascii=False, sort_keys=True)
            target = f" {entry['object']}" if entry["object"] else ""
            extra = f"  {details}" if entry["details"] else ""
            shown.append(f"#{index}  {entry['time']}  {entry['actor']}  {name}{target}{extra}")
    finally:
        conn.close()
    for line in shown:
        click.echo(line)
