"""The state map's tree algorithms, and the whole map in memory.

`update_tree` turns a root and a batch of updates into the new root and the nodes it needs,
reading old nodes through a callback; `build_tree` builds a tree from sorted leaves;
`proof_from_path` turns the nodes on a key's path into a proof. The stored map
(`ledger.statemap.store`) and the in-memory map below (`MemoryStateMap`, for the auditor and
the tests) both run these, so they cannot disagree about the tree's shape.

Here nodes are named by their hash (the store maps hashes to its row ids). A node is its own
hash preimage (`ledger.statemap.proof`): 0x02 ‖ key hash ‖ value hash for a leaf,
0x03 ‖ left ‖ right for an interior node. The tree is
canonical (a pure function of its set of keys and values): a subtree with no key is empty, a
subtree with one key is that key's leaf, a subtree with two or more is an interior node.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from ledger.statemap.proof import (
    EMPTY_HASH,
    INTERIOR_PREFIX,
    KEY_BITS,
    LEAF_PREFIX,
    MapLeaf,
    MapProof,
    key_bit,
    leaf_node,
    value_hash,
)

NodeReader = Callable[[bytes], bytes]
"""Returns the node (hash preimage) with the given hash; raises `MissingNodeError`."""

_LEAF_TAG = LEAF_PREFIX[0]
_INTERIOR_TAG = INTERIOR_PREFIX[0]
_NOT_LOOKED_UP = b""
"""Stands for "this untouched subtree's node was not read": whether it is a single leaf is
only asked when its sibling became empty (then the leaf moves up)."""


class StateTreeError(RuntimeError):
    """The nodes do not form a valid state-map tree."""


class MissingNodeError(StateTreeError, LookupError):
    """A node that the tree refers to is not stored."""


@dataclass(slots=True)
class TreeChange:
    """The outcome of one batch: the new root and what the tree gained and lost."""

    root: bytes
    key_count_delta: int = 0
    new_nodes: dict[bytes, bytes] = field(default_factory=dict)
    """hash → node of each interior node the batch created and of each leaf it set (a leaf
    that only moves to another depth keeps its node: its hash does not depend on depth)."""
    new_values: dict[bytes, bytes] = field(default_factory=dict)
    """leaf hash → value bytes, for every new leaf."""
    dropped: list[bytes] = field(default_factory=list)
    """Hashes of old nodes that the new tree no longer has."""


def split_point(keys: Sequence[bytes], depth: int, lo: int, hi: int) -> int:
    """The first index in `keys[lo:hi]` (sorted, sharing their first `depth` bits) whose bit
    `depth` is 1: the boundary between the left and the right subtree."""
    shift = KEY_BITS - 1 - depth
    first = int.from_bytes(keys[lo], "big")
    boundary = (((first >> shift) | 1) << shift).to_bytes(32, "big")
    return bisect_left(keys, boundary, lo, hi)


NodeSink = Callable[[bytes, bytes], None]
"""Receives (hash, node) of each interior node a batch creates."""


class _Builder:
    """Builds canonical subtrees from sorted leaves, joining children the one way the format
    allows; shared by batch updates and bulk loading, so both produce the same nodes."""

    def __init__(self, read: NodeReader, sink: NodeSink) -> None:
        self.read = read
        self.sink = sink

    def build(
        self, depth: int, keys: Sequence[bytes], leaves: Sequence[bytes], lo: int, hi: int
    ) -> tuple[bytes, bytes | None]:
        """(hash, the leaf if it is one) of the subtree at `depth` holding the sorted,
        distinct `keys[lo:hi]` with their leaf nodes `leaves[lo:hi]`."""
        if lo == hi:
            return EMPTY_HASH, None
        if hi - lo == 1:
            leaf = leaves[lo]
            return hashlib.sha256(leaf).digest(), leaf
        mid = split_point(keys, depth, lo, hi)
        left, left_leaf = self.build(depth + 1, keys, leaves, lo, mid)
        right, right_leaf = self.build(depth + 1, keys, leaves, mid, hi)
        return self.join(left, left_leaf, right, right_leaf)

    def join(
        self, left: bytes, left_leaf: bytes | None, right: bytes, right_leaf: bytes | None
    ) -> tuple[bytes, bytes | None]:
        """The subtree over two new children: empty if both are, the leaf itself if one is a
        lone leaf beside an empty subtree (it moves up), an interior node otherwise."""
        if left == EMPTY_HASH and right == EMPTY_HASH:
            return EMPTY_HASH, None
        if left == EMPTY_HASH:
            leaf = self.read(right) if right_leaf == _NOT_LOOKED_UP else right_leaf
            if leaf is not None and leaf[0] == _LEAF_TAG:
                return right, leaf
        elif right == EMPTY_HASH:
            leaf = self.read(left) if left_leaf == _NOT_LOOKED_UP else left_leaf
            if leaf is not None and leaf[0] == _LEAF_TAG:
                return left, leaf
        node = INTERIOR_PREFIX + left + right
        digest = hashlib.sha256(node).digest()
        self.sink(digest, node)
        return digest, None


class _Updater(_Builder):
    """One batch against one old tree. Keys are sorted and distinct; `leaves[i]` is the new
    leaf of `keys[i]`, or None to delete it."""

    def __init__(
        self, read: NodeReader, keys: Sequence[bytes], leaves: Sequence[bytes | None]
    ) -> None:
        self.change = TreeChange(root=EMPTY_HASH)
        super().__init__(read, self.change.new_nodes.__setitem__)
        self.keys = keys
        self.leaves = leaves

    def subtree(self, depth: int, old: bytes, lo: int, hi: int) -> tuple[bytes, bytes | None]:
        """(new hash, its leaf if the new subtree is one leaf) of the subtree at `depth` that
        holds `keys[lo:hi]` and had hash `old`."""
        if old == EMPTY_HASH:
            keys: list[bytes] = []
            leaves: list[bytes] = []
            for index in range(lo, hi):
                leaf = self.leaves[index]
                if leaf is not None:
                    keys.append(self.keys[index])
                    leaves.append(leaf)
            self.change.key_count_delta += len(keys)
            return self.build(depth, keys, leaves, 0, len(keys))
        node = self.read(old)
        if node[0] == _LEAF_TAG:
            return self.merge_into_leaf(depth, old, node, lo, hi)
        if node[0] != _INTERIOR_TAG or depth >= KEY_BITS:
            raise StateTreeError(f"node {old.hex()} at depth {depth} is not a tree node")
        left, right = node[1:33], node[33:65]
        mid = split_point(self.keys, depth, lo, hi)
        new_left, left_leaf = (
            self.subtree(depth + 1, left, lo, mid) if lo < mid else (left, _NOT_LOOKED_UP)
        )
        new_right, right_leaf = (
            self.subtree(depth + 1, right, mid, hi) if mid < hi else (right, _NOT_LOOKED_UP)
        )
        if new_left == left and new_right == right:
            return old, None
        self.change.dropped.append(old)
        return self.join(new_left, left_leaf, new_right, right_leaf)

    def merge_into_leaf(
        self, depth: int, old: bytes, node: bytes, lo: int, hi: int
    ) -> tuple[bytes, bytes | None]:
        """The subtree was the single leaf `node`; `keys[lo:hi]` replace it or join it."""
        old_key = node[1:33]
        position = bisect_left(self.keys, old_key, lo, hi)
        replaced = position < hi and self.keys[position] == old_key
        if replaced and self.leaves[position] == node and hi - lo == 1:
            return old, node  # set to the value it already has
        keys: list[bytes] = []
        leaves: list[bytes] = []
        for index in range(lo, hi):
            if index == position and not replaced:
                keys.append(old_key)
                leaves.append(node)
            leaf = self.leaves[index]
            if leaf is not None:
                keys.append(self.keys[index])
                leaves.append(leaf)
                if index != position or not replaced:
                    self.change.key_count_delta += 1
        if position == hi and not replaced:
            keys.append(old_key)
            leaves.append(node)
        if replaced and self.leaves[position] != node:
            self.change.dropped.append(old)
            if self.leaves[position] is None:
                self.change.key_count_delta -= 1
        return self.build(depth, keys, leaves, 0, len(keys))


def prepare_updates(
    updates: Iterable[tuple[bytes, bytes | None]],
) -> tuple[list[bytes], list[bytes | None], dict[bytes, tuple[bytes, bytes]]]:
    """Sorted key hashes, their new leaf nodes (None: delete), and leaf hash → (leaf node,
    value) of the new leaves. Key hashes must be distinct."""
    ordered = sorted(updates, key=lambda item: item[0])
    keys = [key for key, _ in ordered]
    for previous, current in pairwise(keys):
        if previous == current:
            raise ValueError(f"key hash {current.hex()} is updated twice in one batch")
    leaves: list[bytes | None] = []
    new_leaves: dict[bytes, tuple[bytes, bytes]] = {}
    for key, value in ordered:
        if value is None:
            leaves.append(None)
            continue
        leaf = leaf_node(key, value_hash(value))
        leaves.append(leaf)
        new_leaves[hashlib.sha256(leaf).digest()] = (leaf, value)
    return keys, leaves, new_leaves


def update_tree(
    root: bytes,
    updates: Iterable[tuple[bytes, bytes | None]],
    read: NodeReader,
) -> TreeChange:
    """Apply (key hash, value bytes or None to delete) updates to the tree with `root`.

    Deleting an absent key changes nothing. Only nodes on the updated keys' paths are read
    (and, when a deletion leaves a single leaf beside an empty subtree, that leaf).
    """
    keys, leaves, new_leaves = prepare_updates(updates)
    updater = _Updater(read, keys, leaves)
    change = updater.change
    change.root = updater.subtree(0, root, 0, len(keys))[0] if keys else root
    for digest, (leaf, value) in new_leaves.items():
        change.new_nodes[digest] = leaf
        change.new_values[digest] = value
    return change


def build_tree(keys: Sequence[bytes], leaves: Sequence[bytes], sink: NodeSink) -> bytes:
    """The root of a new tree of sorted, distinct key hashes `keys` with their leaf nodes
    `leaves`. Each interior node goes to `sink(hash, node)` once, children before parents
    (the caller stores the leaves it passed). For loading a map in bulk: the same builder as
    `update_tree`, so the same nodes, without holding them in memory."""
    for previous, current in pairwise(keys):
        if previous >= current:
            raise ValueError("bulk keys must be sorted by key hash and distinct")
    assert len(keys) == len(leaves)
    return _Builder(_no_reads, sink).build(0, keys, leaves, 0, len(keys))[0]


def _no_reads(node_hash: bytes) -> bytes:
    raise AssertionError("building from leaves needs no stored nodes")


# ------------------------------------------------------------------------------ paths


@dataclass(frozen=True, slots=True)
class PathResult:
    """What the path of one key says: the proof, and the key's leaf if it is in the map."""

    proof: MapProof
    leaf: bytes | None
    """The key's own leaf node when the map holds the key."""


def walk_path(root: bytes, key_hash: bytes, read: NodeReader) -> Iterator[bytes]:
    """The nodes on the key's path, from the root down to a leaf or to an empty child."""
    node_hash = root
    depth = 0
    while node_hash != EMPTY_HASH:
        node = read(node_hash)
        yield node
        if node[0] != _INTERIOR_TAG:
            return
        node_hash = node[33:65] if key_bit(key_hash, depth) else node[1:33]
        depth += 1


def proof_from_path(root: bytes, key_hash: bytes, path: Sequence[bytes]) -> PathResult:
    """Assemble the proof for `key_hash` from the nodes on its path (root first), checking
    that each node hashes to what its parent (or the root) says: stored nodes are not trusted
    to be intact, so a damaged store gives an error here, never a wrong proof."""
    expected = root
    siblings: list[bytes] = []
    last_leaf: bytes | None = None
    for depth, node in enumerate(path):
        if expected == EMPTY_HASH:
            break
        if hashlib.sha256(node).digest() != expected:
            raise StateTreeError(
                f"stored node at depth {depth} of key {key_hash.hex()} does not hash to "
                f"{expected.hex()}"
            )
        if node[0] == _LEAF_TAG and len(node) == 65:
            last_leaf = node
            expected = EMPTY_HASH
            break
        if node[0] != _INTERIOR_TAG or len(node) != 65 or depth >= KEY_BITS:
            raise StateTreeError(f"stored node {expected.hex()} is not a state-map node")
        if key_bit(key_hash, depth):
            siblings.append(node[1:33])
            expected = node[33:65]
        else:
            siblings.append(node[33:65])
            expected = node[1:33]
    else:
        if expected != EMPTY_HASH:
            raise MissingNodeError(
                f"node {expected.hex()} at depth {len(path)} of key {key_hash.hex()} is not stored"
            )
    siblings.reverse()
    leaf = None if last_leaf is None else MapLeaf(last_leaf[1:33], last_leaf[33:65])
    own = last_leaf if last_leaf is not None and last_leaf[1:33] == key_hash else None
    return PathResult(MapProof(leaf, tuple(siblings)), own)


# ---------------------------------------------------------------------- the map in memory


@dataclass(frozen=True, slots=True)
class StateProofResult:
    """A key's value at a version and the proof of it against that version's root."""

    key_hash: bytes
    version: int
    root: bytes
    value: bytes | None
    proof: MapProof


class MemoryStateMap:
    """The whole map in memory: the reference implementation.

    The auditor replays the log's entries through it to recompute every map root without the
    database; the tests hold the stored map to it. It keeps only the current tree (the
    nodes of older versions are dropped as they are replaced) and every version's root.
    """

    def __init__(self) -> None:
        self._nodes: dict[bytes, bytes] = {}
        self._values: dict[bytes, bytes] = {}
        self._roots: list[tuple[int, bytes, int]] = [(0, EMPTY_HASH, 0)]

    @property
    def version(self) -> int:
        return self._roots[-1][0]

    @property
    def root(self) -> bytes:
        return self._roots[-1][1]

    def __len__(self) -> int:
        return self._roots[-1][2]

    def apply(self, version: int, updates: Mapping[bytes, bytes | None]) -> bytes:
        """Apply (key hash → value bytes, or None to delete) as `version`; returns the root."""
        if version <= self.version:
            raise ValueError(f"version {version} does not follow version {self.version}")
        change = update_tree(self.root, updates.items(), self.node)
        for dropped in change.dropped:
            node = self._nodes.pop(dropped)
            if node[0] == _LEAF_TAG:
                self._values.pop(dropped, None)
        self._nodes.update(change.new_nodes)
        self._values.update(change.new_values)
        count = len(self) + change.key_count_delta
        assert count >= 0
        self._roots.append((version, change.root, count))
        return change.root

    def root_at(self, version: int) -> bytes:
        """The root after every update up to and including `version`."""
        if version < 0:
            raise ValueError(f"version {version} is negative")
        index = bisect_left(self._roots, (version + 1,)) - 1
        return self._roots[index][1]

    def get(self, key_hash: bytes) -> bytes | None:
        return self.prove(key_hash).value

    def prove(self, key_hash: bytes) -> StateProofResult:
        """The proof of the key's current value (or absence) against the current root."""
        root = self.root
        path = list(walk_path(root, key_hash, self.node))
        result = proof_from_path(root, key_hash, path)
        value = None
        if result.leaf is not None:
            value = self._values[hashlib.sha256(result.leaf).digest()]
        return StateProofResult(key_hash, self.version, root, value, result.proof)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """(key hash, value) of every key, in key-hash order."""
        stack = [self.root] if self.root != EMPTY_HASH else []
        while stack:
            node_hash = stack.pop()
            node = self._nodes[node_hash]
            if node[0] == _LEAF_TAG:
                yield node[1:33], self._values[node_hash]
                continue
            for child in (node[33:65], node[1:33]):
                if child != EMPTY_HASH:
                    stack.append(child)

    def node_count(self) -> int:
        return len(self._nodes)

    def node(self, node_hash: bytes) -> bytes:
        """The node with this hash in the current tree (a `NodeReader`)."""
        try:
            return self._nodes[node_hash]
        except KeyError:
            raise MissingNodeError(f"node {node_hash.hex()} is not in the map") from None
