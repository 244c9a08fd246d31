"""RFC 9162 Merkle tree hashing, proof planning and proof verification.

Pure functions only: nothing here touches storage, so the same code runs in the
service, in the CLI's offline checks and in the offline bundle verifier.

Nodes are addressed as `(level, index)`: the node at level L and index i is the
root of the perfect subtree over leaves [i·2^L, (i+1)·2^L). A tree of any size is
made of such perfect subtrees, so every root and every proof hash can be
assembled from stored nodes without touching the leaves (see `ledger.log.store`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()
MAX_TREE_SIZE = 1 << 62
"""Tree sizes are bounded so that every size and index fits a signed 64-bit column."""

NodeId = tuple[int, int]
"""(level, index) of a perfect subtree."""


def leaf_hash(leaf: bytes) -> bytes:
    """RFC 9162 §2.1.1: SHA-256(0x00 || leaf)."""
    return hashlib.sha256(LEAF_PREFIX + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


# --------------------------------------------------------------------------- planning


def _split_point(size: int) -> int:
    """The largest power of two strictly smaller than `size` (size > 1)."""
    assert size > 1
    return 1 << ((size - 1).bit_length() - 1)


def range_nodes(begin: int, end: int) -> list[NodeId]:
    """The perfect subtrees that make up leaves [begin, end), left to right.

    For the ranges that occur in RFC 9162 trees (`begin` aligned to a power of two
    at least `end - begin`), sizes strictly decrease, and the range's hash is the
    right fold `fold_range` of these nodes.
    """
    assert 0 <= begin <= end
    nodes: list[NodeId] = []
    while begin < end:
        level = (begin & -begin).bit_length() - 1 if begin else 63
        while (1 << level) > end - begin:
            level -= 1
        nodes.append((level, begin >> level))
        begin += 1 << level
    return nodes


def fold_range(hashes: Sequence[bytes]) -> bytes:
    """Hash of an RFC 9162 subtree given its perfect parts (from `range_nodes`)."""
    if not hashes:
        return EMPTY_ROOT
    accumulator = hashes[-1]
    for left in reversed(hashes[:-1]):
        accumulator = node_hash(left, accumulator)
    return accumulator


@dataclass(frozen=True, slots=True)
class ProofPlan:
    """Which stored nodes make up each hash of a proof, in proof order."""

    elements: tuple[tuple[NodeId, ...], ...]

    def node_ids(self) -> set[NodeId]:
        return {node for element in self.elements for node in element}

    def assemble(self, nodes: Mapping[NodeId, bytes]) -> list[bytes]:
        """Turn fetched node hashes into the proof's hashes."""
        return [fold_range([nodes[node] for node in element]) for element in self.elements]


def root_plan(size: int) -> tuple[NodeId, ...]:
    """The nodes whose right fold is the root of the tree of `size` leaves."""
    _check_size(size)
    return tuple(range_nodes(0, size))


def inclusion_plan(index: int, size: int) -> ProofPlan:
    """RFC 9162 §2.1.3.1 PATH(index, D[0:size]) expressed as stored nodes."""
    _check_size(size)
    if not 0 <= index < size:
        raise ProofRequestError(f"index {index} is outside a tree of size {size}")
    elements: list[tuple[NodeId, ...]] = []
    begin, end = 0, size
    # Walk down from the root, collecting siblings; the proof lists them bottom-up.
    while end - begin > 1:
        split = begin + _split_point(end - begin)
        if index < split:
            elements.append(tuple(range_nodes(split, end)))
            end = split
        else:
            elements.append(tuple(range_nodes(begin, split)))
            begin = split
    return ProofPlan(tuple(reversed(elements)))


def consistency_plan(size1: int, size2: int) -> ProofPlan:
    """RFC 9162 §2.1.4.1 PROOF(size1, D[0:size2]) expressed as stored nodes."""
    _check_size(size2)
    if not 0 < size1 <= size2:
        raise ProofRequestError(
            f"a consistency proof needs 0 < from <= to; got from={size1}, to={size2}"
        )
    elements: list[tuple[NodeId, ...]] = []
    begin, end = 0, size2
    whole_old_tree_is_known = True  # the `b` flag of SUBPROOF
    while size1 != end:
        split = begin + _split_point(end - begin)
        if size1 <= split:
            elements.append(tuple(range_nodes(split, end)))
            end = split
        else:
            elements.append(tuple(range_nodes(begin, split)))
            begin = split
            whole_old_tree_is_known = False
    if not whole_old_tree_is_known:
        elements.append(tuple(range_nodes(begin, end)))
    return ProofPlan(tuple(reversed(elements)))


def _check_size(size: int) -> None:
    if not 0 <= size <= MAX_TREE_SIZE:
        raise ProofRequestError(f"tree size {size} is outside 0..{MAX_TREE_SIZE}")


# ----------------------------------------------------------------------- verification


class ProofRequestError(ValueError):
    """A proof was asked for with impossible parameters (index outside the tree, …)."""


class VerificationError(ValueError):
    """A proof did not verify; the message says which check failed."""


class InclusionProofError(VerificationError):
    pass


class ConsistencyProofError(VerificationError):
    pass


def _expected_path_length(index: int, size: int) -> int:
    """Hashes in an inclusion proof: levels where the paths to `index` and `size-1`
    differ (inner), plus the right-edge levels above them where `index` has a left
    sibling (border)."""
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    return inner + border


def _require_hash(value: bytes, what: str, error: type[VerificationError]) -> None:
    if len(value) != HASH_SIZE:
        raise error(f"{what} is {len(value)} bytes; a SHA-256 hash is {HASH_SIZE}")


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2: the root implied by `proof` for leaf hash `leaf` at `index`."""
    if not 0 <= index < size:
        raise InclusionProofError(f"index {index} is outside a tree of size {size}")
    _require_hash(leaf, "leaf hash", InclusionProofError)
    expected = _expected_path_length(index, size)
    if len(proof) != expected:
        raise InclusionProofError(
            f"proof has {len(proof)} hashes; index {index} in a tree of size {size} "
            f"needs {expected}"
        )
    for position, sibling in enumerate(proof):
        _require_hash(sibling, f"proof hash {position}", InclusionProofError)
    node_index, last_index = index, size - 1
    accumulator = leaf
    for sibling in proof:
        if node_index & 1 or node_index == last_index:
            accumulator = node_hash(sibling, accumulator)
            if not node_index & 1:
                # Right-edge node without a right sibling: climb until it is a right child.
                while node_index and not node_index & 1:
                    node_index >>= 1
                    last_index >>= 1
        else:
            accumulator = node_hash(accumulator, sibling)
        node_index >>= 1
        last_index >>= 1
    assert last_index == 0, "the length check guarantees the path reaches the root"
    return accumulator


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that leaf hash `leaf` is at `index` in the tree of `size` with `root`.

    Raises `InclusionProofError` naming the failed check; returns None on success.
    """
    _require_hash(root, "root", InclusionProofError)
    computed = root_from_inclusion_proof(index, size, leaf, proof)
    if computed != root:
        raise InclusionProofError(
            f"root mismatch: proof yields {computed.hex()}, expected {root.hex()}"
        )


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree (size2, root2) extends the tree (size1, root1) (RFC 9162 §2.1.4.2).

    Like the transparency-dev verifier: size1 must be positive (a proof from the empty
    tree proves nothing), equal sizes need an empty proof and equal roots, and every
    hash must be 32 bytes. Raises `ConsistencyProofError` naming the failed check.
    """
    if not 0 < size1 <= size2:
        raise ConsistencyProofError(f"sizes must satisfy 0 < size1 <= size2; got {size1}, {size2}")
    if size1 == size2:
        # Nothing is hashed, so only equality matters (roots are not length-checked here,
        # as upstream).
        if proof:
            raise ConsistencyProofError("equal sizes need an empty proof")
        if root1 != root2:
            raise ConsistencyProofError("equal sizes but the roots differ")
        return
    _require_hash(root1, "old root", ConsistencyProofError)
    _require_hash(root2, "new root", ConsistencyProofError)
    for position, item in enumerate(proof):
        _require_hash(item, f"proof hash {position}", ConsistencyProofError)

    # Strip the levels where the old tree's last leaf is a right child of a complete
    # subtree that both trees share: the proof starts above them.
    shift = (size1 & -size1).bit_length() - 1
    node_index = (size1 - 1) >> shift
    last_index = (size2 - 1) >> shift
    seeded_by_old_root = node_index == 0  # size1 is a power of two
    expected = _expected_path_length(node_index, last_index + 1) + (0 if seeded_by_old_root else 1)
    if len(proof) != expected:
        raise ConsistencyProofError(
            f"proof has {len(proof)} hashes; sizes {size1} -> {size2} need {expected}"
        )
    path = [root1, *proof] if seeded_by_old_root else list(proof)
    old_accumulator, new_accumulator = _walk_consistency_path(node_index, last_index, path)
    if old_accumulator != root1:
        raise ConsistencyProofError(
            f"old root mismatch: proof yields {old_accumulator.hex()}, expected {root1.hex()}"
        )
    if new_accumulator != root2:
        raise ConsistencyProofError(
            f"new root mismatch: proof yields {new_accumulator.hex()}, expected {root2.hex()}"
        )


def _walk_consistency_path(
    node_index: int, last_index: int, path: Sequence[bytes]
) -> tuple[bytes, bytes]:
    """Rebuild (old root, new root) from a consistency path whose first hash is the seed."""
    old_accumulator = new_accumulator = path[0]
    for item in path[1:]:
        if node_index & 1 or node_index == last_index:
            old_accumulator = node_hash(item, old_accumulator)
            new_accumulator = node_hash(item, new_accumulator)
            if not node_index & 1:
                while node_index and not node_index & 1:
                    node_index >>= 1
                    last_index >>= 1
        else:
            new_accumulator = node_hash(new_accumulator, item)
        node_index >>= 1
        last_index >>= 1
    assert last_index == 0, "the length check guarantees the path reaches the root"
    return old_accumulator, new_accumulator


def root_of_leaves(leaves: Sequence[bytes]) -> bytes:
    """From-scratch RFC 9162 MTH over raw leaves, for tests and audits (O(n) memory)."""
    level = [leaf_hash(leaf) for leaf in leaves]
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]
