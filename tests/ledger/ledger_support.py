"""Helpers shared by the tests in tests/ledger (imported by module name; never collected).

- the test data (`TESTDATA`, `load_testdata`, `missing_testdata`),
- a brute-force RFC 9162 tree written straight from the RFC's recursive definitions
  (MTH, PATH, SUBPROOF), used as the oracle for the planners and the stored log,
- the "shape" of a proof (which side each hash joins on), used to say exactly when a
  proof must still verify after its size or index was changed,
- throw-away databases for module-scoped fixtures and subprocess tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import pytest
from sqlalchemy import select
from testdata_support import TESTDATA

from ledger.log.merkle import EMPTY_ROOT, fold_range, leaf_hash, node_hash
from ledger.log.models import LogTile
from ledger.log.store import TILE_LEVEL_SHIFT, TILE_WIDTH
from ledger.registry import Registry, initialise_registry
from ledger.settings import LedgerSettings

WRITER_SCRIPT = Path(__file__).with_name("ledger_writer.py")


# ------------------------------------------------------------------------- test data


def load_testdata(*parts: str) -> Any:
    """Parsed JSON from tests/data, or None when the file is absent.

    Used at import time to build parameter lists; the test that calls `missing_testdata`
    reports the absence as a failure (the data is part of the repository).
    """
    path = TESTDATA.joinpath(*parts)
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def missing_testdata(*parts: str) -> NoReturn:
    pytest.fail(f"test data missing at {TESTDATA.joinpath(*parts)} (it is part of the repository)")


# ------------------------------------------------------------- brute-force RFC 9162


def split_point(n: int) -> int:
    """RFC 9162 §2.1.1: the largest power of two smaller than n (n > 1)."""
    assert n > 1
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class BruteTree:
    """RFC 9162 §2.1 computed literally from the leaves (memoised), as an oracle."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.leaves = list(leaves)
        self.leaf_hashes = [leaf_hash(leaf) for leaf in self.leaves]
        self._memo: dict[tuple[int, int], bytes] = {}

    def mth(self, begin: int, end: int) -> bytes:
        """MTH(D[begin:end])."""
        n = end - begin
        if n == 0:
            return EMPTY_ROOT
        if n == 1:
            return self.leaf_hashes[begin]
        key = (begin, end)
        cached = self._memo.get(key)
        if cached is None:
            k = split_point(n)
            cached = node_hash(self.mth(begin, begin + k), self.mth(begin + k, end))
            self._memo[key] = cached
        return cached

    def root(self, size: int) -> bytes:
        return self.mth(0, size)

    def path(self, m: int, size: int) -> list[bytes]:
        """PATH(m, D[0:size]) (RFC 9162 §2.1.3.1), bottom-up."""
        return self._path(m, 0, size)

    def _path(self, m: int, begin: int, end: int) -> list[bytes]:
        n = end - begin
        if n <= 1:
            return []
        k = split_point(n)
        if m < k:
            return [*self._path(m, begin, begin + k), self.mth(begin + k, end)]
        return [*self._path(m - k, begin + k, end), self.mth(begin, begin + k)]

    def consistency(self, m: int, size: int) -> list[bytes]:
        """PROOF(m, D[0:size]) = SUBPROOF(m, D[0:size], true) (RFC 9162 §2.1.4.1)."""
        return self._subproof(m, 0, size, True)

    def _subproof(self, m: int, begin: int, end: int, whole: bool) -> list[bytes]:
        n = end - begin
        if m == n:
            return [] if whole else [self.mth(begin, end)]
        k = split_point(n)
        if m <= k:
            return [*self._subproof(m, begin, begin + k, whole), self.mth(begin + k, end)]
        return [*self._subproof(m - k, begin + k, end, False), self.mth(begin, begin + k)]

    def perfect_nodes(self, size: int) -> dict[tuple[int, int], bytes]:
        """Every complete subtree (level, index) inside the first `size` leaves."""
        nodes: dict[tuple[int, int], bytes] = {}
        level, width = 0, 1
        while width <= size:
            for index in range(size // width):
                nodes[(level, index)] = self.mth(index * width, (index + 1) * width)
            level, width = level + 1, width * 2
        return nodes


def prefix_roots(leaves: Iterable[bytes]) -> list[bytes]:
    """Roots of every prefix: result[s] is the root of the first s leaves (O(n log n)).

    Independent of `ledger`'s own streaming code: a right-edge stack of (height, hash)
    folded right to left at every size.
    """
    roots = [EMPTY_ROOT]
    stack: list[tuple[int, bytes]] = []
    for leaf in leaves:
        height, node = 0, leaf_hash(leaf)
        while stack and stack[-1][0] == height:
            node = node_hash(stack.pop()[1], node)
            height += 1
        stack.append((height, node))
        roots.append(fold_range([hash_ for _, hash_ in stack]))
    return roots


# --------------------------------------------------------------------- proof shapes

InclusionShape = tuple[str, ...]
ConsistencyShape = tuple[str, ...]


def inclusion_shape(index: int, size: int) -> InclusionShape | None:
    """Which side each hash of PATH(index, D[size]) joins on, bottom-up; None if invalid.

    "L": the proof hash is the left child, "R": the right child. A verifier folds the
    proof following exactly this sequence, so two (index, size) pairs with the same shape
    accept the same proof for the same root — the size itself is authenticated only by
    the signed checkpoint, not by the inclusion proof.
    """
    if not 0 <= index < size:
        return None
    sides: list[str] = []
    begin, end = 0, size
    while end - begin > 1:
        k = split_point(end - begin)
        if index - begin < k:
            sides.append("R")
            end = begin + k
        else:
            sides.append("L")
            begin += k
    return tuple(reversed(sides))


def consistency_shape(size1: int, size2: int) -> ConsistencyShape | None:
    """The role of each hash of PROOF(size1, D[size2]), bottom-up; None if not provable.

    "seed": the old tree's right-most complete subtree (absent when size1 is a power of
    two: the verifier then starts from root1); "L": a left sibling (in both trees);
    "R": a right sibling (new tree only). Follows SUBPROOF in RFC 9162 §2.1.4.1.
    """
    if not 0 < size1 <= size2:
        return None
    roles: list[str] = []
    m, n, whole = size1, size2, True
    while m != n:
        k = split_point(n)
        if m <= k:
            roles.append("R")
            n = k
        else:
            roles.append("L")
            m, n, whole = m - k, n - k, False
    if not whole:
        roles.append("seed")
    return tuple(reversed(roles))


# ------------------------------------------------------------------------ tampering


def flip_bit(data: bytes, bit: int) -> bytes:
    """`data` with bit `bit` (0 = least significant bit of byte 0) inverted."""
    changed = bytearray(data)
    changed[bit // 8] ^= 1 << (bit % 8)
    return bytes(changed)


# ------------------------------------------------------------------------ databases


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'carbonledger.db'}"


@contextmanager
def open_test_registry(data_dir: Path, database_url: str) -> Iterator[Registry]:
    registry = initialise_registry(LedgerSettings(data_dir=data_dir, database_url=database_url))
    try:
        yield registry
    finally:
        registry.close()


def check_stored_tiles(registry: Registry, leaves: Sequence[bytes]) -> int:
    """Every stored node tile holds exactly the complete nodes of the tree of `leaves`.

    Reads `log_tile` directly: for each level L the tiles hold the hashes of nodes
    0 .. (size >> L) - 1 of that level, 256 to a row, nothing more and nothing else.
    Returns the number of tile rows checked.
    """
    levels: list[list[bytes]] = [[leaf_hash(leaf) for leaf in leaves]]
    while len(levels[-1]) >= 2:
        below = levels[-1]
        levels.append([node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)])
    expected: dict[tuple[int, int], bytes] = {}
    for level, hashes in enumerate(levels):
        for start in range(0, len(hashes), TILE_WIDTH):
            expected[(level, start // TILE_WIDTH)] = b"".join(hashes[start : start + TILE_WIDTH])

    mask = (1 << TILE_LEVEL_SHIFT) - 1
    with registry.database.read() as session:
        rows = session.execute(select(LogTile.id, LogTile.hashes)).all()
    stored = {(key >> TILE_LEVEL_SHIFT, key & mask): bytes(hashes) for key, hashes in rows}
    assert set(stored) == set(expected), (
        f"tile rows differ: extra {sorted(set(stored) - set(expected))[:5]}, "
        f"missing {sorted(set(expected) - set(stored))[:5]}"
    )
    for tile, data in stored.items():
        assert data == expected[tile], f"tile {tile} holds wrong or extra node hashes"
    return len(stored)


def read_all_entries(registry: Registry, size: int | None = None) -> list[bytes]:
    """Every stored leaf below `size` (default: the head), in pages the API allows."""
    end = registry.log.head().size if size is None else size
    leaves: list[bytes] = []
    for start in range(0, end, 1000):
        leaves.extend(registry.log.entries(start, min(start + 1000, end)))
    assert len(leaves) == end, f"expected {end} stored entries, read {len(leaves)}"
    return leaves
