"""RFC 6962 hashes and proofs: the transparency-dev vectors, plus our own proof generation."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from conftest import vectors
from hypothesis import given, settings
from hypothesis import strategies as st

from doorbell.audit import merkle
from doorbell.errors import AuditError

CT_LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
CT_ROOT_8 = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value) if value else b""


def _cases(kind: str) -> list:
    root = vectors("rfc6962", "testdata", kind)
    files = sorted(root.rglob("*.json"))
    if not files:
        pytest.fail(f"no {kind} vectors under {root}")
    return files


def test_inclusion_vectors_all_pass() -> None:
    files = _cases("inclusion")
    for path in files:
        case = json.loads(path.read_text())
        proof = [_b64(p) for p in case["proof"] or []]
        try:
            merkle.verify_inclusion(
                case["leafIdx"], case["treeSize"], _b64(case["leafHash"]), proof, _b64(case["root"])
            )
            failed = False
        except merkle.ProofError:
            failed = True
        assert failed == case["wantErr"], path


def test_consistency_vectors_all_pass() -> None:
    files = _cases("consistency")
    for path in files:
        case = json.loads(path.read_text())
        proof = [_b64(p) for p in case["proof"] or []]
        try:
            merkle.verify_consistency(
                case["size1"], case["size2"], _b64(case["root1"]), _b64(case["root2"]), proof
            )
            failed = False
        except merkle.ProofError:
            failed = True
        assert failed == case["wantErr"], path


def test_vector_count_is_complete() -> None:
    assert len(_cases("inclusion")) + len(_cases("consistency")) == 196


def test_fixed_hashes_and_ct_tree_roots() -> None:
    assert merkle.EMPTY_ROOT.hex().startswith("e3b0c442")
    assert merkle.leaf_hash(b"L123456").hex().startswith("395aa064aa4c29f7")
    assert merkle.node_hash(b"N123", b"N456").hex().startswith("aa217fe888e47007")
    hashes = [merkle.leaf_hash(leaf) for leaf in CT_LEAVES]
    assert merkle.root_of(hashes).hex() == CT_ROOT_8
    assert merkle.root_of(hashes[:1]).hex().startswith("6e340b9cffb37a98")


def _reference_root(hashes: list[bytes]) -> bytes:
    """RFC 6962 MTH by its recursive definition."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    return merkle.node_hash(_reference_root(hashes[:k]), _reference_root(hashes[k:]))


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1, max_value=70))
def test_incremental_tree_and_proofs_match_the_definition(size: int) -> None:
    hashes = [merkle.leaf_hash(b"entry %d" % i) for i in range(size)]
    compact = merkle.CompactRange()
    stored: dict[tuple[int, int], bytes] = {}
    for index, leaf in enumerate(hashes):
        stored[(index, index + 1)] = leaf
        for level, node in enumerate(compact.append(leaf), start=1):
            stored[(index + 1 - (1 << level), index + 1)] = node
        assert compact.root() == _reference_root(hashes[: index + 1])
    again = merkle.CompactRange.from_bytes(size, compact.to_bytes())
    assert again.root() == compact.root()

    def range_hash(start: int, end: int) -> bytes:
        return merkle.range_hash_from_pieces(start, end, lambda a, b: stored[(a, b)])

    root = compact.root()
    for index in range(size):
        proof = merkle.inclusion_proof(index, size, range_hash)
        merkle.verify_inclusion(index, size, hashes[index], proof, root)
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(index, size, merkle.leaf_hash(b"forged"), proof, root)
    for size1 in range(1, size + 1):
        proof = merkle.consistency_proof(size1, size, range_hash)
        merkle.verify_consistency(size1, size, _reference_root(hashes[:size1]), root, proof)
        assert len(proof) <= 2 * max(1, size.bit_length())


def test_compact_range_rejects_an_impossible_state() -> None:
    with pytest.raises(AuditError):
        merkle.CompactRange.from_bytes(3, b"\x00" * 32)
