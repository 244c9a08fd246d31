"""The embedded chain: anchors survive a restart (persisted EVM state), an old replay
journal is migrated once and guarded against a torn tail and damage, one writer with any
number of snapshot readers, the open costs O(1) in past transactions, and eth-tester
reverts decode to the named custom error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import pytest
from anchor_support import expect_revert
from hexbytes import HexBytes

from attestation.chain.client import CarbonAnchor, ChainBackend, ChainSettings, log_id_for_origin
from attestation.chain.connect import open_chain
from attestation.chain.deployment import embedded_admin, ensure_log_registered
from attestation.chain.embedded import (
    JOURNAL_NAME,
    STATE_NAME,
    Chain,
    SentTransaction,
    open_embedded_chain,
)
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


def _legacy_journal(data_dir: Path, registry: Registry, growths: Sequence[int]) -> str:
    """A replay journal as data directories from before the state file hold (decision 75).

    Built from a throw-away chain: deploy, then one anchor per growth; each block's one
    transaction is written as the old journal did. Returns the contract address.
    """
    chain = open_embedded_chain(None)
    contract, _ = _deploy(chain)
    for count in growths:
        _grow_and_anchor(registry, contract, count)
    evm: Any = cast(Any, chain.w3.provider).ethereum_tester.backend.chain
    lines = []
    for number in range(1, int(chain.w3.eth.block_number) + 1):
        (tx_hash,) = [bytes(h) for h in chain.w3.eth.get_block(number)["transactions"]]
        receipt = chain.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
        record: dict[str, Any] = {
            "tx": tx_hash.hex(),
            "raw": evm.get_canonical_transaction(tx_hash).encode().hex(),
            "block": number,
            "status": int(receipt["status"]),
        }
        if receipt["contractAddress"]:
            record["contract"] = str(receipt["contractAddress"])
        lines.append(json.dumps(record, separators=(",", ":")) + "\n")
    _journal(data_dir).parent.mkdir(parents=True, exist_ok=True)
    _journal(data_dir).write_text("".join(lines))
    return contract.address


def test_default_backend_is_embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARBONLEDGER_CHAIN_RPC", raising=False)
    settings = ChainSettings()
    assert settings.backend is ChainBackend.EMBEDDED
    chain = open_chain(settings, tmp_path)
    try:
        assert chain.backend is ChainBackend.EMBEDDED
        assert chain.state_path == tmp_path / "chain" / STATE_NAME
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
            # Anchoring continues where it stopped (nonces come from the persisted state).
            sizes.append(_grow_and_anchor(registry, reopened, 2 + restart))
            assert reopened.latest(LOG_ID).root == registry.log.head().root != head.root
        finally:
            chain.close()
    chain = open_embedded_chain(data, read_only=True)
    try:
        # Deployment, registration, then one anchor per size: one transaction per block.
        assert chain.w3.eth.block_number == 2 + len(sizes)
    finally:
        chain.close()
    assert deployed.block == 1
    assert not _journal(data).exists()


def test_failed_transactions_are_kept_too(tmp_path: Path, registry: Registry) -> None:
    chain = open_embedded_chain(tmp_path)
    contract, _ = _deploy(chain)
    size = _grow_and_anchor(registry, contract, 4)
    # Mined and reverted: it uses a nonce, so the persisted chain must hold it.
    revert = expect_revert(
        lambda: contract.anchor(LOG_ID, size, registry.log.head().root, [], preflight=False)
    )
    assert revert.error == "SizeNotGrowing" and revert.tx_hash is not None
    chain.close()
    chain = open_embedded_chain(tmp_path)
    try:
        assert chain.w3.eth.get_transaction_receipt(HexBytes(revert.tx_hash))["status"] == 0
        contract = CarbonAnchor(chain, contract.address)
        assert _grow_and_anchor(registry, contract, 1) == size + 1
        assert chain.w3.eth.block_number == 5
    finally:
        chain.close()


def test_a_journal_is_migrated_once(tmp_path: Path, registry: Registry) -> None:
    address = _legacy_journal(tmp_path, registry, (3, 4))
    with _journal(tmp_path).open("a") as handle:
        handle.write('{"tx":"ab')  # a crash during the next append: dropped
    chain = open_embedded_chain(tmp_path)
    try:
        assert chain.contracts_deployed() == [address]
        assert CarbonAnchor(chain, address).latest(LOG_ID).size == 7
        _grow_and_anchor(registry, CarbonAnchor(chain, address), 1)
    finally:
        chain.close()
    assert not _journal(tmp_path).exists()
    assert _journal(tmp_path).with_name(JOURNAL_NAME + ".migrated").exists()
    chain = open_embedded_chain(tmp_path)
    try:
        assert CarbonAnchor(chain, address).latest(LOG_ID).size == 8
    finally:
        chain.close()


def test_a_changed_journal_is_refused(tmp_path: Path, registry: Registry) -> None:
    _legacy_journal(tmp_path, registry, (3,))
    lines = _journal(tmp_path).read_text().splitlines()
    record = json.loads(lines[1])
    record["status"] = 0
    _journal(tmp_path).write_text("\n".join([lines[0], json.dumps(record)]) + "\n")
    with pytest.raises(ChainError, match="replaying line 2"):
        open_embedded_chain(tmp_path)
    _journal(tmp_path).write_text("not json\n" + "\n".join(lines) + "\n")
    with pytest.raises(ChainError, match="line 1 is not valid JSON"):
        open_embedded_chain(tmp_path)
    # Nothing half-migrated was kept: the intact journal still migrates.
    _journal(tmp_path).write_text("\n".join(lines) + "\n")
    chain = open_embedded_chain(tmp_path)
    try:
        assert chain.w3.eth.block_number == 3  # deployment, registration, one anchor
    finally:
        chain.close()


def test_one_process_per_embedded_chain(tmp_path: Path) -> None:
    chain = open_embedded_chain(tmp_path)
    try:
        with pytest.raises(ChainError, match="in use"):
            open_embedded_chain(tmp_path)
    finally:
        chain.close()
    open_embedded_chain(tmp_path).close()


def test_readers_work_while_the_writer_runs(tmp_path: Path, registry: Registry) -> None:
    """`anchor status`, `audit replay` and `verify` next to `serve`: a snapshot, no sends."""
    writer = open_embedded_chain(tmp_path)
    try:
        contract, _ = _deploy(writer)
        size = _grow_and_anchor(registry, contract, 3)
        reader = open_embedded_chain(tmp_path, read_only=True)
        try:
            seen = CarbonAnchor(reader, contract.address)
            assert seen.latest(LOG_ID).size == size
            later = _grow_and_anchor(registry, contract, 2)
            assert seen.latest(LOG_ID).size == size, "a reader keeps the snapshot it opened"
            with pytest.raises(ChainError, match="read-only"):
                seen.anchor(LOG_ID, later + 1, b"\x01" * 32, [], preflight=False)
        finally:
            reader.close()
        reader = open_embedded_chain(tmp_path, read_only=True)
        try:
            assert CarbonAnchor(reader, contract.address).latest(LOG_ID).size == later
        finally:
            reader.close()
    finally:
        writer.close()


def _open_cost(data_dir: Path, address: str) -> int:
    """State-file keys read to open the chain and answer `latest` (what `anchor status` does)."""
    chain = open_embedded_chain(data_dir, read_only=True)
    try:
        CarbonAnchor(chain, address).latest(LOG_ID)
        return chain.state_reads
    finally:
        chain.close()


def test_opening_costs_the_same_after_many_anchors(tmp_path: Path, registry: Registry) -> None:
    """O(1) in past transactions: the open reads the head, never the history.

    Counted in keys read rather than seconds, so it holds on a loaded machine; the
    10^4-anchor wall time is scripts/bench/embedded_chain.py's.
    """
    chain = open_embedded_chain(tmp_path)
    try:
        contract, _ = _deploy(chain)
        _grow_and_anchor(registry, contract, 1)
        chain.close()
        few = _open_cost(tmp_path, contract.address)
        chain = open_embedded_chain(tmp_path)
        contract = CarbonAnchor(chain, contract.address)
        for _ in range(60):
            _grow_and_anchor(registry, contract, 1)
        chain.close()
        many = _open_cost(tmp_path, contract.address)
    finally:
        chain.close()
    # The tries are one level deeper at most; a replay would read 60 blocks' worth.
    assert few > 0 and many <= few + 4, (few, many)


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
