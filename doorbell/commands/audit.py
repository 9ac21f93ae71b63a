"""``doorbell audit``: verify, export and read the signed audit log."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import click

from doorbell.cli import config_options, load_cli_config
from doorbell.errors import UsageError


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
def verify(config_path: Path | None, data_dir: Path | None, export_dir: Path | None,
           cosigners: tuple[str, ...]) -> None:  # fmt: skip
    """Recompute the tree and check every checkpoint and owner cosignature.

    Prints a one-line verdict with counts. Exit 0 when everything holds, 1 with the first bad
    entry index and what failed otherwise.
    """
    from doorbell.audit.verify import verify_data_dir, verify_export

    if export_dir is not None and (data_dir is not None or config_path is not None):
        raise UsageError("give either --from EXPORT_DIR or --data-dir/--config, not both")
    if export_dir is not None:
        result = verify_export(export_dir, cosigners)
    else:
        config = load_cli_config(config_path, data_dir)
        result = verify_data_dir(config.data_dir, cosigners)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(result.summary())
    if not result.ok:
        click.get_current_context().exit(1)


@audit.command("export")
@config_options
@click.option("--out", "out_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="New (or empty) directory to write the export into.")  # fmt: skip
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
@click.option("--tail", type=click.IntRange(min=1), default=20, show_default=True,
              help="Show only the last N matching entries.")  # fmt: skip
@click.option("--action", default=None,
              help="Only this action, or this prefix when it ends in '.'.")  # fmt: skip
def show(config_path: Path | None, data_dir: Path | None, tail: int, action: str | None) -> None:
    """List audit entries, newest last."""
    from doorbell.audit.entries import EntryError, decode_entry
    from doorbell.audit.log import AUDIT_DB_FILE, connect

    config = load_cli_config(config_path, data_dir)
    path = config.data_dir / AUDIT_DB_FILE
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
