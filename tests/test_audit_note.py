"""Signed notes, checkpoints and cosignatures: the shared signed-note vectors and round trips."""

from __future__ import annotations

import base64
import json

import pytest
from conftest import vectors
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from doorbell.audit import note

EXPECT = {
    "malformed": note.MalformedNote,
    "invalid signature": note.NoteSignatureError,
    "no verifiable signatures": note.NoVerifiableSignatures,
}


@pytest.fixture(scope="module")
def suite() -> dict:
    return json.loads(vectors("signed-note", "vectors.json").read_text())


def test_every_note_vector_gives_the_expected_outcome(suite: dict) -> None:
    assert len(suite["notes"]) >= 20
    for case in suite["notes"]:
        data = base64.b64decode(case["note_b64"])
        raw = vectors("signed-note", "notes", case["name"] + ".note").read_bytes()
        assert raw == data, case["name"]
        verifiers = [note.Verifier.from_vkey(v) for v in case["vkeys"]]
        if case["expect"] == "ok":
            opened = note.open_note(data, verifiers)
            assert sorted(s.name for s in opened.verified) == sorted(case["verified_by"])
        else:
            with pytest.raises(EXPECT[case["expect"]]):
                note.open_note(data, verifiers)


def test_sumdb_checkpoints_parse_as_tlog_checkpoints(suite: dict) -> None:
    for case in suite["notes"]:
        if case["name"].startswith("sumdb-checkpoint-"):
            opened = note.open_note(
                base64.b64decode(case["note_b64"]),
                [note.Verifier.from_vkey(v) for v in case["vkeys"]],
            )
            checkpoint = note.parse_checkpoint(opened.text)
            assert checkpoint.origin == "go.sum database tree"
            assert str(checkpoint.size) in case["name"]
            assert checkpoint.body() == opened.text


def test_keys(suite: dict) -> None:
    for vkey in suite["keys"]["good_vkeys"]:
        assert note.Verifier.from_vkey(vkey).vkey == vkey
    for bad in suite["keys"]["bad_vkeys"]:
        with pytest.raises(note.MalformedNote):
            note.Verifier.from_vkey(bad["vkey"])
    for pair in suite["keys"]["skeys"]:
        signer = note.Signer.from_private_key_string(pair["skey"])
        assert signer.vkey == pair["vkey"]
        assert signer.private_key_string() == pair["skey"]


def test_signing_is_byte_exact_with_go(suite: dict) -> None:
    signer = note.Signer.from_private_key_string(suite["keys"]["skeys"][0]["skey"])
    case = next(c for c in suite["notes"] if c["name"] == "go-sign-peter")
    expected = base64.b64decode(case["note_b64"])
    assert note.sign_note(note.parse_note(expected).text, signer) == expected


def test_go_sum_tree_golden(suite: dict) -> None:
    golden = suite["keys"]["go_sum_tree_golden"]
    checkpoint = note.parse_checkpoint(golden["text"].encode())
    assert checkpoint.size == 123456789012
    assert checkpoint.body() == golden["text"].encode()


@pytest.mark.parametrize(
    "body",
    [b"o\n1\n", b"o\n01\nAA==\n", b"o\n1\nAA==\n", b"\n1\n" + base64.b64encode(bytes(32)) + b"\n"],
)
def test_bad_checkpoint_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(note.MalformedNote):
        note.parse_checkpoint(body)


def test_cosignature_round_trip_and_spec_message() -> None:
    key = Ed25519PrivateKey.generate()
    cosigner = note.CosignatureSigner("owner.example/alice", key)
    text = note.Checkpoint("example.com/log", 5, bytes(32)).body()
    raw = cosigner.sign_at(text, 1679315147)
    assert raw[:8] == (1679315147).to_bytes(8, "big")
    message = b"cosignature/v1\ntime 1679315147\n" + text
    key.public_key().verify(raw[8:], message)  # raises if the message is not the spec's
    signature = note.NoteSignature(cosigner.name, cosigner.key_id, raw)
    signed = text + b"\n" + signature.line().encode()
    verifier = note.Verifier.from_vkey(cosigner.vkey)
    assert verifier.sig_type == 0x04
    opened = note.open_note(signed, [verifier])
    assert opened.verified[0].timestamp == 1679315147
    # the same key as a type 0x01 signer has another key ID: the cosignature is unknown to it
    plain = note.Signer("owner.example/alice", key).verifier()
    with pytest.raises(note.NoVerifiableSignatures):
        note.open_note(signed, [plain])
    forged = signed.replace(b"\n5\n", b"\n6\n")
    with pytest.raises(note.NoteSignatureError):
        note.open_note(forged, [verifier])
