"""Properties of roots and proofs (hypothesis), against independent oracles.

Oracles: `ledger_support.BruteTree` (RFC 9162's recursive MTH / PATH / SUBPROOF written
out literally), `prefix_roots` (a separate streaming computation), `recompute_root`, and
pymerkle 7 (`InmemoryTree(algorithm="sha256")`: RFC 9162 leaf/node prefixes; GPL, used
only here as a test oracle; checked against the RFC 9162 vector roots first).

DB-backed properties run against one log per backend, grown once per module to a few
thousand leaves in irregular batches (singles, tile-sized and odd batches), so that
partial tiles on several levels have been rewritten many times.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from ledger_support import (
    BruteTree,
    consistency_shape,
    flip_bit,
    inclusion_shape,
    load_testdata,
    missing_testdata,
    open_test_registry,
    prefix_roots,
    read_all_entries,
    sqlite_url,
)
from pg_support import fresh_postgres_database
from pymerkle import InmemoryTree

from ledger.log.canonical import canonical_entry
from ledger.log.merkle import (
    MAX_TREE_SIZE,
    ProofRequestError,
    VerificationError,
    consistency_plan,
    fold_range,
    inclusion_plan,
    leaf_hash,
    range_nodes,
    root_from_inclusion_proof,
    root_of_leaves,
    root_plan,
    verify_consistency,
    verify_inclusion,
)
from ledger.log.store import recompute_root
from ledger.registry import Registry

DB_EXAMPLES = settings(max_examples=100, deadline=None)
PURE_EXAMPLES = settings(max_examples=100, deadline=None)


def pymerkle_roots(leaves: list[bytes]) -> list[bytes]:
    tree = InmemoryTree(algorithm="sha256")
    for leaf in leaves:
        tree.append_entry(leaf)
    return [tree.get_root(size) for size in range(len(leaves) + 1)]


def test_pymerkle_is_an_rfc9162_oracle() -> None:
    """pymerkle hashes with the RFC 9162 prefixes: it reproduces the vector roots."""
    vectors = load_testdata("rfc9162", "transparency-dev-vectors.json")
    if vectors is None:
        missing_testdata("rfc9162", "transparency-dev-vectors.json")
    leaves = [bytes.fromhex(h) for h in vectors["leaf_inputs_hex"]]
    expected = [bytes.fromhex(vectors["root_hashes_hex_by_tree_size"][str(s)]) for s in range(9)]
    assert pymerkle_roots(leaves) == expected
    assert expected[8].hex().startswith("5dc9da79")


# ----------------------------------------------------------------- the grown log


@dataclass
class GrownLog:
    registry: Registry
    leaves: list[bytes]
    roots: list[bytes]
    boundaries: list[int]
    tree: BruteTree

    @property
    def size(self) -> int:
        return len(self.leaves)


def _leaf(index: int) -> bytes:
    return canonical_entry({"kind": "test.property/1", "i": index, "pad": "x" * (index % 13)})


def _batches(target: int) -> list[int]:
    rng = random.Random(9162)
    batches = [1] * 20
    while sum(batches) < target:
        batches.append(rng.choice([1, 1, 2, 3, 5, 31, 200, 255, 256, 257, 511, 700]))
    return batches


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def grown(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GrownLog]:
    data_dir: Path = tmp_path_factory.mktemp("grown") / "data"
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = sqlite_url(data_dir)
        else:
            url = stack.enter_context(
                fresh_postgres_database(request.getfixturevalue("postgres_admin_url"))
            )
        registry = stack.enter_context(open_test_registry(data_dir, url))
        size, boundaries = 0, [0]
        for batch in _batches(4500):
            with registry.log.write() as transaction:
                assert transaction.extend_canonical(
                    [_leaf(i) for i in range(size, size + batch)]
                ) == range(size, size + batch)
            size += batch
            boundaries.append(size)
        leaves = [_leaf(i) for i in range(size)]
        yield GrownLog(registry, leaves, prefix_roots(leaves), boundaries, BruteTree(leaves))


def sizes_of(grown: GrownLog) -> st.SearchStrategy[int]:
    """Any size, with extra weight on batch boundaries and powers of two (±1)."""
    edges = {b + d for b in grown.boundaries for d in (-1, 0, 1)}
    edges |= {(1 << k) + d for k in range(grown.size.bit_length()) for d in (-1, 0, 1)}
    edges = {s for s in edges if 1 <= s <= grown.size}
    return st.integers(1, grown.size) | st.sampled_from(sorted(edges))


def test_stored_roots_for_every_past_size(grown: GrownLog) -> None:
    log = grown.registry.log
    stored = read_all_entries(grown.registry)
    assert stored == grown.leaves
    head = log.head()
    assert head.size == grown.size
    assert head.root == recompute_root(stored) == grown.roots[-1]
    reference = pymerkle_roots(stored)
    assert reference == grown.roots
    for size in range(grown.size + 1):
        assert log.root_at(size) == grown.roots[size], f"root at size {size}"
    for size in [*grown.boundaries, 1, 255, 256, 257, 1023, 1024, 1025, 4095, 4096]:
        if size <= grown.size:
            assert recompute_root(stored[:size]) == grown.roots[size]
            assert grown.tree.root(size) == grown.roots[size]


@given(data=st.data())
@settings(max_examples=40, deadline=None)
def test_recompute_root_over_stored_prefixes(grown: GrownLog, data: st.DataObject) -> None:
    """recompute_root over the leaves read back from the database, at random sizes."""
    size = data.draw(sizes_of(grown) | st.just(0), label="size")
    stored_prefix = read_all_entries(grown.registry, size)
    assert recompute_root(stored_prefix) == grown.registry.log.root_at(size)


@given(data=st.data())
@DB_EXAMPLES
def test_served_inclusion_proofs_verify(grown: GrownLog, data: st.DataObject) -> None:
    size = data.draw(sizes_of(grown), label="size")
    index = data.draw(st.integers(0, size - 1) | st.sampled_from([0, size - 1]), label="index")
    proof = grown.registry.log.inclusion_proof(index, size)
    root = grown.roots[size]
    assert (proof.index, proof.size, proof.root) == (index, size, root)
    assert proof.leaf_hash == leaf_hash(grown.leaves[index])
    assert list(proof.hashes) == grown.tree.path(index, size)
    verify_inclusion(index, size, proof.leaf_hash, proof.hashes, root)
    assert root_from_inclusion_proof(index, size, proof.leaf_hash, proof.hashes) == root


@given(data=st.data())
@DB_EXAMPLES
def test_served_consistency_proofs_verify(grown: GrownLog, data: st.DataObject) -> None:
    size2 = data.draw(sizes_of(grown), label="size2")
    size1 = data.draw(st.integers(1, size2) | st.sampled_from([1, size2]), label="size1")
    proof = grown.registry.log.consistency_proof(size1, size2)
    assert (proof.root1, proof.root2) == (grown.roots[size1], grown.roots[size2])
    assert list(proof.hashes) == grown.tree.consistency(size1, size2)
    verify_consistency(size1, size2, proof.hashes, grown.roots[size1], grown.roots[size2])


def _passes(check: Callable[..., None], *arguments: object) -> bool:
    try:
        check(*arguments)
    except VerificationError:
        return False
    return True


@given(data=st.data())
@DB_EXAMPLES
def test_any_flipped_bit_breaks_an_inclusion_proof(grown: GrownLog, data: st.DataObject) -> None:
    """Leaf hash, proof hash, root, index: always rejected. Size: rejected unless the
    changed size gives the same path shape, where the very same hashes are folded in
    the very same way (RFC 9162 binds the size only through the signed tree head)."""
    size = data.draw(sizes_of(grown), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = grown.registry.log.inclusion_proof(index, size)
    leaf, hashes, root = proof.leaf_hash, list(proof.hashes), proof.root
    assert _passes(verify_inclusion, index, size, leaf, hashes, root)

    parts = ["leaf", "root", "index", "size"] + (["proof"] if hashes else [])
    part = data.draw(st.sampled_from(parts), label="part")
    if part in ("leaf", "root", "proof"):
        bit = data.draw(st.integers(0, 255), label="bit")
        if part == "leaf":
            leaf = flip_bit(leaf, bit)
        elif part == "root":
            root = flip_bit(root, bit)
        else:
            position = data.draw(st.integers(0, len(hashes) - 1), label="position")
            hashes[position] = flip_bit(hashes[position], bit)
        assert not _passes(verify_inclusion, index, size, leaf, hashes, root)
        return
    bit = data.draw(st.integers(0, 63), label="bit")
    if part == "index":
        changed = index ^ (1 << bit)
        assert inclusion_shape(changed, size) != inclusion_shape(index, size)
        assert not _passes(verify_inclusion, changed, size, leaf, hashes, root)
    else:
        changed = size ^ (1 << bit)
        same_shape = inclusion_shape(index, changed) == inclusion_shape(index, size)
        event(f"inclusion size flip keeps the shape: {same_shape}")
        assert _passes(verify_inclusion, index, changed, leaf, hashes, root) == same_shape


@given(data=st.data())
@DB_EXAMPLES
def test_any_flipped_bit_breaks_a_consistency_proof(grown: GrownLog, data: st.DataObject) -> None:
    """Proof hashes and either root: always rejected. Sizes: rejected unless the changed
    sizes give a proof of the same shape (then the same hashes fold the same way)."""
    size2 = data.draw(sizes_of(grown), label="size2")
    size1 = data.draw(st.integers(1, size2), label="size1")
    proof = grown.registry.log.consistency_proof(size1, size2)
    hashes, root1, root2 = list(proof.hashes), proof.root1, proof.root2
    assert _passes(verify_consistency, size1, size2, hashes, root1, root2)

    parts = ["root1", "root2", "size1", "size2"] + (["proof"] if hashes else [])
    part = data.draw(st.sampled_from(parts), label="part")
    if part in ("root1", "root2", "proof"):
        bit = data.draw(st.integers(0, 255), label="bit")
        if part == "root1":
            root1 = flip_bit(root1, bit)
        elif part == "root2":
            root2 = flip_bit(root2, bit)
        else:
            position = data.draw(st.integers(0, len(hashes) - 1), label="position")
            hashes[position] = flip_bit(hashes[position], bit)
        assert not _passes(verify_consistency, size1, size2, hashes, root1, root2)
        return
    bit = data.draw(st.integers(0, 63), label="bit")
    new1 = size1 ^ (1 << bit) if part == "size1" else size1
    new2 = size2 ^ (1 << bit) if part == "size2" else size2
    same_shape = consistency_shape(new1, new2) == consistency_shape(size1, size2)
    event(f"consistency size flip keeps the shape: {same_shape}")
    assert _passes(verify_consistency, new1, new2, hashes, root1, root2) == same_shape


@pytest.mark.parametrize(("index", "size"), [(0, 1), (1234, 3001), (3000, 3001), (511, 512)])
def test_every_bit_flip_of_a_stored_inclusion_proof(grown: GrownLog, index: int, size: int) -> None:
    """Exhaustively, for a few proofs: each of the 256 bits of the leaf hash, of every
    proof hash and of the root, and each of 64 bits of the index and of the size."""
    proof = grown.registry.log.inclusion_proof(index, size)
    leaf, hashes, root = proof.leaf_hash, list(proof.hashes), proof.root
    for bit in range(256):
        assert not _passes(verify_inclusion, index, size, flip_bit(leaf, bit), hashes, root)
        assert not _passes(verify_inclusion, index, size, leaf, hashes, flip_bit(root, bit))
        for position, item in enumerate(hashes):
            changed = [*hashes[:position], flip_bit(item, bit), *hashes[position + 1 :]]
            assert not _passes(verify_inclusion, index, size, leaf, changed, root)
    for bit in range(64):
        assert not _passes(verify_inclusion, index ^ (1 << bit), size, leaf, hashes, root)
        other = size ^ (1 << bit)
        same_shape = inclusion_shape(index, other) == inclusion_shape(index, size)
        assert _passes(verify_inclusion, index, other, leaf, hashes, root) == same_shape


@pytest.mark.parametrize(("size1", "size2"), [(1, 3001), (1000, 3001), (512, 1024), (7, 8)])
def test_every_bit_flip_of_a_stored_consistency_proof(
    grown: GrownLog, size1: int, size2: int
) -> None:
    proof = grown.registry.log.consistency_proof(size1, size2)
    hashes, root1, root2 = list(proof.hashes), proof.root1, proof.root2
    for bit in range(256):
        assert not _passes(verify_consistency, size1, size2, hashes, flip_bit(root1, bit), root2)
        assert not _passes(verify_consistency, size1, size2, hashes, root1, flip_bit(root2, bit))
        for position, item in enumerate(hashes):
            changed = [*hashes[:position], flip_bit(item, bit), *hashes[position + 1 :]]
            assert not _passes(verify_consistency, size1, size2, changed, root1, root2)
    shape = consistency_shape(size1, size2)
    for bit in range(64):
        for new1, new2 in ((size1 ^ (1 << bit), size2), (size1, size2 ^ (1 << bit))):
            same_shape = consistency_shape(new1, new2) == shape
            assert _passes(verify_consistency, new1, new2, hashes, root1, root2) == same_shape


def test_an_inclusion_proof_does_not_fix_the_tree_size() -> None:
    """Why the size rule above has an exception: a concrete case, and a check that a
    verifier taking (size, root) from a verified checkpoint is not affected."""
    tree = BruteTree([bytes([i]) for i in range(8)])
    proof = tree.path(0, 5)
    assert inclusion_shape(0, 7) == inclusion_shape(0, 5)
    verify_inclusion(0, 7, tree.leaf_hashes[0], proof, tree.root(5))  # same fold
    with pytest.raises(VerificationError):
        verify_inclusion(0, 7, tree.leaf_hashes[0], proof, tree.root(7))
    with pytest.raises(VerificationError):  # different shape: different proof length
        verify_inclusion(0, 4, tree.leaf_hashes[0], proof, tree.root(5))


# ----------------------------------------------------------- pure planner properties


@cache
def small_tree() -> BruteTree:
    return BruteTree([f"leaf {i}".encode() for i in range(300)])


def _check_plans(tree: BruteTree, size: int, index: int, size1: int) -> None:
    # Only nodes of complete subtrees inside the tree of `size` exist for the planner.
    nodes = tree.perfect_nodes(size)
    root = tree.root(size)
    assert fold_range([nodes[node] for node in root_plan(size)]) == root

    inclusion = inclusion_plan(index, size).assemble(nodes)
    assert inclusion == tree.path(index, size)
    assert len(inclusion) == len(inclusion_shape(index, size) or ())
    verify_inclusion(index, size, tree.leaf_hashes[index], inclusion, root)
    assert root_from_inclusion_proof(index, size, tree.leaf_hashes[index], inclusion) == root

    consistency = consistency_plan(size1, size).assemble(nodes)
    assert consistency == tree.consistency(size1, size)
    assert len(consistency) == len(consistency_shape(size1, size) or ())
    verify_consistency(size1, size, consistency, tree.root(size1), root)


def test_planners_match_the_rfc_for_every_small_tree() -> None:
    """Exhaustive for sizes 1..64: every index and every older size."""
    tree = small_tree()
    for size in range(1, 65):
        for other in range(size):
            _check_plans(tree, size, index=other, size1=other + 1)


@given(data=st.data())
@PURE_EXAMPLES
def test_planners_match_the_rfc_up_to_300_leaves(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, 300), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    size1 = data.draw(st.integers(1, size), label="size1")
    _check_plans(small_tree(), size, index, size1)


@given(st.lists(st.binary(max_size=40), max_size=300))
@PURE_EXAMPLES
def test_from_scratch_roots_agree(leaves: list[bytes]) -> None:
    expected = BruteTree(leaves).root(len(leaves))
    assert root_of_leaves(leaves) == expected
    assert recompute_root(leaves) == expected
    assert prefix_roots(leaves)[-1] == expected
    assert pymerkle_roots(leaves)[-1] == expected


@given(begin=st.integers(0, 1 << 40), length=st.integers(0, 1 << 20))
@PURE_EXAMPLES
def test_range_nodes_cover_a_range_with_aligned_perfect_subtrees(begin: int, length: int) -> None:
    end = begin + length
    nodes = range_nodes(begin, end)
    position = begin
    for level, index in nodes:
        assert index << level == position, "contiguous and aligned"
        position += 1 << level
    assert position == end


@given(level=st.integers(0, 40), multiple=st.integers(0, 1 << 20), data=st.data())
@PURE_EXAMPLES
def test_range_nodes_shrink_in_rfc_ranges(level: int, multiple: int, data: st.DataObject) -> None:
    """For ranges that occur in RFC 9162 trees — begin aligned to a power of two at least
    the length — the parts strictly decrease, so their right fold is the range's hash."""
    begin = multiple << level
    end = begin + data.draw(st.integers(0, 1 << level), label="length")
    levels = [node_level for node_level, _ in range_nodes(begin, end)]
    assert levels == sorted(set(levels), reverse=True)


@given(data=st.data())
@PURE_EXAMPLES
def test_plans_for_huge_trees_are_logarithmic(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, MAX_TREE_SIZE), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    size1 = data.draw(st.integers(1, size), label="size1")
    bound = 2 * size.bit_length() + 1
    for plan, shape in (
        (inclusion_plan(index, size), inclusion_shape(index, size)),
        (consistency_plan(size1, size), consistency_shape(size1, size)),
    ):
        assert shape is not None
        assert len(plan.elements) == len(shape)
        assert len(plan.node_ids()) <= bound
        for level, node_index in plan.node_ids():
            assert (node_index + 1) << level <= size, "only complete nodes inside the tree"
    assert len(root_plan(size)) == size.bit_count()


@pytest.mark.parametrize(
    ("plan", "arguments"),
    [
        (inclusion_plan, (0, 0)),
        (inclusion_plan, (1, 1)),
        (inclusion_plan, (-1, 5)),
        (inclusion_plan, (0, -1)),
        (inclusion_plan, (0, MAX_TREE_SIZE + 1)),
        (consistency_plan, (0, 0)),
        (consistency_plan, (0, 5)),
        (consistency_plan, (6, 5)),
        (consistency_plan, (-1, 5)),
        (consistency_plan, (1, MAX_TREE_SIZE + 1)),
        (root_plan, (-1,)),
        (root_plan, (MAX_TREE_SIZE + 1,)),
    ],
)
def test_impossible_proof_requests_are_refused(
    plan: Callable[..., object], arguments: tuple[int, ...]
) -> None:
    with pytest.raises(ProofRequestError):
        plan(*arguments)
