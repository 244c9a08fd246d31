"""Python-Solidity cross-check on the embedded chain: the contract's RFC 9162 verifiers
(`verifyConsistency`, `rootFromInclusionProof`) and `ledger.log.merkle` give the same answer

- on every probe of tests/data/rfc9162 that fits the ABI (32-byte hashes, uint64
  sizes); probes with other hash lengths cannot reach the contract, and for those the
  Python side alone must give the expected answer;
- on random proofs read from a real stored ledger Log (hypothesis), both genuine ones and
  ones with one hash flipped.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from testdata_support import TESTDATA

from attestation.chain.client import CarbonAnchor, ContractRevert
from ledger.log.merkle import (
    HASH_SIZE,
    VerificationError,
    root_from_inclusion_proof,
    verify_consistency,
)
from ledger.log.store import Log
from ledger.registry import initialise_registry
from ledger.settings import LedgerSettings

VECTORS_PATH = TESTDATA / "rfc9162" / "transparency-dev-vectors.json"
VECTORS: dict[str, Any] | None = (
    json.loads(VECTORS_PATH.read_text()) if VECTORS_PATH.exists() else None
)
INCLUSION = VECTORS["inclusion_probes"] if VECTORS else []
CONSISTENCY = VECTORS["consistency_probes"] if VECTORS else []
LOG_SIZE = 300


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value, validate=True) if value else b""


def _proof(probe: dict[str, Any]) -> list[bytes]:
    return [_b64(item) for item in probe["proof"] or []]


def _probe_id(probe: dict[str, Any]) -> str:
    return str(probe["file"]).removeprefix("testdata/").removesuffix(".json")


def _fits_abi(hashes: Sequence[bytes], numbers: Sequence[int]) -> bool:
    return all(len(h) == HASH_SIZE for h in hashes) and all(0 <= n < 1 << 64 for n in numbers)


def _python_root(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes | None:
    try:
        return root_from_inclusion_proof(index, size, leaf, proof)
    except VerificationError:
        return None


def _contract_root(
    anchor: CarbonAnchor, index: int, size: int, leaf: bytes, proof: Sequence[bytes]
) -> bytes | None:
    try:
        return anchor.root_from_inclusion_proof(index, size, leaf, proof)
    except ContractRevert as revert:
        assert revert.error in {"IndexOutOfRange", "ProofLengthMismatch"}, revert
        return None


def _python_consistent(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> bool:
    try:
        verify_consistency(size1, size2, proof, root1, root2)
    except VerificationError:
        return False
    return True


def _contract_consistent(
    anchor: CarbonAnchor, size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> bool:
    try:
        anchor.verify_consistency(size1, size2, root1, root2, proof)
    except ContractRevert as revert:
        assert revert.error in {
            "EmptyOldTree",
            "OldSizeExceedsNewSize",
            "ProofLengthMismatch",
            "EqualSizeRootMismatch",
            "OldRootMismatch",
            "NewRootMismatch",
        }, revert
        return False
    return True


def test_probe_file_present() -> None:
    if VECTORS is None:
        pytest.fail(f"test data missing at {VECTORS_PATH} (it is part of the repository)")
    assert len(INCLUSION) == 98 and len(CONSISTENCY) == 98


@pytest.mark.parametrize("probe", INCLUSION, ids=_probe_id)
def test_inclusion_probe(embedded_anchor: CarbonAnchor, probe: dict[str, Any]) -> None:
    index, size = probe["leafIdx"], probe["treeSize"]
    leaf, root, proof = _b64(probe["leafHash"]), _b64(probe["root"]), _proof(probe)
    python_root = _python_root(index, size, leaf, proof)
    python_ok = python_root is not None and len(root) == HASH_SIZE and python_root == root
    assert python_ok is not probe["wantErr"]
    if not _fits_abi([leaf, root, *proof], [index, size]):
        # Not expressible as bytes32: only the Python side can see it, and it must refuse.
        assert probe["wantErr"] and not python_ok
        return
    contract_root = _contract_root(embedded_anchor, index, size, leaf, proof)
    assert contract_root == python_root
    assert (contract_root == root) is python_ok


@pytest.mark.parametrize("probe", CONSISTENCY, ids=_probe_id)
def test_consistency_probe(embedded_anchor: CarbonAnchor, probe: dict[str, Any]) -> None:
    size1, size2 = probe["size1"], probe["size2"]
    root1, root2, proof = _b64(probe["root1"]), _b64(probe["root2"]), _proof(probe)
    python_ok = _python_consistent(size1, size2, proof, root1, root2)
    assert python_ok is not probe["wantErr"]
    if not _fits_abi([root1, root2, *proof], [size1, size2]):
        # One such probe is valid: equal sizes with an empty proof compare the roots only,
        # whatever their length (upstream's rule); it cannot be put to a bytes32 ABI.
        assert python_ok is (size1 == size2 > 0 and not proof and root1 == root2), (
            "every other non-32-byte probe must be refused by Python"
        )
        return
    assert _contract_consistent(embedded_anchor, size1, size2, proof, root1, root2) is python_ok


def test_non_bytes32_input_never_reaches_the_contract(embedded_anchor: CarbonAnchor) -> None:
    with pytest.raises(ValueError, match="bytes32"):
        embedded_anchor.verify_consistency(1, 2, b"\x01" * 31, b"\x02" * 32, [b"\x03" * 32])


# ------------------------------------------------------------------ random proofs from a Log


@pytest.fixture(scope="module")
def stored_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Log]:
    data = tmp_path_factory.mktemp("cross-check")
    registry = initialise_registry(LedgerSettings(data_dir=data))
    registry.log.append({"kind": "test/1", "n": n} for n in range(LOG_SIZE))
    yield registry.log
    registry.close()


def _flip(proof: Sequence[bytes], position: int, bit: int) -> list[bytes]:
    forged = list(proof)
    item = bytearray(forged[position])
    item[bit // 8] ^= 1 << (bit % 8)
    forged[position] = bytes(item)
    return forged


SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(data=st.data())
def test_random_consistency_proofs_agree(
    embedded_anchor: CarbonAnchor, stored_log: Log, data: st.DataObject
) -> None:
    size2 = data.draw(st.integers(1, LOG_SIZE), label="size2")
    size1 = data.draw(st.integers(1, size2), label="size1")
    proof = stored_log.consistency_proof(size1, size2)
    hashes = list(proof.hashes)
    assert _python_consistent(size1, size2, hashes, proof.root1, proof.root2)
    assert _contract_consistent(embedded_anchor, size1, size2, hashes, proof.root1, proof.root2)
    if hashes:
        position = data.draw(st.integers(0, len(hashes) - 1), label="position")
        bit = data.draw(st.integers(0, 255), label="bit")
        forged = _flip(hashes, position, bit)
        assert not _python_consistent(size1, size2, forged, proof.root1, proof.root2)
        assert not _contract_consistent(
            embedded_anchor, size1, size2, forged, proof.root1, proof.root2
        )


@SETTINGS
@given(data=st.data())
def test_random_inclusion_proofs_agree(
    embedded_anchor: CarbonAnchor, stored_log: Log, data: st.DataObject
) -> None:
    size = data.draw(st.integers(1, LOG_SIZE), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = stored_log.inclusion_proof(index, size)
    hashes = list(proof.hashes)
    contract_root = embedded_anchor.root_from_inclusion_proof(index, size, proof.leaf_hash, hashes)
    assert contract_root == _python_root(index, size, proof.leaf_hash, hashes) == proof.root
    if hashes:
        position = data.draw(st.integers(0, len(hashes) - 1), label="position")
        forged = _flip(hashes, position, data.draw(st.integers(0, 255), label="bit"))
        forged_root = _python_root(index, size, proof.leaf_hash, forged)
        assert forged_root is not None and forged_root != proof.root
        assert (
            embedded_anchor.root_from_inclusion_proof(index, size, proof.leaf_hash, forged)
            == forged_root
        )
