"""``doorbell init``: create the owner keys, device key, TLS certificate and first audit entries.

Run once per data dir. Interactive by default (the passphrase is asked twice on the terminal,
with a generated suggestion); ``--passphrase-file F`` (mode 0600) for automation. The
passphrase is never taken from argv or the environment.
"""

from __future__ import annotations

import getpass
import socket
import sys
import time
from pathlib import Path

import click

from doorbell.audit.anchor import anchor_from_cosignature, write_anchor
from doorbell.audit.devicekey import create_device_key, load_device_signer
from doorbell.audit.log import AuditLog
from doorbell.commands.options import config_options, load_cli_config
from doorbell.datadir import DataDir
from doorbell.errors import KeyFileError, UsageError
from doorbell.keys import (
    OWNER_COSIGNER_NAME,
    OWNER_KEY_WORK_FACTOR,
    create_owner_keys,
    derive_owner_anchor_key,
    derive_owner_cosigning_key,
    fingerprint,
    write_owner_cosigner_vkey,
)
from doorbell.passphrase import prompt_new_passphrase, read_passphrase_file, require_strong
from doorbell.tls import create_self_signed_certificate


def existing_key_material(data_dir: Path) -> list[Path]:
    """Key and certificate files already present in ``data_dir`` (init refuses if any)."""
    paths = DataDir(data_dir)
    candidates = [paths.owner_key, paths.owner_recipients, paths.device_key, paths.device_vkey]
    candidates += [paths.tls_cert, paths.tls_key]
    return [path for path in candidates if path.exists()]


@click.command("init")
@config_options
@click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Read the owner passphrase from this file (first line; mode 0600 required).",
)
@click.option(
    "--owner-key-work-factor",
    type=click.IntRange(10, 22),
    default=OWNER_KEY_WORK_FACTOR,
    show_default=True,
    help="scrypt work factor (log2 N) protecting keys/owner.key.age; see docs/keys.md.",
)
@click.option(
    "--hostname",
    default=None,
    help="Name for the TLS certificate (default: this machine's hostname).",
)
def init(
    config_path: Path | None,
    data_dir: Path | None,
    passphrase_file: Path | None,
    owner_key_work_factor: int,
    hostname: str | None,
) -> None:
    """Create keys for a new doorbell: owner identity, device key, TLS certificate.

    Writes keys/owner.recipients, keys/owner.key.age (passphrase-protected, opens with the
    stock `age` tool), keys/device.key and device.vkey, tls/cert.pem and tls/key.pem, the
    first audit log entries, cosigned, and the owner anchor (owner/owner-anchor). Refuses to
    overwrite existing keys.
    """
    config = load_cli_config(config_path, data_dir)
    root = config.data_dir
    present = existing_key_material(root)
    if present:
        listed = ", ".join(str(p) for p in present)
        raise KeyFileError(f"already initialised ({listed} exist); refusing to overwrite keys")
    if passphrase_file is not None:
        passphrase = read_passphrase_file(passphrase_file)
        require_strong(passphrase)
    elif sys.stdin is not None and sys.stdin.isatty():
        click.echo("Choose the owner passphrase. It unlocks the web UI and your footage.")
        passphrase = prompt_new_passphrase(getpass.getpass, click.echo)
    else:
        raise UsageError("no terminal to ask the passphrase on; use --passphrase-file F")
    root.mkdir(mode=0o750, parents=True, exist_ok=True)
    identity = create_owner_keys(root, passphrase, work_factor=owner_key_work_factor)
    device_vkey = create_device_key(DataDir(root).keys)
    name = hostname or socket.gethostname() or "doorbell"
    tls_fingerprint = create_self_signed_certificate(
        root, [name, "doorbell.local", "localhost"], clock=time.time
    )
    recipient = str(identity.recipient)
    with AuditLog.open(root, signer=load_device_signer(DataDir(root).keys)) as log:
        log.append(
            "owner",
            "keys.created",
            "keys",
            {
                "owner_recipient": recipient,
                "owner_recipient_fingerprint": fingerprint(recipient),
                "owner_key_work_factor": owner_key_work_factor,
                "device_vkey": device_vkey,
                "tls_sha256": tls_fingerprint,
                # says, inside every cosigned prefix, that this data dir has an owner anchor
                "owner_anchor": True,
            },
        )
        note = log.cosign(derive_owner_cosigning_key(identity), OWNER_COSIGNER_NAME, first=True)
        write_anchor(root, anchor_from_cosignature(note), derive_owner_anchor_key(identity))
    cosigner_vkey = write_owner_cosigner_vkey(root, identity)
    click.echo(f"Initialised {root}")
    click.echo(f"  owner recipient:   {recipient}  (fingerprint {fingerprint(recipient)})")
    click.echo(f"  owner key:         {DataDir(root).owner_key} (scrypt 2^{owner_key_work_factor})")
    click.echo(f"  device key:        {device_vkey}")
    click.echo(f"  owner cosigner:    {cosigner_vkey}")
    click.echo(f"  TLS SHA-256:       {tls_fingerprint}")
    click.echo(
        "Write down the passphrase and make a paper backup of the identity: see docs/keys.md."
    )
    click.echo("Check the TLS fingerprint in your browser the first time you connect.")
