"""RFC 6962 / RFC 9162 Merkle trees: hashes, tree heads, inclusion and consistency proofs.

Hashes (RFC 6962 section 2.1): a leaf is ``SHA-256(0x00 || data)``, an interior node is
``SHA-256(0x01 || left || right)``, the empty tree is ``SHA-256("")``. For ``n`` leaves the
left subtree holds the largest power of two strictly below ``n``.

:class:`CompactRange` is the incremental part: it keeps only the roots of the perfect
subtrees that make up the tree (one per set bit of the size), so appending a leaf costs
amortised one node hash and computing the tree head costs O(log n), never a rehash of the log.

Proof *generation* works over any :data:`RangeHash` source (a function giving the hash of
leaves ``[start, end)``); the audit log answers it from stored node hashes in O(log n) reads.
Proof *verification* follows RFC 9162 sections 2.1.3.2 and 2.1.4.2, plus two checks the
transparency-dev reference also makes: a leaf hash must be 32 bytes, and a consistency proof
from an empty tree is an error (it proves nothing).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

from doorbell.errors import AuditError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

#: hash of the leaves [start, end) of the tree; start < end, any range the proofs ask for
RangeHash = Callable[[int, int], bytes]


class ProofError(AuditError):
    """An inclusion or consistency proof does not verify (or its parameters are impossible)."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash of ``data``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two strictly below ``size`` (size >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


class CompactRange:
    """The perfect-subtree roots covering leaves ``[0, size)``: a tree you can append to.

    ``peaks`` are ordered left to right, largest subtree first; their sizes are the set bits
    of ``size`` from high to low.
    """

    __slots__ = ("peaks", "size")

    def __init__(self, size: int = 0, peaks: Sequence[bytes] = ()) -> None:
        if size < 0 or bin(size).count("1") != len(peaks):
            raise AuditError(f"compact range: {len(peaks)} peaks cannot describe size {size}")
        self.size = size
        self.peaks = list(peaks)

    def append(self, leaf: bytes) -> list[bytes]:
        """Add one leaf *hash*; return the interior nodes this completed, lowest level first.

        The node completed at level ``l`` (1-based) covers the ``2**l`` leaves ending with the
        new one.
        """
        completed: list[bytes] = []
        value = leaf
        size = self.size
        while size & 1:
            value = node_hash(self.peaks.pop(), value)
            completed.append(value)
            size >>= 1
        self.peaks.append(value)
        self.size += 1
        return completed

    def root(self) -> bytes:
        """The tree head (RFC 6962 MTH) of the leaves appended so far."""
        if not self.peaks:
            return EMPTY_ROOT
        value = self.peaks[-1]
        for peak in reversed(self.peaks[:-1]):
            value = node_hash(peak, value)
        return value

    def copy(self) -> CompactRange:
        return CompactRange(self.size, self.peaks)

    def to_bytes(self) -> bytes:
        return b"".join(self.peaks)

    @classmethod
    def from_bytes(cls, size: int, blob: bytes) -> CompactRange:
        """Rebuild from :meth:`to_bytes`; raises AuditError if the blob cannot be that size."""
        count = bin(size).count("1")
        if len(blob) != count * HASH_SIZE:
            raise AuditError(f"compact range for size {size}: {len(blob)} bytes, want {count * 32}")
        return cls(size, [blob[i * HASH_SIZE : (i + 1) * HASH_SIZE] for i in range(count)])


def root_of(leaf_hashes: Iterable[bytes]) -> bytes:
    """Tree head of a sequence of leaf hashes, streaming in O(log n) memory."""
    compact = CompactRange()
    for leaf in leaf_hashes:
        compact.append(leaf)
    return compact.root()


def perfect_pieces(start: int, end: int) -> list[tuple[int, int]]:
    """Split ``[start, end)`` (``start`` a multiple of the first piece) into aligned perfect
    subtrees, largest first. Used to answer a range hash from stored perfect-subtree nodes."""
    pieces = []
    while start < end:
        size = 1 << ((end - start).bit_length() - 1)
        while start % size:
            size >>= 1
        pieces.append((start, start + size))
        start += size
    return pieces


def range_hash_from_pieces(start: int, end: int, perfect: RangeHash) -> bytes:
    """Hash of ``[start, end)`` from the hashes of its aligned perfect pieces."""
    pieces = perfect_pieces(start, end)
    value = perfect(*pieces[-1])
    for piece in reversed(pieces[:-1]):
        value = node_hash(perfect(*piece), value)
    return value


# --- proof generation (RFC 9162 2.1.3.1, 2.1.4.1) -------------------------------------------


def inclusion_proof(index: int, size: int, range_hash: RangeHash) -> list[bytes]:
    """Audit path for leaf ``index`` in the tree of ``size`` leaves, bottom-up."""
    if not 0 <= index < size:
        raise ProofError(f"inclusion proof: index {index} is not below tree size {size}")
    proof: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index - start < k:
            proof.append(range_hash(start + k, end))
            end = start + k
        else:
            proof.append(range_hash(start, start + k))
            start += k
    proof.reverse()
    return proof


def consistency_proof(size1: int, size2: int, range_hash: RangeHash) -> list[bytes]:
    """Proof that the tree of ``size1`` leaves is a prefix of the tree of ``size2`` leaves."""
    if not 0 < size1 <= size2:
        raise ProofError(f"consistency proof: need 0 < size1 <= size2, got {size1}, {size2}")
    proof: list[bytes] = []
    start, end, m, complete = 0, size2, size1, True
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            proof.append(range_hash(start + k, end))
            end = start + k
        else:
            proof.append(range_hash(start, start + k))
            start += k
            m -= k
            complete = False
    if not complete:
        proof.append(range_hash(start, end))
    proof.reverse()
    return proof


# --- proof verification (RFC 9162 2.1.3.2, 2.1.4.2) -----------------------------------------


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` implies for leaf hash ``leaf`` at ``index``; raises ProofError."""
    if not 0 <= index < size:
        raise ProofError(f"inclusion: index {index} is not below tree size {size}")
    if len(leaf) != HASH_SIZE:
        raise ProofError(f"inclusion: leaf hash is {len(leaf)} bytes, want {HASH_SIZE}")
    fn, sn = index, size - 1
    value = leaf
    for element in proof:
        if len(element) != HASH_SIZE or sn == 0:
            raise ProofError("inclusion: proof is too long or has a malformed hash")
        if fn & 1 or fn == sn:
            value = node_hash(element, value)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            value = node_hash(value, element)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion: proof is too short for this index and size")
    return value


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise :class:`ProofError` unless ``proof`` puts ``leaf`` at ``index`` under ``root``."""
    if root_from_inclusion_proof(index, size, leaf, proof) != root:
        raise ProofError(f"inclusion: leaf {index} of {size} does not lead to the given root")


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> None:
    """Raise :class:`ProofError` unless ``proof`` shows tree ``size1`` is a prefix of ``size2``."""
    if size1 == 0:
        raise ProofError("consistency: a proof from the empty tree proves nothing")
    if size2 < size1:
        raise ProofError(f"consistency: size2 {size2} is below size1 {size1}")
    if size1 == size2:
        if proof:
            raise ProofError("consistency: equal sizes need an empty proof")
        if root1 != root2:
            raise ProofError("consistency: equal sizes but different roots")
        return
    if not proof or any(len(p) != HASH_SIZE for p in proof):
        raise ProofError("consistency: proof is empty or has a malformed hash")
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # size1 is a power of two: its root is the first node
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for element in path[1:]:
        if sn == 0:
            raise ProofError("consistency: proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(element, fr)
            sr = node_hash(element, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, element)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency: proof is too short")
    if fr != root1:
        raise ProofError(f"consistency: proof does not lead to the size-{size1} root")
    if sr != root2:
        raise ProofError(f"consistency: proof does not lead to the size-{size2} root")
