"""Owner keys (doorbell.keys, doorbell.pubkeys) and passphrases (doorbell.passphrase).

scrypt work factors stay low (2**10) here, except the one test that checks the owner-key
default. The stock ``age`` CLI must open owner.key.age (via a pty) to a plain identity file,
and open a clip encrypted to owner.recipients with ``-i keys/owner.key.age``.
"""

from __future__ import annotations

import io
import stat
import time
from pathlib import Path

import pytest
from age_tty import run_with_tty
from conftest import require_tool

from doorbell.age.encrypt import encrypt
from doorbell.age.header import read_header
from doorbell.age.identities import parse_identities
from doorbell.errors import KeyFileError, PassphraseError
from doorbell.keys import (
    OWNER_KEY_WORK_FACTOR,
    change_owner_passphrase,
    create_owner_keys,
    derive_owner_anchor_key,
    derive_owner_cosigning_key,
    owner_key_path,
    owner_key_work_factor,
    unlock_owner_identity,
)
from doorbell.passphrase import (
    assess_passphrase,
    generate_passphrase,
    read_passphrase_file,
    require_strong,
)
from doorbell.pubkeys import load_owner_recipients, owner_recipients_path

PASSPHRASE = "amber-falcon-quiet-harbor-9"
FAST = 10


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_create_writes_public_and_sealed_files_with_modes(data_dir: Path) -> None:
    identity = create_owner_keys(data_dir, PASSPHRASE, work_factor=FAST)
    assert load_owner_recipients(data_dir) == [identity.recipient]
    assert mode(owner_recipients_path(data_dir)) == 0o644
    assert mode(owner_key_path(data_dir)) == 0o600
    sealed = owner_key_path(data_dir).read_bytes()
    assert str(identity).encode() not in sealed
    assert owner_key_work_factor(data_dir) == FAST
    unlocked = unlock_owner_identity(data_dir, PASSPHRASE)
    assert str(unlocked) == str(identity)


def test_create_refuses_to_overwrite(data_dir: Path) -> None:
    create_owner_keys(data_dir, PASSPHRASE, work_factor=FAST)
    before = owner_key_path(data_dir).read_bytes()
    with pytest.raises(KeyFileError, match="refusing"):
        create_owner_keys(data_dir, PASSPHRASE, work_factor=FAST)
    assert owner_key_path(data_dir).read_bytes() == before


def test_wrong_passphrase_and_missing_files_are_clear(data_dir: Path) -> None:
    with pytest.raises(KeyFileError, match="doorbell init"):
        unlock_owner_identity(data_dir, PASSPHRASE)
    with pytest.raises(KeyFileError, match="doorbell init"):
        load_owner_recipients(data_dir)
    create_owner_keys(data_dir, PASSPHRASE, work_factor=FAST)
    with pytest.raises(PassphraseError, match="wrong passphrase"):
        unlock_owner_identity(data_dir, "not it at all")


def test_mismatched_recipients_file_is_detected(data_dir: Path, tmp_path: Path) -> None:
    create_owner_keys(data_dir, PASSPHRASE, work_factor=FAST)
    other = tmp_path / "other"
    other.mkdir()
    create_owner_keys(other, PASSPHRASE, work_factor=FAST)
    owner_recipients_path(data_dir).write_bytes(owner_recipients_path(other).read_bytes())
    with pytest.raises(KeyFileError, match="does not match"):
        unlock_owner_identity(data_dir, PASSPHRASE)


def test_change_passphrase_keeps_the_identity(data_dir: Path) -> None:
    identity = create_owner_keys(data_dir, PASSPHRASE, work_factor=FAST)
    change_owner_passphrase(data_dir, PASSPHRASE, "new-lantern-orbit-cedar-44", work_factor=FAST)
    assert mode(owner_key_path(data_dir)) == 0o600
    with pytest.raises(PassphraseError):
        unlock_owner_identity(data_dir, PASSPHRASE)
    assert str(unlock_owner_identity(data_dir, "new-lantern-orbit-cedar-44")) == str(identity)
    with pytest.raises(PassphraseError):
        change_owner_passphrase(data_dir, PASSPHRASE, "x", work_factor=FAST)


def test_cosigning_key_is_derived_deterministically(data_dir: Path) -> None:
    identity = create_owner_keys(data_dir, PASSPHRASE, work_factor=FAST)
    first = derive_owner_cosigning_key(identity).public_key().public_bytes_raw()
    again = derive_owner_cosigning_key(unlock_owner_identity(data_dir, PASSPHRASE))
    assert again.public_key().public_bytes_raw() == first
    assert first != identity.recipient.public_bytes


def test_anchor_key_is_derived_deterministically_and_apart(data_dir: Path) -> None:
    identity = create_owner_keys(data_dir, PASSPHRASE, work_factor=FAST)
    key = derive_owner_anchor_key(identity)
    assert len(key) == 32
    assert derive_owner_anchor_key(unlock_owner_identity(data_dir, PASSPHRASE)) == key
    cosigning = derive_owner_cosigning_key(identity).private_bytes_raw()
    assert key != cosigning and key != identity.secret_bytes


def test_owner_key_default_work_factor_is_ages_default(data_dir: Path) -> None:
    """The one slow-ish test: the real default (2**18 = 256 MiB, age's own, issue 17) is what
    init writes; a key file written at 2**16 before still opens."""
    assert OWNER_KEY_WORK_FACTOR >= 18
    create_owner_keys(data_dir, PASSPHRASE)
    header, _, _ = read_header(io.BytesIO(owner_key_path(data_dir).read_bytes()))
    assert header.stanzas[0].type == "scrypt" and header.stanzas[0].args[1] == "18"
    started = time.monotonic()
    unlock_owner_identity(data_dir, PASSPHRASE)
    assert time.monotonic() - started < 20
    older = data_dir / "older"
    older.mkdir()
    create_owner_keys(older, PASSPHRASE, work_factor=16)
    unlock_owner_identity(older, PASSPHRASE)


def test_stock_age_opens_owner_key_and_a_clip_for_owner_recipients(data_dir: Path) -> None:
    age = require_tool("age")
    identity = create_owner_keys(data_dir, PASSPHRASE, work_factor=FAST)
    plain_identity = data_dir / "identity.txt"
    code, shown = run_with_tty(
        [age, "-d", "-o", str(plain_identity), str(owner_key_path(data_dir))], [PASSPHRASE]
    )
    assert code == 0, shown
    assert [str(i) for i in parse_identities(plain_identity.read_text())] == [str(identity)]
    plain_identity.unlink()
    clip = b"\x00\x00\x00\x18ftypiso5" + bytes(200_000)
    with (
        (data_dir / "clip.mp4.age").open("wb") as sink,
        encrypt(sink, load_owner_recipients(data_dir)) as w,
    ):
        w.write(clip)
    out = data_dir / "clip.mp4"
    code, shown = run_with_tty(
        [
            age,
            "-d",
            "-i",
            str(owner_key_path(data_dir)),
            "-o",
            str(out),
            str(data_dir / "clip.mp4.age"),
        ],
        [PASSPHRASE],
    )
    assert code == 0, shown
    assert out.read_bytes() == clip


# --- passphrases ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "weak",
    [
        "short",
        "aaaaaaaaaaaaaaaa",
        "abcdefghijklmnop",
        "Password12345",
        "my doorbell 2024",
        "one two three",
        # issue 17, finding 7: accepted by the character-class estimate used before
        "P@ssw0rd12345",
        "Qwerty123456!",
        "Doorb3ll2024!",
        "1qaz2wsx3edc4rfv",
        "Summer2024!Summer",
    ],
)
def test_weak_passphrases_are_rejected_with_a_reason(weak: str) -> None:
    strength = assess_passphrase(weak)
    assert not strength.ok and strength.reasons
    with pytest.raises(PassphraseError, match="bits"):
        require_strong(weak)


@pytest.mark.parametrize(
    "strong", [PASSPHRASE, "ZmQ8#pL2vX9!kR", "sunset river candle orbit maple"]
)
def test_strong_passphrases_pass(strong: str) -> None:
    assert assess_passphrase(strong).ok


def test_generated_passphrases_are_strong_and_different() -> None:
    first, bits = generate_passphrase()
    second, _ = generate_passphrase()
    assert bits > 80 and first != second
    assert assess_passphrase(first).ok


def test_passphrase_file_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text(PASSPHRASE + "\n")
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        read_passphrase_file(path)
    path.chmod(0o600)
    assert read_passphrase_file(path) == PASSPHRASE
    path.write_text("\n")
    with pytest.raises(PassphraseError, match="empty"):
        read_passphrase_file(path)
    with pytest.raises(KeyFileError, match="cannot open"):
        read_passphrase_file(tmp_path / "missing")
