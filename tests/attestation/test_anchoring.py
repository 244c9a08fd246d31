"""`attestation.anchoring.anchor.anchor_now` on the embedded chain (and once on anvil): anchors the
head with a locally verified proof, records it, does nothing when there is nothing new, and
refuses, without sending anything, to anchor a log that does not extend the anchored root.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from anchor_support import register_log

from attestation.anchoring.anchor import (
    AnchorConflictError,
    ReorganisedError,
    anchor_now,
    anchor_records,
    latest_anchor_record,
    wait_for_confirmations,
)
from attestation.chain.client import CarbonAnchor, Chain, log_id_for_origin, open_embedded_chain
from attestation.chain.deployment import LogNotRegisteredError, embedded_admin
from ledger.registry import Registry, initialise_registry
from ledger.settings import LedgerSettings

ORIGIN = "test.carbonledger.local/anchoring"


def _registry(path: Path) -> Registry:
    return initialise_registry(LedgerSettings(data_dir=path, log_origin=ORIGIN))


def _append(registry: Registry, count: int, tag: str = "") -> None:
    start = registry.log.head().size
    registry.log.append({"kind": "test/1", "n": n, "tag": tag} for n in range(start, start + count))


@pytest.fixture
def registry(tmp_path: Path, database_url: str) -> Iterator[Registry]:
    """Once on SQLite and once on PostgreSQL (the root conftest's `database_url`)."""
    opened = initialise_registry(
        LedgerSettings(data_dir=tmp_path / "log", database_url=database_url, log_origin=ORIGIN)
    )
    yield opened
    opened.close()


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Chain]:
    opened = open_embedded_chain(tmp_path / "chain-data")
    yield opened
    opened.close()


def test_anchors_the_head_and_records_it(registry: Registry, chain: Chain) -> None:
    contract, _ = CarbonAnchor.deploy(chain, admin=embedded_admin(chain).address)
    assert anchor_now(registry.log, contract) is None, "an empty log has nothing to anchor"
    _append(registry, 5)
    first = anchor_now(registry.log, contract)
    assert first is not None and first.size == 5
    assert anchor_now(registry.log, contract) is None, "nothing new since the last anchor"
    _append(registry, 11)
    second = anchor_now(registry.log, contract)
    assert second is not None
    head = registry.log.head()
    assert (second.size, second.root) == (head.size, head.root)
    assert second.log_id == log_id_for_origin(ORIGIN)
    assert second.chain_id == chain.chain_id and second.contract == contract.address
    assert second.block == first.block + 1 and second.gas_used < 200_000
    assert contract.root_at(second.log_id, 5) == registry.log.root_at(5)
    assert anchor_records(registry.database) == [second, first]
    assert latest_anchor_record(registry.database) == second


def test_refuses_a_log_that_does_not_extend_the_anchored_root(
    registry: Registry, chain: Chain, tmp_path: Path
) -> None:
    contract, _ = CarbonAnchor.deploy(chain, admin=embedded_admin(chain).address)
    _append(registry, 8)
    assert anchor_now(registry.log, contract) is not None
    # Another log with the same origin (same logId) but different entries.
    other = _registry(tmp_path / "other")
    try:
        _append(other, 12, tag="rewritten")
        block_before = chain.w3.eth.block_number
        with pytest.raises(AnchorConflictError, match="does not extend"):
            anchor_now(other.log, contract)
        _append(other, 0)
        shorter = _registry(tmp_path / "shorter")
        try:
            _append(shorter, 8, tag="rewritten")
            with pytest.raises(AnchorConflictError, match="the chain holds root"):
                anchor_now(shorter.log, contract)
        finally:
            shorter.close()
        assert chain.w3.eth.block_number == block_before, "nothing was sent"
        assert anchor_records(other.database) == []
    finally:
        other.close()


def test_confirmations_must_be_positive(registry: Registry, chain: Chain) -> None:
    contract, _ = CarbonAnchor.deploy(chain, admin=embedded_admin(chain).address)
    with pytest.raises(ValueError, match="confirmations"):
        anchor_now(registry.log, contract, confirmations=0)


def test_anchor_now_on_anvil(anvil_anchor: CarbonAnchor, tmp_path: Path) -> None:
    registry = initialise_registry(
        LedgerSettings(data_dir=tmp_path, log_origin="test.carbonledger.local/anchor-now-anvil")
    )
    try:
        _append(registry, 3)
        # On a JSON-RPC chain only the admin registers a log: nothing is sent before.
        with pytest.raises(LogNotRegisteredError, match="chain register-log"):
            anchor_now(registry.log, anvil_anchor, poll_interval=0.05)
        log_id = log_id_for_origin(registry.log.head().origin)
        # A growth bound of 2 entries per anchor: 3 new entries take two anchors.
        register_log(anvil_anchor, log_id, max_growth=2)
        first = anchor_now(registry.log, anvil_anchor, poll_interval=0.05)
        _append(registry, 4)
        second = anchor_now(registry.log, anvil_anchor, poll_interval=0.05)
        assert first is not None and second is not None
        assert first.size == 3 and second.chain_id == 31337 and second.size == 7
        assert [r.size for r in anchor_records(registry.database)] == [7, 5, 3, 2]
        assert anvil_anchor.latest(second.log_id).root == registry.log.head().root
        assert anvil_anchor.anchor_at(log_id, 5).previous_size == 3
    finally:
        registry.close()


def _rpc(chain: Chain, method: str, *params: object) -> object:
    response = chain.w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
    assert "error" not in response, response
    return response["result"]


def test_waits_for_confirmations_on_anvil(
    anvil_chain: Chain, anvil_anchor: CarbonAnchor, tmp_path: Path
) -> None:
    registry = initialise_registry(
        LedgerSettings(data_dir=tmp_path, log_origin="test.carbonledger.local/confirmations")
    )
    stop = threading.Event()

    def miner() -> None:
        # anvil mines only when a transaction arrives; this stands in for the rest of the chain.
        while not stop.wait(0.05):
            _rpc(anvil_chain, "evm_mine")

    thread = threading.Thread(target=miner, daemon=True)
    try:
        register_log(anvil_anchor, log_id_for_origin(registry.log.head().origin))
        _append(registry, 6)
        thread.start()
        record = anchor_now(registry.log, anvil_anchor, confirmations=3, poll_interval=0.02)
        assert record is not None and record.confirmations == 3
        assert anvil_chain.w3.eth.block_number >= record.block + 2
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(timeout=5)
        registry.close()


def test_a_reorganised_anchor_is_reported(anvil_chain: Chain, anvil_anchor: CarbonAnchor) -> None:
    log_id = log_id_for_origin("test.carbonledger.local/reorg")
    register_log(anvil_anchor, log_id)
    snapshot = _rpc(anvil_chain, "evm_snapshot")
    receipt = anvil_anchor.anchor(log_id, 1, b"\x07" * 32, [])
    # Drop the block with the anchor and build a longer chain without it.
    assert _rpc(anvil_chain, "evm_revert", snapshot) is True
    anvil_chain.forget_nonces()
    for _ in range(3):
        _rpc(anvil_chain, "evm_mine")
    with pytest.raises(ReorganisedError, match="no longer in block"):
        wait_for_confirmations(anvil_chain, receipt, 2, timeout=5, poll_interval=0.02)
    assert anvil_anchor.latest(log_id).size == 0
