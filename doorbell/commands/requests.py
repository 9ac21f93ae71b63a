"""``doorbell requests``: export requests for headless owners (same rules as the web UI).

``add`` enters a request received on paper; ``approve`` asks for the owner passphrase again
(step-up: terminal prompt or ``--passphrase-file``), checks the audit log against the owner
anchor and cosigns it as web unlock does (a missing anchor or a rewritten log: exit 1,
nothing approved; see docs/audit.md) and builds the bundle with progress;
``deny`` records a reason the requester sees; ``invite`` makes a portal invitation link.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from doorbell.commands.options import config_options, load_cli_config
from doorbell.datadir import DataDir
from doorbell.errors import KeyFileError, UsageError


@contextlib.contextmanager
def _opened(config_path: Path | None, data_dir: Path | None) -> Iterator[dict[str, Any]]:
    from doorbell.audit.devicekey import load_device_signer
    from doorbell.audit.log import AuditLog
    from doorbell.exports.registry import ExportRegistry
    from doorbell.store import Store

    config = load_cli_config(config_path, data_dir)
    root = config.data_dir
    try:
        signer = load_device_signer(DataDir(root).keys)
    except KeyFileError:
        signer = None  # the recorder signs the checkpoints then
    with (
        Store.open(root) as store,
        AuditLog.open(
            root, signer=signer, checkpoint_interval_s=config.audit.checkpoint_interval_s
        ) as audit,
        ExportRegistry.open(root, audit, config=config.exports) as registry,
    ):
        registry.sweep()
        yield {"config": config, "store": store, "audit": audit, "registry": registry}


def _secret_from(path: Path | None, prompt: str, *, confirm: bool = False) -> str:
    if path is None:
        return click.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror})") from None
    if not lines or not lines[0]:
        raise UsageError(f"{path}: empty")
    return lines[0]


@click.group("requests")
def requests() -> None:
    """Export requests: add, list, show, approve, deny, invite."""


@requests.command("add")
@config_options
@click.option("--requester", required=True)
@click.option("--organisation", default="")
@click.option("--contact", required=True)
@click.option(
    "--kind",
    required=True,
    type=click.Choice(["police", "insurer", "neighbour", "household", "other"]),
)
@click.option(
    "--legal-basis",
    required=True,
    type=click.Choice(["voluntary", "warrant", "subpoena", "court_order"]),
)
@click.option("--reference", "legal_reference", default="", help="Warrant/subpoena number.")
@click.option("--from", "window_start", required=True, help="Window start, UTC (2026-01-02T15:04).")
@click.option("--to", "window_end", required=True, help="Window end, UTC.")
@click.option("--reason", required=True)
@click.option("--recipient", default=None, help="Requester's age1... key (else a passphrase).")
def add(
    config_path: Path | None, data_dir: Path | None, recipient: str | None, **fields: str
) -> None:
    """Enter a request received on paper. Prints its id and the requester's status link
    token (shown once)."""
    raw: dict[str, object] = dict(fields)
    raw["delivery"] = "recipient" if recipient else "passphrase"
    if recipient:
        raw["recipient"] = recipient
    from doorbell.ui.guard import device_url

    with _opened(config_path, data_dir) as opened:
        request, token = opened["registry"].submit(raw, source="owner")
        link = device_url(opened["config"].web, f"/requests/status/{token}")
    click.echo(f"added {request.id} (pending)")
    # the same link the owner's request page shows again (from the configuration)
    click.echo(f"requester status link: {link}")


@requests.command("list")
@config_options
@click.option("--status", default=None, help="Only requests in this state.")
def list_requests(config_path: Path | None, data_dir: Path | None, status: str | None) -> None:
    """List requests, newest first."""
    from doorbell.exports.model import format_time

    with _opened(config_path, data_dir) as opened:
        found = opened["registry"].requests(status=status)
    for r in found:
        click.echo(
            f"{r.id}  {r.status:<9} {r.fields.kind:<9} {r.fields.legal_basis:<11} "
            f"{format_time(r.created_at)}  {r.fields.requester}"
        )
    if not found:
        click.echo("no requests")


@requests.command("show")
@config_options
@click.argument("request_id")
def show(config_path: Path | None, data_dir: Path | None, request_id: str) -> None:
    """Show a request and the clips in its time window."""
    import time

    from doorbell.exports.model import format_time, window_warning
    from doorbell.exports.service import clips_for_request

    with _opened(config_path, data_dir) as opened:
        r = opened["registry"].get(request_id)
        clips = clips_for_request(opened["store"], r)
        path = opened["registry"].bundle_path(r.id)
    f = r.fields
    click.echo(f"{r.id}: {r.status} (source {r.source}, submitted {format_time(r.created_at)})")
    click.echo(f"  requester: {f.requester} / {f.organisation or '-'} / {f.contact}")
    click.echo(f"  kind: {f.kind}; legal basis: {f.legal_basis} {f.legal_reference}".rstrip())
    click.echo(f"  window: {format_time(f.window_start)} to {format_time(f.window_end)}")
    warning = window_warning(f.window_start, f.window_end, time.time())
    if warning:
        click.echo(f"  WARNING: {warning}")
    click.echo(f"  delivery: {f.delivery} {f.recipient or ''}".rstrip())
    click.echo(f"  reason: {f.reason}")
    if r.status == "pending":
        click.echo(f"  decide by: {format_time(r.decide_by)}")
    if r.deny_reason:
        click.echo(f"  denied: {r.deny_reason}")
    if r.clip_ids:
        click.echo(
            f"  approved clips: {', '.join(r.clip_ids)}; bundle {r.bundle_state}, "
            f"{r.downloads}/{r.download_limit} downloads, "
            f"expires {format_time(r.bundle_expires_at)}"
        )
        if r.bundle_state == "ready":
            click.echo(f"  bundle: {path}")
    click.echo(f"  clips in the window: {len(clips)}")
    for c in clips:
        click.echo(f"    {c.id}  {format_time(c.started_at)}  {c.duration_s:.1f} s  {c.trigger}")


@requests.command("approve")
@config_options
@click.argument("request_id")
@click.option("--clip", "clip_ids", multiple=True, help="Clip id to include (repeatable).")
@click.option("--all", "all_clips", is_flag=True, help="Include every clip in the window.")
@click.option("--expires-days", type=float, default=None, help="Bundle lifetime in days.")
@click.option("--download-limit", type=int, default=None)
@click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Owner passphrase (step-up) from this file instead of a prompt.",
)
@click.option(
    "--bundle-passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="For passphrase delivery: the bundle passphrase (else prompted).",
)
@click.option(
    "--include-later-footage",
    is_flag=True,
    help="Allow clips sealed after the request was submitted (the bundle says so).",
)
@click.option("--redact-faces", is_flag=True, help="Blur faces (detected automatically).")
@click.option(
    "--redact-region",
    "redact_regions",
    multiple=True,
    metavar="X0,Y0,X1,Y1",
    help="Redact this box in every frame (relative 0..1: left,top,right,bottom; repeatable).",
)
@click.option(
    "--keep-region",
    "keep_regions",
    multiple=True,
    metavar="X0,Y0,X1,Y1",
    help="Redact everything outside this box (repeatable: outside all of them).",
)
@click.option(
    "--redact-method",
    type=click.Choice(["pixelate", "fill"]),
    default="pixelate",
    show_default=True,
    help="How redacted areas are made unrecognisable.",
)
def approve(
    config_path: Path | None,
    data_dir: Path | None,
    request_id: str,
    clip_ids: tuple[str, ...],
    all_clips: bool,
    expires_days: float | None,
    download_limit: int | None,
    passphrase_file: Path | None,
    bundle_passphrase_file: Path | None,
    redact_faces: bool,
    redact_regions: tuple[str, ...],
    keep_regions: tuple[str, ...],
    redact_method: str,
    include_later_footage: bool,
) -> None:
    """Approve a request (asks the owner passphrase again) and build its bundle.

    First the audit log is checked against the owner anchor and cosigned, as at web unlock:
    if the anchor is missing or the log does not match it, nothing is approved (exit 1).

    Redaction (optional, the same as the web page): --redact-faces, --redact-region and
    --keep-region boxes in relative coordinates, --redact-method. Progress goes to stderr.
    """
    from doorbell.errors import RedactionError
    from doorbell.exports.service import approve_and_build, clips_for_request
    from doorbell.keys import derive_owner_cosigning_key, unlock_owner_identity
    from doorbell.redact.parse import spec_from_cli

    if bool(clip_ids) == all_clips:
        raise UsageError("give --clip ID (repeatable) or --all, not both")
    try:
        spec = spec_from_cli(
            faces=redact_faces, regions=redact_regions, keep=keep_regions, method=redact_method
        )
    except RedactionError as exc:
        raise UsageError(str(exc)) from None
    if not spec.is_empty:
        click.echo(
            f"redaction: faces {'on' if spec.faces else 'off'}, "
            f"{len(spec.regions)} region(s), {len(spec.keep)} kept region(s), "
            f"{spec.method}",
            err=True,
        )
    with _opened(config_path, data_dir) as opened:
        registry, store = opened["registry"], opened["store"]
        request = registry.get(request_id)
        chosen = [c.id for c in clips_for_request(store, request)] if all_clips else list(clip_ids)
        bundle_passphrase = None
        if request.fields.delivery == "passphrase":
            bundle_passphrase = _secret_from(
                bundle_passphrase_file, "Bundle passphrase (give it to the requester)", confirm=True
            )
        owner_passphrase = _secret_from(passphrase_file, "Owner passphrase (step-up)")
        identity = unlock_owner_identity(opened["config"].data_dir, owner_passphrase)

        shown = {"line": ""}

        def progress(stage: str, done: int, total: int) -> None:
            percent = int(100 * done / total) if total else 100
            line = f"  {stage}: {percent:3d}%"
            if line != shown["line"]:  # one line per change, not per chunk
                shown["line"] = line
                click.echo(f"\r{line}", nl=False, err=True)

        result = approve_and_build(
            registry,
            store,
            opened["audit"],
            request_id,
            identity=identity,
            cosigning_key=derive_owner_cosigning_key(identity),
            clip_ids=chosen,
            passphrase=bundle_passphrase,
            progress=progress,
            expires_in_s=None if expires_days is None else expires_days * 86400,
            download_limit=download_limit,
            redaction=None if spec.is_empty else spec.to_dict(),
            include_later_footage=include_later_footage,
        )
    click.echo("", err=True)
    click.echo(
        f"approved {request_id}: {result.clips} clip(s), bundle {result.path} "
        f"({result.size} bytes, manifest SHA-256 {result.manifest_sha256})"
    )


@requests.command("deny")
@config_options
@click.argument("request_id")
@click.option("--reason", required=True, help="Shown to the requester.")
def deny(config_path: Path | None, data_dir: Path | None, request_id: str, reason: str) -> None:
    """Deny a pending request with a reason the requester sees."""
    with _opened(config_path, data_dir) as opened:
        opened["registry"].deny(request_id, reason)
    click.echo(f"denied {request_id}")


@requests.command("invite")
@config_options
@click.option("--label", default="", help="A note for yourself (who you gave it to).")
@click.option("--days", type=float, default=None, help="How long the link works.")
def invite(config_path: Path | None, data_dir: Path | None, label: str, days: float | None) -> None:
    """Create a single-use invitation link for the requester portal (shown once)."""
    with _opened(config_path, data_dir) as opened:
        invitation, token = opened["registry"].create_invitation(
            label, expires_in_s=None if days is None else days * 86400
        )
    click.echo(f"invitation {invitation.id}: /requests/invite/{token}")
