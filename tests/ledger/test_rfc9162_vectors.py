"""Every case of tests/data/rfc9162 (transparency-dev/merkle test data).

- roots for sizes 0..8 from `leaf_inputs_hex`: pure (`root_of_leaves`, `recompute_root`)
  and through a registry log on SQLite and PostgreSQL, appended in several batchings;
- the leaf hashes;
- all 98 inclusion and 98 consistency probes: `wantErr` ones must raise
  VerificationError, the others must verify. The file's notes: like the upstream
  verifier, a consistency proof from size 0 is an error (even to size 0); equal sizes
  accept exactly an empty proof with equal roots; otherwise hashes are 32 bytes.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from ledger_support import load_testdata, missing_testdata

from ledger.log.merkle import (
    ConsistencyProofError,
    InclusionProofError,
    VerificationError,
    fold_range,
    leaf_hash,
    root_of_leaves,
    verify_consistency,
    verify_inclusion,
)
from ledger.log.store import recompute_root
from ledger.registry import Registry

VECTOR_FILE = ("rfc9162", "transparency-dev-vectors.json")
VECTORS: dict[str, Any] | None = load_testdata(*VECTOR_FILE)

LEAVES: list[bytes] = [bytes.fromhex(h) for h in VECTORS["leaf_inputs_hex"]] if VECTORS else []
ROOTS: dict[int, bytes] = (
    {int(size): bytes.fromhex(h) for size, h in VECTORS["root_hashes_hex_by_tree_size"].items()}
    if VECTORS
    else {}
)
LEAF_HASHES: list[bytes] = [bytes.fromhex(h) for h in VECTORS["leaf_hashes_hex"]] if VECTORS else []
INCLUSION_PROBES: list[dict[str, Any]] = VECTORS["inclusion_probes"] if VECTORS else []
CONSISTENCY_PROBES: list[dict[str, Any]] = VECTORS["consistency_probes"] if VECTORS else []


def b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def proof_of(probe: dict[str, Any]) -> list[bytes]:
    return [b64(item) for item in probe["proof"] or []]


def probe_id(probe: dict[str, Any]) -> str:
    return str(probe["file"]).removeprefix("testdata/").removesuffix(".json")


def test_vector_file_is_complete() -> None:
    if VECTORS is None:
        missing_testdata(*VECTOR_FILE)
    assert len(LEAVES) == 8
    assert sorted(ROOTS) == list(range(9))
    assert len(LEAF_HASHES) == 8
    assert len(INCLUSION_PROBES) == 98
    assert len(CONSISTENCY_PROBES) == 98
    for probes in (INCLUSION_PROBES, CONSISTENCY_PROBES):
        ids = [probe_id(probe) for probe in probes]
        assert len(set(ids)) == len(ids), "probe ids must be unique"
        assert {probe["wantErr"] for probe in probes} == {True, False}
    assert VECTORS["notes"], "the file's notes explain the size-0 consistency rule"


# ------------------------------------------------------------------------ hashing


@pytest.mark.parametrize("index", range(8))
def test_leaf_hash(index: int) -> None:
    assert leaf_hash(LEAVES[index]) == LEAF_HASHES[index]


@pytest.mark.parametrize("size", range(9))
def test_root_from_scratch(size: int) -> None:
    assert root_of_leaves(LEAVES[:size]) == ROOTS[size]
    assert recompute_root(LEAVES[:size]) == ROOTS[size]


def test_empty_root_is_sha256_of_nothing() -> None:
    assert ROOTS[0] == bytes.fromhex(
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert fold_range([]) == ROOTS[0]


BATCHINGS = {
    "one-per-transaction": [1] * 8,
    "all-in-one": [8],
    "3+5": [3, 5],
    "2+1+4+1": [2, 1, 4, 1],
}


@pytest.mark.parametrize("batches", BATCHINGS.values(), ids=BATCHINGS.keys())
def test_registry_log_reproduces_the_vectors(registry: Registry, batches: list[int]) -> None:
    """The stored log (tiles, head) gives the vector roots and serves verifying proofs."""
    if VECTORS is None:
        missing_testdata(*VECTOR_FILE)
    log = registry.log
    assert log.head().root == ROOTS[0]
    appended = 0
    for batch in batches:
        with log.write() as transaction:
            indices = transaction.extend_canonical(LEAVES[appended : appended + batch])
        assert indices == range(appended, appended + batch)
        appended += batch
        head = log.head()
        assert (head.size, head.root) == (appended, ROOTS[appended])

    assert log.entries(0, 8) == LEAVES
    for size in range(9):
        assert log.root_at(size) == ROOTS[size]
    for size in range(1, 9):
        for index in range(size):
            proof = log.inclusion_proof(index, size)
            assert proof.leaf_hash == LEAF_HASHES[index]
            assert proof.root == ROOTS[size]
            verify_inclusion(index, size, LEAF_HASHES[index], proof.hashes, ROOTS[size])
        for size1 in range(1, size + 1):
            consistency = log.consistency_proof(size1, size)
            assert (consistency.root1, consistency.root2) == (ROOTS[size1], ROOTS[size])
            verify_consistency(size1, size, consistency.hashes, ROOTS[size1], ROOTS[size])

    # The upstream happy paths were made from this same tree: the log must serve
    # exactly their proofs.
    compared = 0
    for probe in INCLUSION_PROBES:
        if not probe["wantErr"] and b64(probe["root"]) == ROOTS.get(probe["treeSize"]):
            served = log.inclusion_proof(probe["leafIdx"], probe["treeSize"])
            assert list(served.hashes) == proof_of(probe), probe["file"]
            compared += 1
    for probe in CONSISTENCY_PROBES:
        if not probe["wantErr"] and b64(probe["root2"]) == ROOTS.get(probe["size2"]):
            served_consistency = log.consistency_proof(probe["size1"], probe["size2"])
            assert list(served_consistency.hashes) == proof_of(probe), probe["file"]
            compared += 1
    assert compared == 10, "5 inclusion and 5 consistency happy paths come from this tree"


# ------------------------------------------------------------------------- probes


@pytest.mark.parametrize("probe", INCLUSION_PROBES, ids=[probe_id(p) for p in INCLUSION_PROBES])
def test_inclusion_probe(probe: dict[str, Any]) -> None:
    arguments = (
        probe["leafIdx"],
        probe["treeSize"],
        b64(probe["leafHash"]),
        proof_of(probe),
        b64(probe["root"]),
    )
    if probe["wantErr"]:
        with pytest.raises(VerificationError) as raised:
            verify_inclusion(*arguments)
        assert isinstance(raised.value, InclusionProofError)
    else:
        verify_inclusion(*arguments)  # returns None, raises on failure


@pytest.mark.parametrize("probe", CONSISTENCY_PROBES, ids=[probe_id(p) for p in CONSISTENCY_PROBES])
def test_consistency_probe(probe: dict[str, Any]) -> None:
    arguments = (
        probe["size1"],
        probe["size2"],
        proof_of(probe),
        b64(probe["root1"]),
        b64(probe["root2"]),
    )
    if probe["wantErr"]:
        with pytest.raises(VerificationError) as raised:
            verify_consistency(*arguments)
        assert isinstance(raised.value, ConsistencyProofError)
    else:
        verify_consistency(*arguments)  # returns None, raises on failure
