"""Against a real anvil node: deploy from the artifact, anchor a growing ledger Log many
times with proofs from `Log.consistency_proof`, and watch the contract refuse every kind of
bad anchor with the custom error that names the check (decoded from JSON-RPC revert data).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from anchor_support import ANVIL_CHAIN_ID, ANVIL_KEYS, expect_revert, free_loopback_port

from attestation.chain.client import ANCHORER_ROLE, CarbonAnchor, log_id_for_origin
from attestation.chain.connect import open_rpc_chain
from attestation.chain.embedded import Chain
from attestation.chain.errors import ChainError
from ledger.log.store import Log
from ledger.registry import Registry, initialise_registry
from ledger.settings import LedgerSettings

ORIGIN = "test.carbonledger.local/anvil"


def _entries(start: int, count: int) -> list[dict[str, object]]:
    return [{"kind": "test/1", "n": n} for n in range(start, start + count)]


def _registry(path: Path, origin: str = ORIGIN) -> Registry:
    return initialise_registry(LedgerSettings(data_dir=path, log_origin=origin))


@pytest.fixture(scope="module")
def grown(
    anvil_anchor: CarbonAnchor, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Log, bytes, list[int]]]:
    """A log anchored 20 times as it grew in uneven batches; yields (log, logId, sizes)."""
    registry = _registry(tmp_path_factory.mktemp("anvil-log"))
    log_id = log_id_for_origin(ORIGIN)
    rng = random.Random(9162)
    sizes: list[int] = []
    for _ in range(20):
        head = registry.log.head()
        registry.log.append(_entries(head.size, rng.choice([1, 2, 3, 7, 16, 33, 100])))
        head = registry.log.head()
        previous = anvil_anchor.latest(log_id)
        proof = registry.log.consistency_proof(previous.size, head.size) if previous.size else None
        receipt = anvil_anchor.anchor(log_id, head.size, head.root, proof.hashes if proof else [])
        assert receipt.gas_used < 200_000, "DESIGN §8: at most 200k gas per anchor"
        sizes.append(head.size)
    yield registry.log, log_id, sizes
    registry.close()


def test_growing_log_is_anchored_at_every_size(
    anvil_anchor: CarbonAnchor, grown: tuple[Log, bytes, list[int]]
) -> None:
    log, log_id, sizes = grown
    assert sizes == sorted(set(sizes)) and len(sizes) == 20
    head = log.head()
    assert anvil_anchor.latest(log_id).size == head.size
    assert anvil_anchor.latest(log_id).root == head.root
    for size in sizes:
        assert anvil_anchor.root_at(log_id, size) == log.root_at(size)
    # Inclusion against anchored roots, as another contract would check a certificate.
    for index in (0, sizes[0] - 1, head.size // 2, head.size - 1):
        size = next(s for s in sizes if s > index)
        proof = log.inclusion_proof(index, size)
        assert anvil_anchor.verify_inclusion(log_id, size, proof.leaf_hash, index, proof.hashes)
        assert not anvil_anchor.verify_inclusion(
            log_id,
            size,
            log.inclusion_proof(index + 1, size).leaf_hash if index + 1 < size else b"\x00" * 32,
            index,
            proof.hashes,
        )


def test_unknown_size_is_reported(
    anvil_anchor: CarbonAnchor, grown: tuple[Log, bytes, list[int]]
) -> None:
    _, log_id, sizes = grown
    between = next(size for size in range(1, sizes[-1]) if size not in sizes)
    revert = expect_revert(lambda: anvil_anchor.root_at(log_id, between))
    assert revert.error == "UnknownAnchor"
    assert revert.arguments == {"logId": log_id, "size": between}


def test_rejects_non_growing_size(
    anvil_anchor: CarbonAnchor, grown: tuple[Log, bytes, list[int]]
) -> None:
    log, log_id, _ = grown
    head = log.head()
    for size in (head.size, head.size - 1):
        revert = expect_revert(lambda s=size: anvil_anchor.anchor(log_id, s, log.root_at(s), []))
        assert revert.error == "SizeNotGrowing"
        assert revert.arguments == {"previous": head.size, "given": size}


def test_rejects_forged_and_truncated_proofs(
    anvil_anchor: CarbonAnchor, grown: tuple[Log, bytes, list[int]]
) -> None:
    log, log_id, _ = grown
    old = log.head()
    log.append(_entries(old.size, 5))
    new = log.head()
    proof = list(log.consistency_proof(old.size, new.size).hashes)
    assert len(proof) >= 2
    for position in range(len(proof)):
        forged = list(proof)
        forged[position] = bytes([forged[position][0] ^ 0x80]) + forged[position][1:]
        revert = expect_revert(lambda f=forged: anvil_anchor.anchor(log_id, new.size, new.root, f))
        assert revert.error in {"OldRootMismatch", "NewRootMismatch"}, revert
    revert = expect_revert(lambda: anvil_anchor.anchor(log_id, new.size, new.root, proof[:-1]))
    assert revert.error == "ProofLengthMismatch"
    assert revert.arguments["got"] == len(proof) - 1
    assert revert.arguments["expected"] == len(proof)
    # A new root that the (genuine) proof does not lead to.
    revert = expect_revert(lambda: anvil_anchor.anchor(log_id, new.size, b"\x42" * 32, proof))
    assert revert.error == "NewRootMismatch"
    # Nothing was anchored by the refused attempts; the genuine one still goes through.
    assert anvil_anchor.latest(log_id).size == old.size
    anvil_anchor.anchor(log_id, new.size, new.root, proof)
    assert anvil_anchor.latest(log_id).root == new.root


def test_rejects_a_root_that_rewrites_an_anchored_entry(
    anvil_anchor: CarbonAnchor,
    grown: tuple[Log, bytes, list[int]],
    tmp_path: Path,
) -> None:
    log, log_id, _ = grown
    anchored = anvil_anchor.latest(log_id)
    # Same origin, same entries, except one entry well inside the anchored prefix.
    rewritten = _registry(tmp_path / "rewritten")
    try:
        victim = anchored.size // 3
        entries = _entries(0, anchored.size + 10)
        entries[victim] = {"kind": "test/1", "n": victim, "rewritten": True}
        for start in range(0, len(entries), 1000):
            rewritten.log.append(entries[start : start + 1000])
        forged_head = rewritten.log.head()
        assert rewritten.log.root_at(victim) == log.root_at(victim), "prefix before it is shared"
        assert rewritten.log.root_at(anchored.size) != anchored.root
        proof = rewritten.log.consistency_proof(anchored.size, forged_head.size)
        revert = expect_revert(
            lambda: anvil_anchor.anchor(log_id, forged_head.size, forged_head.root, proof.hashes)
        )
        assert revert.error == "OldRootMismatch"
    finally:
        rewritten.close()


def test_rejects_a_caller_without_the_anchorer_role(
    anvil_anchor: CarbonAnchor, anvil_outsider: Chain, grown: tuple[Log, bytes, list[int]]
) -> None:
    log, log_id, _ = grown
    outsider = CarbonAnchor(anvil_outsider, anvil_anchor.address)
    head = anvil_anchor.latest(log_id)
    log.append(_entries(log.head().size, 1))
    new = log.head()
    proof = log.consistency_proof(head.size, new.size).hashes
    assert not anvil_anchor.is_anchorer(anvil_outsider.account.address)
    revert = expect_revert(lambda: outsider.anchor(log_id, new.size, new.root, proof))
    assert revert.error == "AccessControlUnauthorizedAccount"
    assert revert.arguments == {
        "account": anvil_outsider.account.address,
        "neededRole": ANCHORER_ROLE,
    }
    # Mined without the gas-estimate preflight, the revert is decoded from the failed
    # transaction and names it.
    revert = expect_revert(
        lambda: outsider.anchor(log_id, new.size, new.root, proof, preflight=False)
    )
    assert revert.error == "AccessControlUnauthorizedAccount"
    assert revert.tx_hash is not None
    assert anvil_anchor.latest(log_id) == head


def test_chain_id_is_checked(anvil_url: str) -> None:
    with pytest.raises(ChainError, match="chain id 31337"):
        open_rpc_chain(anvil_url, ANVIL_KEYS[0], expected_chain_id=ANVIL_CHAIN_ID + 1)


def test_unreachable_rpc_is_a_chain_error() -> None:
    url = f"http://127.0.0.1:{free_loopback_port()}"
    with pytest.raises(ChainError, match="unreachable"):
        open_rpc_chain(url, ANVIL_KEYS[0], timeout=2)
