"""The in-memory reference map and the tree algorithms, against the written-out definition.

`oracle_root` recomputes the root from the set of keys; `oracle_node_count` says how many
nodes the canonical tree has, so the reference is also checked to hold exactly the current
tree (no nodes of replaced versions left behind).
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statemap_support import (
    apply_to,
    batches,
    key_hashes,
    oracle_node_count,
    oracle_root,
    sha256,
)

from ledger.statemap.proof import EMPTY_HASH, leaf_node
from ledger.statemap.tree import MemoryStateMap, build_tree, update_tree

EXAMPLES = settings(max_examples=200, deadline=None)


@given(batch_list=st.lists(batches(), min_size=1, max_size=10))
@EXAMPLES
def test_reference_root_is_the_definition_after_every_batch(
    batch_list: list[dict[bytes, bytes | None]],
) -> None:
    memory = MemoryStateMap()
    truth: dict[bytes, bytes] = {}
    roots = [EMPTY_HASH]
    for version, batch in enumerate(batch_list, start=1):
        root = memory.apply(version, batch)
        apply_to(truth, batch)
        roots.append(root)
        assert root == memory.root == oracle_root(truth), f"version {version}"
        assert len(memory) == len(truth)
        assert memory.node_count() == oracle_node_count(sorted(truth))
        assert dict(memory.items()) == truth
    for version, root in enumerate(roots):
        assert memory.root_at(version) == root
    assert memory.root_at(len(roots) + 5) == roots[-1]


@given(items=st.dictionaries(key_hashes(), st.binary(max_size=8), max_size=40), seed=st.integers())
@EXAMPLES
def test_root_depends_on_the_contents_only(items: dict[bytes, bytes], seed: int) -> None:
    """History independence: any order of batches, with detours, ends at the same root."""
    rng = random.Random(seed)
    keys = list(items)
    rng.shuffle(keys)
    memory = MemoryStateMap()
    version = 0
    while keys:
        size = rng.randint(1, 5)
        chunk, keys = keys[:size], keys[size:]
        version += 1
        # A detour: a value set, then changed back or deleted within the sequence.
        memory.apply(version, {key: b"detour" for key in chunk})
        version += 1
        memory.apply(version, {key: items[key] for key in chunk})
    assert memory.root == oracle_root(items)
    # Deleting everything returns to the empty root, with no nodes left.
    memory.apply(version + 1, dict.fromkeys(items))
    assert memory.root == EMPTY_HASH
    assert memory.node_count() == 0


@given(items=st.dictionaries(key_hashes(), st.binary(max_size=8), max_size=60))
@EXAMPLES
def test_bulk_build_gives_the_nodes_of_batches(items: dict[bytes, bytes]) -> None:
    keys = sorted(items)
    leaves = [leaf_node(key, sha256(items[key])) for key in keys]
    interior: dict[bytes, bytes] = {}
    root = build_tree(keys, leaves, interior.__setitem__)
    assert root == oracle_root(items)
    memory = MemoryStateMap()
    for version, key in enumerate(keys, start=1):
        memory.apply(version, {key: items[key]})
    assert root == memory.root
    # Same nodes: the builder emitted exactly the interior nodes the batches ended with.
    assert len(interior) + len(keys) == memory.node_count()
    for digest, node in interior.items():
        assert sha256(node) == digest


def test_update_tree_reports_what_it_reads_and_creates() -> None:
    memory = MemoryStateMap()
    keys = [sha256(bytes([n])) for n in range(64)]
    memory.apply(1, {key: b"v" for key in keys})
    nodes_before = memory.node_count()
    reads: list[bytes] = []

    def reader(node_hash: bytes) -> bytes:
        reads.append(node_hash)
        return memory.node(node_hash)

    change = update_tree(memory.root, [(keys[0], b"new")], reader)
    # One path: at most its depth in reads, one new leaf, one new interior node per level.
    depth = len(memory.prove(keys[0]).proof.siblings)
    assert len(reads) == depth + 1
    assert len(change.new_nodes) == depth + 1
    assert len(change.dropped) == depth + 1
    assert change.key_count_delta == 0
    assert nodes_before == oracle_node_count(sorted(keys))


def test_setting_a_value_it_already_has_changes_nothing() -> None:
    memory = MemoryStateMap()
    key = sha256(b"k")
    memory.apply(1, {key: b"v", sha256(b"other"): b"w"})
    change = update_tree(memory.root, [(key, b"v")], memory.node)
    assert change.root == memory.root
    assert change.dropped == []
    # Deleting an absent key changes nothing either.
    change = update_tree(memory.root, [(sha256(b"absent"), None)], memory.node)
    assert change.root == memory.root and change.key_count_delta == 0


def test_versions_move_forward() -> None:
    memory = MemoryStateMap()
    memory.apply(3, {sha256(b"k"): b"v"})
    with pytest.raises(ValueError, match="does not follow"):
        memory.apply(3, {sha256(b"k"): b"w"})
    assert memory.root_at(2) == EMPTY_HASH
    with pytest.raises(ValueError, match="negative"):
        memory.root_at(-1)


def test_bulk_build_needs_sorted_distinct_keys() -> None:
    a, b = sorted([sha256(b"a"), sha256(b"b")])
    with pytest.raises(ValueError, match="sorted"):
        build_tree([b, a], [leaf_node(b, a), leaf_node(a, b)], lambda _h, _n: None)
    with pytest.raises(ValueError, match="sorted"):
        build_tree([a, a], [leaf_node(a, a), leaf_node(a, a)], lambda _h, _n: None)
