"""The embedded chain: anchors survive a restart (journal replay), the journal is guarded
against a torn tail, damage and a second process, and eth-tester reverts decode to the
named custom error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from anchor_support import expect_revert

from attestation.chain.client import (
    JOURNAL_NAME,
    CarbonAnchor,
    Chain,
    ChainBackend,
    ChainSettings,
    SentTransaction,
    log_id_for_origin,
    open_chain,
    open_embedded_chain,
)
from attestation.chain.deployment import embedded_admin, ensure_log_registered
from attestation.chain.errors import ChainError
from ledger.registry import Registry, initialise_registry
from ledger.settings import LedgerSettings

ORIGIN = "test.carbonledger.local/embedded"
LOG_ID = log_id_for_origin(ORIGIN)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    opened = initialise_registry(LedgerSettings(data_dir=tmp_path / "log", log_origin=ORIGIN))
    yield opened
    opened.close()


def _deploy(chain: Chain) -> tuple[CarbonAnchor, SentTransaction]:
    """CarbonAnchor v2 with LOG_ID registered: two transactions."""
    contract, deployed = CarbonAnchor.deploy(chain, admin=embedded_admin(chain).address)
    ensure_log_registered(contract, LOG_ID)
    return contract, deployed


def _grow_and_anchor(registry: Registry, contract: CarbonAnchor, count: int) -> int:
    start = registry.log.head().size
    registry.log.append({"kind": "test/1", "n": n} for n in range(start, start + count))
    head = registry.log.head()
    previous = contract.latest(LOG_ID).size
    proof = registry.log.consistency_proof(previous, head.size).hashes if previous else ()
    contract.anchor(LOG_ID, head.size, head.root, proof)
    return head.size


def _journal(data_dir: Path) -> Path:
    return data_dir / "chain" / JOURNAL_NAME


def test_default_backend_is_embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARBONLEDGER_CHAIN_RPC", raising=False)
    settings = ChainSettings()
    assert settings.backend is ChainBackend.EMBEDDED
    chain = open_chain(settings, tmp_path)
    try:
        assert chain.backend is ChainBackend.EMBEDDED
        assert chain.journal_path == _journal(tmp_path)
    finally:
        chain.close()


def test_anchors_survive_restarts(tmp_path: Path, registry: Registry) -> None:
    data = tmp_path / "data"
    chain = open_embedded_chain(data)
    contract, deployed = _deploy(chain)
    sizes = [_grow_and_anchor(registry, contract, n) for n in (3, 5, 17)]
    chain.close()

    for restart in range(2):
        chain = open_embedded_chain(data)
        try:
            assert chain.contracts_deployed() == [contract.address]
            reopened = CarbonAnchor(chain, contract.address)
            head = registry.log.head()
            assert reopened.latest(LOG_ID).size == sizes[-1]
            for size in sizes:
                assert reopened.root_at(LOG_ID, size) == registry.log.root_at(size)
            proof = registry.log.inclusion_proof(4, sizes[1])
            assert reopened.verify_inclusion(LOG_ID, sizes[1], proof.leaf_hash, 4, proof.hashes)
            # Anchoring continues where it stopped (nonces come from the replayed state).
            sizes.append(_grow_and_anchor(registry, reopened, 2 + restart))
            assert reopened.latest(LOG_ID).root == registry.log.head().root != head.root
        finally:
            chain.close()
    receipt_blocks = [json.loads(line)["block"] for line in _journal(data).read_text().splitlines()]
    # Deployment, registration, then one anchor per size: one transaction per block.
    assert receipt_blocks == list(range(1, 1 + 2 + len(sizes))), "one transaction per block"
    assert deployed.block == 1


def test_failed_transactions_are_replayed_too(tmp_path: Path, registry: Registry) -> None:
    chain = open_embedded_chain(tmp_path)
    contract, _ = _deploy(chain)
    size = _grow_and_anchor(registry, contract, 4)
    # Mined and reverted: it uses a nonce, so the replay must include it.
    revert = expect_revert(
        lambda: contract.anchor(LOG_ID, size, registry.log.head().root, [], preflight=False)
    )
    assert revert.error == "SizeNotGrowing" and revert.tx_hash is not None
    chain.close()
    chain = open_embedded_chain(tmp_path)
    try:
        contract = CarbonAnchor(chain, contract.address)
        assert _grow_and_anchor(registry, contract, 1) == size + 1
    finally:
        chain.close()
    statuses = [json.loads(line)["status"] for line in _journal(tmp_path).read_text().splitlines()]
    assert statuses == [1, 1, 1, 0, 1]


def test_torn_last_line_is_dropped(tmp_path: Path, registry: Registry) -> None:
    chain = open_embedded_chain(tmp_path)
    contract, _ = _deploy(chain)
    size = _grow_and_anchor(registry, contract, 3)
    chain.close()
    with _journal(tmp_path).open("a") as handle:
        handle.write('{"tx":"ab')  # a crash during the next append
    chain = open_embedded_chain(tmp_path)
    try:
        assert CarbonAnchor(chain, contract.address).latest(LOG_ID).size == size
        assert _journal(tmp_path).read_text().endswith("}\n")
    finally:
        chain.close()


def test_a_changed_journal_is_refused(tmp_path: Path, registry: Registry) -> None:
    chain = open_embedded_chain(tmp_path)
    contract, _ = _deploy(chain)
    _grow_and_anchor(registry, contract, 3)
    chain.close()
    lines = _journal(tmp_path).read_text().splitlines()
    record = json.loads(lines[1])
    record["status"] = 0
    _journal(tmp_path).write_text("\n".join([lines[0], json.dumps(record)]) + "\n")
    with pytest.raises(ChainError, match="replaying line 2"):
        open_embedded_chain(tmp_path)
    _journal(tmp_path).write_text("not json\n" + "\n".join(lines) + "\n")
    with pytest.raises(ChainError, match="line 1 is not valid JSON"):
        open_embedded_chain(tmp_path)


def test_one_process_per_embedded_chain(tmp_path: Path) -> None:
    chain = open_embedded_chain(tmp_path)
    try:
        with pytest.raises(ChainError, match="in use"):
            open_embedded_chain(tmp_path)
    finally:
        chain.close()
    open_embedded_chain(tmp_path).close()


def test_eth_tester_reverts_are_decoded(embedded_chain: Chain) -> None:
    contract, _ = CarbonAnchor.deploy(embedded_chain, admin=embedded_admin(embedded_chain).address)
    log_id = log_id_for_origin("test.carbonledger.local/decode")
    revert = expect_revert(lambda: contract.anchor(log_id, 1, b"\x01" * 32, []))
    assert revert.error == "LogNotRegistered" and revert.arguments == {"logId": log_id}
    ensure_log_registered(contract, log_id)
    revert = expect_revert(lambda: contract.anchor(log_id, 2, b"\x01" * 32, [b"\x02" * 32]))
    assert revert.error == "EmptyProofRequiredForFirstAnchor" and revert.arguments == {}
    revert = expect_revert(lambda: contract.anchor(log_id, 2, b"\x00" * 32, []))
    assert revert.error == "ZeroRoot"
    revert = expect_revert(lambda: contract.root_at(log_id, 9))
    assert revert.error == "UnknownAnchor"
    assert revert.arguments == {"logId": log_id, "size": 9}
    assert "UnknownAnchor(logId=0x" in str(revert)
    revert = expect_revert(
        lambda: contract.verify_consistency(3, 2, b"\x01" * 32, b"\x02" * 32, [])
    )
    assert revert.error == "OldSizeExceedsNewSize"
    assert revert.arguments == {"size1": 3, "size2": 2}
    outsider = embedded_chain.accounts[2]
    revert = expect_revert(lambda: contract.anchor(log_id, 1, b"\x01" * 32, [], signer=outsider))
    assert revert.error == "NotAnchorer"
    assert revert.arguments == {"logId": log_id, "caller": outsider.address}
    admin = embedded_admin(embedded_chain)
    contract.set_anchorer(log_id, outsider.address, admin=admin)
    assert contract.log_config(log_id).anchorer == outsider.address
    receipt = contract.anchor(log_id, 1, b"\x01" * 32, [], signer=outsider)
    assert receipt.gas_used < 200_000 and contract.latest(log_id).size == 1
