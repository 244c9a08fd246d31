"""Helpers for the state-map tests (imported by module name; never collected).

- `oracle_root`: the map's root written straight from the definition in docs/state-map.md
  (recursive over the set of keys, no incremental structure, no shared code with
  `ledger.statemap`), the oracle for both the in-memory and the stored map;
- hypothesis strategies for key hashes that make interesting trees: random ones, and
  neighbours that share up to 255 leading bits (the deepest paths the format allows);
- registries on SQLite and PostgreSQL for module-scoped fixtures.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from hypothesis import strategies as st

from ledger.registry import Registry, initialise_registry
from ledger.settings import LedgerSettings


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def bit(key: bytes, depth: int) -> int:
    return (key[depth // 8] >> (7 - depth % 8)) & 1


def oracle_root(items: Mapping[bytes, bytes]) -> bytes:
    """The root of the map holding key hash → value `items`, from the definition:
    no key → 32 zero bytes; one key → SHA-256(0x02 ‖ key hash ‖ SHA-256(value));
    more → SHA-256(0x03 ‖ root(left half) ‖ root(right half)), split on the next key bit."""

    def subtree(depth: int, keys: list[bytes]) -> bytes:
        if not keys:
            return bytes(32)
        if len(keys) == 1:
            return sha256(b"\x02" + keys[0] + sha256(items[keys[0]]))
        left = [key for key in keys if bit(key, depth) == 0]
        right = [key for key in keys if bit(key, depth) == 1]
        return sha256(b"\x03" + subtree(depth + 1, left) + subtree(depth + 1, right))

    return subtree(0, sorted(items))


def oracle_node_count(keys: list[bytes], depth: int = 0) -> int:
    """How many nodes (leaves and interior) the canonical tree of `keys` has."""
    if len(keys) <= 1:
        return len(keys)
    left = [key for key in keys if bit(key, depth) == 0]
    right = [key for key in keys if bit(key, depth) == 1]
    return 1 + oracle_node_count(left, depth + 1) + oracle_node_count(right, depth + 1)


NEIGHBOUR_BASE = sha256(b"state-map neighbours")


def neighbour(flip_bits: frozenset[int]) -> bytes:
    """The base key with the given bits flipped: keys that share long prefixes."""
    value = int.from_bytes(NEIGHBOUR_BASE, "big")
    for position in flip_bits:
        value ^= 1 << (255 - position)
    return value.to_bytes(32, "big")


def key_hashes() -> st.SearchStrategy[bytes]:
    """Random key hashes, and neighbours of one base key differing in a few bits anywhere
    (down to the very last bit, so paths up to the maximal depth of 256 occur)."""
    deep = st.frozensets(st.sampled_from([0, 1, 7, 8, 100, 200, 250, 254, 255]), max_size=3)
    return st.one_of(
        st.binary(min_size=32, max_size=32),
        deep.map(neighbour),
        st.sampled_from([bytes(32), b"\xff" * 32, b"\x80" + bytes(31), b"\x7f" + b"\xff" * 31]),
    )


def values() -> st.SearchStrategy[bytes]:
    return st.binary(min_size=0, max_size=40)


def batches(max_keys: int = 12) -> st.SearchStrategy[dict[bytes, bytes | None]]:
    """One batch: key hash → new value, or None to delete."""
    return st.dictionaries(key_hashes(), st.none() | values(), min_size=1, max_size=max_keys)


def apply_to(truth: dict[bytes, bytes], batch: Mapping[bytes, bytes | None]) -> None:
    for key, value in batch.items():
        if value is None:
            truth.pop(key, None)
        else:
            truth[key] = value


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'carbonledger.db'}"


@contextmanager
def open_registry_at(data_dir: Path, database_url: str) -> Iterator[Registry]:
    registry = initialise_registry(LedgerSettings(data_dir=data_dir, database_url=database_url))
    try:
        yield registry
    finally:
        registry.close()
