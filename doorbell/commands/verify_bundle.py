"""``doorbell verify-bundle``: check an export bundle as its recipient would."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from doorbell.errors import UsageError

if TYPE_CHECKING:
    from doorbell.age.identities import Identity

#: Identity and passphrase files are small; anything bigger is not one.
_MAX_KEY_FILE = 64 * 1024


def _read_small(path: Path, what: str) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    if len(data) > _MAX_KEY_FILE:
        raise UsageError(f"{path}: too large to be a {what}")
    return data.decode("utf-8", "replace")


@click.command("verify-bundle")
@click.argument("bundle", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "-i",
    "--identity",
    "identity_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="age identity file (AGE-SECRET-KEY-1...) the bundle was encrypted to.",
)
@click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File holding the passphrase the owner gave you (first line).",
)
@click.option(
    "--device-vkey",
    default=None,
    metavar="VKEY",
    help="The device verifier key you trust (else the bundle's own, with a warning).",
)
@click.option(
    "--cosigner-vkey",
    default=None,
    metavar="VKEY",
    help="The owner's cosigner verifier key you trust.",
)
def verify_bundle(
    bundle: Path,
    identity_file: Path | None,
    passphrase_file: Path | None,
    device_vkey: str | None,
    cosigner_vkey: str | None,
) -> None:
    """Decrypt BUNDLE and check every clip hash, the manifest, the device signature, the
    owner's cosignature and every inclusion proof. Nothing is written to disk.

    Exit 0 with a summary when all holds; exit 1 naming the file or check that failed.
    """
    from doorbell.exports.verify import verify_bundle as verify

    identities: list[Identity]
    if (identity_file is None) == (passphrase_file is None):
        raise UsageError("give exactly one of -i IDENTITY or --passphrase-file FILE")
    if identity_file is not None:
        from doorbell.age.identities import parse_identities

        identities = list(
            parse_identities(_read_small(identity_file, "identity file"), source=str(identity_file))
        )
    elif passphrase_file is not None:
        from doorbell.age.identities import ScryptIdentity

        lines = _read_small(passphrase_file, "passphrase file").splitlines()
        if not lines or not lines[0]:
            raise UsageError(f"{passphrase_file}: empty passphrase file")
        identities = [ScryptIdentity(lines[0])]
    report = verify(bundle, identities, device_vkey=device_vkey, cosigner_vkey=cosigner_vkey)
    click.echo(report.summary())
