"""age key encodings, recipient/identity types, scrypt limits and the lazy package root."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from doorbell.age import bech32
from doorbell.age.decrypt import decrypt
from doorbell.age.encrypt import encrypt
from doorbell.age.errors import KeyFormatError, RecipientError, WorkFactorError
from doorbell.age.identities import ScryptIdentity, X25519Identity, parse_identities, parse_identity
from doorbell.age.recipients import ScryptRecipient, parse_recipient, parse_recipients

# The spec's example key pair.
SPEC_IDENTITY = "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX"
SPEC_RECIPIENT = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj"


def test_spec_key_pair_round_trips() -> None:
    identity = parse_identity(SPEC_IDENTITY)
    assert str(identity) == SPEC_IDENTITY
    assert str(identity.recipient) == SPEC_RECIPIENT
    assert str(parse_recipient(SPEC_RECIPIENT)) == SPEC_RECIPIENT


def test_generated_keys_have_the_standard_forms() -> None:
    identity = X25519Identity.generate()
    assert str(identity).startswith("AGE-SECRET-KEY-1") and len(str(identity)) == 74
    assert str(identity.recipient).startswith("age1") and len(str(identity.recipient)) == 62
    assert str(identity) not in repr(identity)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (SPEC_RECIPIENT, "public recipient"),
        (SPEC_IDENTITY[:-1] + "Y", "checksum"),
        (SPEC_IDENTITY.lower(), "unsupported identity"),
        ("AGE-SECRET-KEY-1gfpyysjzgfpyysjzgfpyysjzgfpyysjzgfpyysjzgfpyysjzgfpq4egaex", "mixed"),
    ],
)
def test_bad_identities_are_refused(text: str, message: str) -> None:
    with pytest.raises(KeyFormatError, match=message):
        parse_identity(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (SPEC_IDENTITY, "secret key"),
        (SPEC_RECIPIENT[:-1] + "q", "checksum"),
        (SPEC_RECIPIENT.upper(), "unsupported recipient"),
        (bech32.encode("age", bytes(31)), "31 bytes"),
        ("age1pq1abc", "checksum|short"),
    ],
)
def test_bad_recipients_are_refused(text: str, message: str) -> None:
    with pytest.raises(KeyFormatError, match=message):
        parse_recipient(text)


def test_recipients_and_identity_files_skip_comments_and_name_bad_lines() -> None:
    assert len(parse_recipients(f"# owner\n\n{SPEC_RECIPIENT}\n  {SPEC_RECIPIENT}  \n")) == 2
    with pytest.raises(KeyFormatError, match=r"owner\.recipients:2"):
        parse_recipients(f"{SPEC_RECIPIENT}\nnonsense\n", source="owner.recipients")
    with pytest.raises(KeyFormatError, match="no recipient"):
        parse_recipients("# nothing\n")
    found = parse_identities(f"# created: now\n# public key: {SPEC_RECIPIENT}\n{SPEC_IDENTITY}\n")
    assert [str(i) for i in found] == [SPEC_IDENTITY]
    with pytest.raises(KeyFormatError) as caught:
        parse_identities("AGE-SECRET-KEY-1NOTAKEY\n")
    assert "NOTAKEY" not in str(caught.value)


def test_scrypt_must_be_alone_and_work_factor_is_capped() -> None:
    with pytest.raises(RecipientError, match="only recipient"):
        encrypt(
            io.BytesIO(),
            [ScryptRecipient("a b c d", work_factor=10), X25519Identity.generate().recipient],
        )
    with pytest.raises(RecipientError, match="work factor"):
        ScryptRecipient("pass", work_factor=23)
    sink = io.BytesIO()
    with encrypt(sink, [ScryptRecipient("pass phrase", work_factor=12)]) as writer:
        writer.write(b"x")
    with pytest.raises(WorkFactorError, match="above the allowed maximum 11"):
        decrypt(io.BytesIO(sink.getvalue()), [ScryptIdentity("pass phrase", max_work_factor=11)])
    assert decrypt(io.BytesIO(sink.getvalue()), ScryptIdentity("pass phrase")).read() == b"x"


def test_the_encrypt_side_loads_no_decryption() -> None:
    code = (
        "import json, sys, doorbell.age\n"
        "before = sorted(m for m in sys.modules if m.startswith('doorbell.age.'))\n"
        "from doorbell.age.encrypt import encrypt\n"
        "from doorbell.age.recipients import parse_recipient\n"
        "after = sorted(m for m in sys.modules if m.startswith('doorbell.age.'))\n"
        "print(json.dumps([before, after, callable(encrypt)]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after, is_callable = json.loads(out.stdout)
    assert before == [], "the package root imports nothing"
    for secret_side in ("identities", "decrypt", "payload", "sequential", "random_access"):
        assert f"doorbell.age.{secret_side}" not in after
    assert is_callable
