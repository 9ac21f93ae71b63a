"""Interop with two independent age implementations: the Debian ``age`` CLI and pyrage.

Both directions, X25519 and passphrase, binary and armored. The CLI reads passphrases from
the terminal only, so those cases run it on a pseudo-terminal (tests/age_tty.py). Files the
CLI or pyrage encrypt to a passphrase use their fixed work factor 2**18 (about 1 s to open).
"""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import pyrage
import pytest
from age_tty import run_with_tty
from conftest import require_tool

from doorbell.age.decrypt import decrypt
from doorbell.age.encrypt import encrypt
from doorbell.age.identities import ScryptIdentity, X25519Identity, parse_identity
from doorbell.age.recipients import ScryptRecipient, parse_recipient

SIZES = [0, 1, 65535, 65536, 65537, 3 * 65536 + 7]


def plaintext(size: int) -> bytes:
    return os.urandom(size)


def ours_encrypt(data: bytes, recipients: list, *, armor: bool = False) -> bytes:
    sink = io.BytesIO()
    with encrypt(sink, recipients, armor=armor) as writer:
        writer.write(data)
    return sink.getvalue()


@pytest.mark.parametrize("armor", [False, True])
def test_age_cli_decrypts_ours_x25519(tmp_path: Path, armor: bool) -> None:
    age = require_tool("age")
    identity = X25519Identity.generate()
    (tmp_path / "id.txt").write_text(f"{identity}\n")
    for size in SIZES:
        data = plaintext(size)
        (tmp_path / "f.age").write_bytes(ours_encrypt(data, [identity.recipient], armor=armor))
        out = subprocess.run(
            [age, "-d", "-i", str(tmp_path / "id.txt"), str(tmp_path / "f.age")],
            capture_output=True,
            check=True,
        ).stdout
        assert out == data, size


@pytest.mark.parametrize("armor", [False, True])
def test_we_decrypt_age_cli_x25519(tmp_path: Path, armor: bool) -> None:
    age = require_tool("age")
    identity = X25519Identity.generate()
    for size in SIZES:
        data = plaintext(size)
        (tmp_path / "plain").write_bytes(data)
        args = [age, "-r", str(identity.recipient), *(["-a"] if armor else [])]
        ciphertext = subprocess.run(
            [*args, str(tmp_path / "plain")], capture_output=True, check=True
        ).stdout
        assert decrypt(io.BytesIO(ciphertext), [identity]).read() == data, size


def test_age_cli_keygen_keys_parse_and_work(tmp_path: Path) -> None:
    require_tool("age")
    keygen = require_tool("age-keygen")
    generated = subprocess.run([keygen], capture_output=True, text=True, check=True).stdout
    secret = next(line for line in generated.splitlines() if line.startswith("AGE-SECRET"))
    public = next(line for line in generated.splitlines() if "public key" in line).split()[-1]
    identity = parse_identity(secret)
    assert str(identity) == secret
    assert str(identity.recipient) == public
    assert parse_recipient(public) == identity.recipient


def test_age_cli_decrypts_our_passphrase_file(tmp_path: Path) -> None:
    age = require_tool("age")
    data = plaintext(70000)
    encrypted = ours_encrypt(data, [ScryptRecipient("tty horse battery", work_factor=10)])
    (tmp_path / "f.age").write_bytes(encrypted)
    code, shown = run_with_tty(
        [age, "-d", "-o", str(tmp_path / "out"), str(tmp_path / "f.age")], ["tty horse battery"]
    )
    assert code == 0, shown
    assert (tmp_path / "out").read_bytes() == data


def test_we_decrypt_age_cli_passphrase_file(tmp_path: Path) -> None:
    age = require_tool("age")
    data = plaintext(1000)
    (tmp_path / "plain").write_bytes(data)
    out = tmp_path / "f.age"
    code, shown = run_with_tty(
        [age, "-p", "-o", str(out), str(tmp_path / "plain")], ["cli pass phrase", "cli pass phrase"]
    )
    assert code == 0, shown
    assert decrypt(io.BytesIO(out.read_bytes()), [ScryptIdentity("cli pass phrase")]).read() == data


def test_pyrage_both_ways_x25519() -> None:
    ours = X25519Identity.generate()
    theirs = pyrage.x25519.Identity.generate()
    for size in SIZES:
        data = plaintext(size)
        mine = ours_encrypt(data, [parse_recipient(str(theirs.to_public()))])
        assert pyrage.decrypt(mine, [theirs]) == data
        foreign = pyrage.encrypt(data, [pyrage.x25519.Recipient.from_str(str(ours.recipient))])
        assert decrypt(io.BytesIO(foreign), [ours]).read() == data
    # the same secret key in both libraries
    assert str(pyrage.x25519.Identity.from_str(str(ours)).to_public()) == str(ours.recipient)


def test_pyrage_both_ways_passphrase() -> None:
    data = plaintext(65537)
    mine = ours_encrypt(data, [ScryptRecipient("pyrage phrase", work_factor=10)])
    assert pyrage.passphrase.decrypt(mine, "pyrage phrase") == data
    foreign = pyrage.passphrase.encrypt(data, "pyrage phrase")
    assert decrypt(io.BytesIO(foreign), [ScryptIdentity("pyrage phrase")]).read() == data
