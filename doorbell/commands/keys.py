"""``doorbell keys``: show the public keys, change the owner passphrase."""

from __future__ import annotations

import getpass
import stat
import sys
from pathlib import Path

import click

from doorbell.commands.options import config_options, load_cli_config
from doorbell.errors import DoorbellError, UsageError
from doorbell.passphrase import prompt_new_passphrase, read_passphrase_file, require_strong


@click.group("keys")
def keys() -> None:
    """Show the public keys, change the owner passphrase."""


def _mode(path: Path) -> str:
    return f"{stat.S_IMODE(path.stat().st_mode):04o}" if path.exists() else "missing"


@keys.command("show")
@config_options
def show(config_path: Path | None, data_dir: Path | None) -> None:
    """Print the public keys and fingerprints (no passphrase needed, nothing secret)."""
    from doorbell.datadir import DataDir
    from doorbell.keys import (
        fingerprint,
        owner_key_path,
        owner_key_work_factor,
    )
    from doorbell.pubkeys import load_owner_recipients, owner_recipients_path
    from doorbell.tls import certificate_fingerprint

    root = load_cli_config(config_path, data_dir).data_dir
    for recipient in load_owner_recipients(root):
        click.echo(f"owner recipient:  {recipient}  (fingerprint {fingerprint(str(recipient))})")
    click.echo(f"  {owner_recipients_path(root)} mode {_mode(owner_recipients_path(root))}")
    key_path = owner_key_path(root)
    click.echo(
        f"owner key file:   {key_path} mode {_mode(key_path)}, "
        f"scrypt work factor 2^{owner_key_work_factor(root)}"
    )
    vkey_path = DataDir(root).device_vkey
    if vkey_path.exists():
        click.echo(f"device key:       {vkey_path.read_text(encoding='utf-8').strip()}")
        click.echo(f"  {DataDir(root).device_key} mode {_mode(DataDir(root).device_key)}")
    cosigner_path = DataDir(root).owner_cosigner_vkey
    if cosigner_path.exists():
        click.echo(f"owner cosigner:   {cosigner_path.read_text(encoding='utf-8').strip()}")
    else:
        click.echo(
            f"owner cosigner:   {cosigner_path} missing (written by `doorbell init`); check your "
            "own exports with `doorbell verify-bundle --owner-key keys/owner.key.age`"
        )
    click.echo(
        "  give both the device key and the owner cosigner key to a requester by another "
        "channel: `doorbell verify-bundle --device-vkey ... --cosigner-vkey ...`"
    )
    cert = DataDir(root).tls_cert
    if cert.exists():
        click.echo(f"TLS SHA-256:      {certificate_fingerprint(cert)}")


@keys.command("change-passphrase")
@config_options
@click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File holding the CURRENT passphrase (mode 0600).",
)
@click.option(
    "--new-passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File holding the NEW passphrase (mode 0600).",
)
@click.option(
    "--owner-key-work-factor",
    type=click.IntRange(10, 22),
    default=None,
    help="scrypt work factor for the re-sealed key (default: doorbell's owner-key default).",
)
def change_passphrase(
    config_path: Path | None,
    data_dir: Path | None,
    passphrase_file: Path | None,
    new_passphrase_file: Path | None,
    owner_key_work_factor: int | None,
) -> None:
    """Re-encrypt keys/owner.key.age under a new passphrase (same identity, same recipient)."""
    from doorbell.keys import OWNER_KEY_WORK_FACTOR, change_owner_passphrase

    root = load_cli_config(config_path, data_dir).data_dir
    interactive = sys.stdin is not None and sys.stdin.isatty()
    if passphrase_file is not None:
        old = read_passphrase_file(passphrase_file)
    elif interactive:
        old = getpass.getpass("Current passphrase: ")
    else:
        raise UsageError("no terminal to ask the passphrase on; use --passphrase-file F")
    if new_passphrase_file is not None:
        new = read_passphrase_file(new_passphrase_file)
        require_strong(new)
    elif interactive:
        new = prompt_new_passphrase(getpass.getpass, click.echo)
    else:
        raise UsageError("no terminal to ask the new passphrase on; use --new-passphrase-file F")
    if new == old:
        raise UsageError("the new passphrase is the same as the current one")
    work_factor = owner_key_work_factor or OWNER_KEY_WORK_FACTOR
    identity = change_owner_passphrase(root, old, new, work_factor=work_factor)
    _audit_passphrase_change(root)
    click.echo(f"Passphrase changed for {identity.recipient}.")


def _audit_passphrase_change(root: Path) -> None:
    """Record the change in the audit log (signed now if the device key is readable)."""
    from doorbell.audit.devicekey import load_device_signer
    from doorbell.audit.log import AuditLog
    from doorbell.datadir import OWNER_KEY_OBJECT, DataDir

    try:
        signer = load_device_signer(DataDir(root).keys)
    except DoorbellError:
        signer = None  # another process holding the device key will sign the entry
    with AuditLog.open(root, signer=signer) as log:
        log.append("owner", "keys.passphrase_changed", OWNER_KEY_OBJECT)
