"""``doorbell verify-bundle``: check an export bundle as its recipient would."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from doorbell.datadir import DEVICE_VKEY_FILE
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


#: Exit codes (docs/formats.md): 0 verified against pinned keys (or keys trusted on
#: purpose with --trust-bundle-keys), 1 does not verify, 2 usage error, 3 self-consistent
#: only: every check passed but under keys the bundle carries itself.
EXIT_VERIFIED = 0
EXIT_SELF_CONSISTENT_ONLY = 3


def _owner_identity(key_file: Path, passphrase_file: Path | None) -> object:
    """The owner's identity from a passphrase-wrapped key file (``owner.key.age``)."""
    import io

    from doorbell.age.decrypt import decrypt
    from doorbell.age.identities import ScryptIdentity, parse_identities
    from doorbell.errors import AgeError, KeyFileError

    if passphrase_file is not None:
        lines = _read_small(passphrase_file, "passphrase file").splitlines()
        passphrase = lines[0] if lines else ""
    else:
        import getpass

        passphrase = getpass.getpass("Owner passphrase: ")
    try:
        data = key_file.read_bytes()
    except OSError as exc:
        raise UsageError(f"{key_file}: cannot read the owner key file ({exc.strerror})") from None
    if len(data) > _MAX_KEY_FILE:
        raise UsageError(f"{key_file}: too large to be an owner key file")
    try:
        text = decrypt(io.BytesIO(data), [ScryptIdentity(passphrase)]).read()
    except AgeError as exc:
        raise KeyFileError(f"{key_file}: cannot unlock the owner key ({exc})") from None
    identities = parse_identities(text.decode("utf-8", "replace"), source=str(key_file))
    if len(identities) != 1:
        raise KeyFileError(f"{key_file}: holds {len(identities)} identities, expected 1")
    return identities[0]


def _owner_device_vkey(owner_key_file: Path) -> tuple[str, Path]:
    """The device verifier key of the owner's own data dir: ``device.vkey`` beside the owner
    key file (both live in ``keys/``). The owner's data dir is the owner's own record of
    which device is theirs, as `doorbell keys show` prints it."""
    path = owner_key_file.parent / DEVICE_VKEY_FILE
    if not path.is_file():
        raise UsageError(
            f"{owner_key_file}: no device.vkey beside it (it is not in the owner's data dir's "
            "keys/); pass --device-vkey with the key `doorbell keys show` prints"
        )
    return _read_small(path, "device verifier key").strip(), path


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
    help="File holding the passphrase the owner gave you (first line); with --owner-key, "
    "the owner passphrase that unlocks it.",
)
@click.option(
    "--owner-key",
    "owner_key_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The owner's passphrase-wrapped key file (keys/owner.key.age): check the owner's own "
    "export. Pins both keys: the owner's cosigner key (derived from it) and the device key "
    "(--device-vkey, or keys/device.vkey beside the key file).",
)
@click.option(
    "--device-vkey",
    default=None,
    metavar="VKEY",
    help="The device verifier key you trust (`doorbell keys show` on the device).",
)
@click.option(
    "--cosigner-vkey",
    default=None,
    metavar="VKEY",
    help="The owner's cosigner verifier key you trust (`doorbell keys show`).",
)
@click.option(
    "--trust-bundle-keys",
    is_flag=True,
    help="Accept the keys the bundle carries (exit 0 instead of 3 without pinned keys).",
)
@click.option(
    "--extract",
    "extract_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also write the verified files into DIR (only if everything verifies).",
)
def verify_bundle(
    bundle: Path,
    identity_file: Path | None,
    passphrase_file: Path | None,
    owner_key_file: Path | None,
    device_vkey: str | None,
    cosigner_vkey: str | None,
    trust_bundle_keys: bool,
    extract_dir: Path | None,
) -> None:
    """Decrypt BUNDLE and check every clip hash, the manifest against the signed request
    entries, every clip's origin entry, the device signature, the owner's cosignature and
    every inclusion proof. Reads the whole stream: after the tar's end only zero bytes.

    Nothing is written unless --extract DIR is given; then exactly the verified files, and
    only when both keys were pinned (or --trust-bundle-keys); an existing name in DIR is
    never replaced.

    Exit 0: verified against the keys you pinned (--device-vkey and --cosigner-vkey, or
    --owner-key), or with --trust-bundle-keys. Exit 3: every check passed, but only under
    the keys the bundle carries (self-consistent; anyone can make such a bundle). Exit 1:
    it does not verify (the message names the file or check). Exit 2: usage error.
    """
    from doorbell.exports.verify import verify_bundle as verify

    given = [identity_file, owner_key_file]
    if (
        sum(x is not None for x in given) + (passphrase_file is not None and owner_key_file is None)
        != 1
    ):
        raise UsageError("give exactly one of -i IDENTITY, --passphrase-file FILE or --owner-key")
    identities: list[Identity]
    device_from: Path | None = None
    if identity_file is not None:
        from doorbell.age.identities import parse_identities

        identities = list(
            parse_identities(_read_small(identity_file, "identity file"), source=str(identity_file))
        )
    elif owner_key_file is not None:
        from doorbell.age.identities import X25519Identity
        from doorbell.audit.note import CosignatureSigner
        from doorbell.keys import OWNER_COSIGNER_NAME, derive_owner_cosigning_key

        owner = _owner_identity(owner_key_file, passphrase_file)
        if not isinstance(owner, X25519Identity):
            raise UsageError(f"{owner_key_file}: not an X25519 owner identity")
        identities = [owner]
        derived = CosignatureSigner(OWNER_COSIGNER_NAME, derive_owner_cosigning_key(owner)).vkey
        if cosigner_vkey is not None and cosigner_vkey.strip() != derived:
            raise UsageError("--cosigner-vkey is not the cosigner key of this owner key")
        cosigner_vkey = derived
        if device_vkey is None:
            device_vkey, device_from = _owner_device_vkey(owner_key_file)
    else:
        from doorbell.age.identities import ScryptIdentity

        if passphrase_file is None:
            raise UsageError("give -i IDENTITY, --passphrase-file FILE or --owner-key")
        lines = _read_small(passphrase_file, "passphrase file").splitlines()
        if not lines or not lines[0]:
            raise UsageError(f"{passphrase_file}: empty passphrase file")
        identities = [ScryptIdentity(lines[0])]
    report = verify(
        bundle,
        identities,
        device_vkey=device_vkey,
        cosigner_vkey=cosigner_vkey,
        extract_to=extract_dir,
        trust_bundle_keys=trust_bundle_keys,
    )
    summary = report.summary(trusted=trust_bundle_keys)
    if device_from is not None:
        first, _, rest = summary.partition("\n")
        summary = (
            f"{first}\n  device key from {device_from}; owner cosigner key derived from "
            f"{owner_key_file}\n{rest}"
        )
    click.echo(summary)
    if not report.keys_pinned and not trust_bundle_keys:
        raise SystemExit(EXIT_SELF_CONSISTENT_ONLY)
