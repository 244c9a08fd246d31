"""The anchoring scheduler against a real anvil node, under the faults of issue 4 part 3:
the RPC killed and restarted mid-schedule, an anchor reorganised away, two anchors in
flight at once, and a transaction left unmined until it is replaced with a higher fee.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from anvil_node_support import ANVIL_ADMIN_KEY, ANVIL_CHAIN_ID, ANVIL_KEYS, AnvilNode
from eth_account import Account
from hexbytes import HexBytes

from attestation.anchoring import scheduler as scheduler_module
from attestation.anchoring.anchor import anchor_records
from attestation.anchoring.scheduler import AnchorScheduler, AnchorSettings, StepOutcome, StepResult
from attestation.chain.client import CarbonAnchor, Chain, log_id_for_origin, open_rpc_chain
from ledger.log.store import Log
from ledger.registry import Registry, initialise_registry
from ledger.settings import LedgerSettings

ORIGIN = "test.carbonledger.local/scheduler-anvil"


def _registry(path: Path, origin: str = ORIGIN) -> Registry:
    return initialise_registry(LedgerSettings(data_dir=path, log_origin=origin))


def _append(log: Log, count: int) -> None:
    start = log.head().size
    log.append({"kind": "test/1", "n": n} for n in range(start, start + count))


def _settings(**overrides: Any) -> AnchorSettings:
    values: dict[str, Any] = {
        "anchor_every_entries": 5,
        "anchor_interval_seconds": 3600,
        "anchor_poll_seconds": 0.05,
        "anchor_retry_initial_seconds": 0.2,
        "anchor_retry_max_seconds": 1.0,
        "anchor_confirmation_timeout_seconds": 30,
        **overrides,
    }
    return AnchorSettings(**values)


def _wait_until(condition: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _assert_chain_holds_records(log: Log, contract: CarbonAnchor) -> None:
    """Every recorded anchor is on chain: the contract holds its root, its tx is in its block."""
    log_id = log_id_for_origin(log.head().origin)
    for record in anchor_records(log.database):
        assert contract.root_at(log_id, record.size) == record.root == log.root_at(record.size)
        receipt = contract.chain.w3.eth.get_transaction_receipt(HexBytes(record.tx_hash))
        assert receipt["blockNumber"] == record.block and receipt["status"] == 1


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    opened = _registry(tmp_path / "log")
    yield opened
    opened.close()


def _deploy(node: AnvilNode) -> tuple[Chain, CarbonAnchor]:
    chain = open_rpc_chain(node.url, ANVIL_KEYS[0], expected_chain_id=ANVIL_CHAIN_ID, timeout=2)
    # The admin deploys and registers the logs the tests use; the chain's key only anchors.
    admin = Account.from_key(ANVIL_ADMIN_KEY)
    contract, _ = CarbonAnchor.deploy(chain, admin=admin.address, signer=admin)
    for origin in (ORIGIN, f"{ORIGIN}/0", f"{ORIGIN}/1"):
        contract.register_log(log_id_for_origin(origin), chain.account.address, admin=admin)
    return chain, contract


def test_rpc_killed_and_restarted_mid_schedule_loses_nothing(
    anvil_node: AnvilNode, registry: Registry
) -> None:
    _, contract = _deploy(anvil_node)
    scheduler = AnchorScheduler(registry.log, contract, _settings())
    _append(registry.log, 5)
    first = scheduler.run_once()
    assert first.result is StepResult.ANCHORED and first.record is not None
    assert first.record.size == 5

    anvil_node.stop()  # the node goes away; entries keep arriving
    _append(registry.log, 7)
    failures: list[StepOutcome] = []
    for _ in range(3):
        outcome = scheduler.run_once(force=True)
        assert outcome.result is StepResult.FAILED, outcome
        failures.append(outcome)
    assert all(o.error and "Connection" in o.error for o in failures), failures
    # Exponential backoff, capped: 0.2, 0.4, 0.8 seconds.
    assert [o.retry_in for o in failures] == pytest.approx([0.2, 0.4, 0.8])
    assert scheduler.run_once().result is StepResult.BACKING_OFF
    assert [r.size for r in anchor_records(registry.log.database)] == [5]

    anvil_node.start()  # same port, same chain (anvil's --state file)
    _append(registry.log, 1)
    time.sleep(0.85)  # let the backoff pass: the plain step, not a forced one, resumes
    resumed = scheduler.run_once()
    assert resumed.result is StepResult.ANCHORED and resumed.record is not None
    assert resumed.record.size == 13 == registry.log.head().size
    assert [r.size for r in anchor_records(registry.log.database)] == [13, 5]
    _assert_chain_holds_records(registry.log, contract)
    # Nothing lost: the latest anchored root covers every entry appended during the outage.
    log_id = log_id_for_origin(ORIGIN)
    assert contract.latest(log_id).root == registry.log.head().root


def test_rpc_lost_while_waiting_for_confirmation_resumes_the_same_transaction(
    anvil_node: AnvilNode, registry: Registry
) -> None:
    """The transaction was sent before the node went away: after the restart the scheduler
    finds it mined (anvil kept it in its state) and records it; no second one is sent."""
    chain, contract = _deploy(anvil_node)
    # Two confirmations and no other traffic: the step waits for a block nobody mines.
    scheduler = AnchorScheduler(
        registry.log,
        contract,
        _settings(anchor_confirmations=2, anchor_confirmation_timeout_seconds=2),
    )
    _append(registry.log, 5)
    nonce_before = chain.w3.eth.get_transaction_count(chain.account.address)
    outcome = scheduler.run_once()
    assert outcome.result is StepResult.FAILED and "confirmations" in (outcome.error or "")
    anvil_node.stop()
    anvil_node.start()
    anvil_node.call("evm_mine")
    resumed = scheduler.run_once(force=True)
    assert resumed.result is StepResult.ANCHORED and resumed.record is not None
    assert resumed.record.size == 5
    # One anchor transaction in all: the nonce moved by exactly one.
    assert chain.w3.eth.get_transaction_count(chain.account.address) == nonce_before + 1
    _assert_chain_holds_records(registry.log, contract)


def test_reorganised_anchor_is_detected_and_anchored_again(
    anvil_node: AnvilNode, registry: Registry
) -> None:
    chain, contract = _deploy(anvil_node)
    scheduler = AnchorScheduler(registry.log, contract, _settings())
    _append(registry.log, 5)
    assert scheduler.run_once().result is StepResult.ANCHORED
    snapshot = anvil_node.call("evm_snapshot")
    _append(registry.log, 5)
    lost = scheduler.run_once()
    assert lost.record is not None and lost.record.size == 10
    # The block holding the size-10 anchor leaves the chain, as in a reorganisation.
    assert anvil_node.call("evm_revert", snapshot) is True
    log_id = log_id_for_origin(ORIGIN)
    assert contract.latest(log_id).size == 5

    again = scheduler.run_once()
    assert again.dropped_records == 1
    assert again.result is StepResult.ANCHORED and again.record is not None
    # Sent again: the same signed bytes may come back (same nonce, data and fee), but this
    # time they are mined, and the chain holds size 10 once more.
    assert again.record.size == 10
    assert contract.latest(log_id).size == 10
    assert [r.size for r in anchor_records(registry.log.database)] == [10, 5]
    _assert_chain_holds_records(registry.log, contract)
    # The nonce counter was re-read after the reorganisation, so later anchors still go out.
    _append(registry.log, 5)
    assert scheduler.run_once().result is StepResult.ANCHORED
    assert chain.w3.eth.get_transaction_count(chain.account.address, "pending") == (
        chain.w3.eth.get_transaction_count(chain.account.address, "latest")
    )


def test_reorganisation_during_the_confirmation_wait_is_anchored_again(
    anvil_node: AnvilNode,
    registry: Registry,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.WARNING, logger="attestation.anchoring.scheduler")
    _, contract = _deploy(anvil_node)
    scheduler = AnchorScheduler(registry.log, contract, _settings(anchor_confirmations=3))
    # Revert exactly while the scheduler waits for confirmations of its mined transaction.
    waiting = threading.Event()
    original_wait = scheduler_module.wait_for_confirmations

    def observed_wait(*args: Any) -> None:
        waiting.set()
        original_wait(*args)

    monkeypatch.setattr(scheduler_module, "wait_for_confirmations", observed_wait)
    _append(registry.log, 5)
    snapshot = anvil_node.call("evm_snapshot")
    results: list[StepOutcome] = []
    worker = threading.Thread(target=lambda: results.append(scheduler.run_once()))
    worker.start()
    log_id = log_id_for_origin(ORIGIN)
    assert waiting.wait(20), "the scheduler never reached the confirmation wait"
    assert contract.latest(log_id).size == 5, "mined: one block of three"
    anvil_node.call("evm_revert", snapshot)  # the anchor is gone before its 3 confirmations
    assert contract.latest(log_id).size == 0
    # Keep producing blocks until the scheduler has re-sent and confirmed its anchor.
    while worker.is_alive():
        anvil_node.call("evm_mine")
        time.sleep(0.05)
    worker.join()
    (outcome,) = results
    assert outcome.result is StepResult.ANCHORED and outcome.record is not None, outcome
    assert contract.latest(log_id).size == 5
    # It saw its transaction leave the chain before recording anything, and sent it again.
    assert any("is no longer in block" in message for message in caplog.messages), caplog.messages
    assert [r.size for r in anchor_records(registry.log.database)] == [5]
    _assert_chain_holds_records(registry.log, contract)


def test_two_anchors_in_flight_never_share_a_nonce(anvil_node: AnvilNode, tmp_path: Path) -> None:
    """Two logs anchored through one key at the same moment; nothing is mined until both
    transactions are in the pool, so the second nonce can only come from the local counter."""
    chain, contract = _deploy(anvil_node)
    registries = [_registry(tmp_path / f"log{i}", f"{ORIGIN}/{i}") for i in range(2)]
    try:
        for registry in registries:
            _append(registry.log, 5)
        schedulers = [AnchorScheduler(r.log, contract, _settings()) for r in registries]
        start_nonce = chain.w3.eth.get_transaction_count(chain.account.address)
        anvil_node.call("evm_setAutomine", False)
        results: list[StepOutcome] = []
        workers = [
            threading.Thread(target=lambda s=s: results.append(s.run_once())) for s in schedulers
        ]
        for worker in workers:
            worker.start()
        _wait_until(
            lambda: (
                chain.w3.eth.get_transaction_count(chain.account.address, "pending")
                == start_nonce + 2
            ),
            what="both anchor transactions in the pool",
        )
        anvil_node.call("evm_mine")
        for worker in workers:
            worker.join(30)
        assert [o.result for o in results] == [StepResult.ANCHORED] * 2, results
        nonces = sorted(
            chain.w3.eth.get_transaction(HexBytes(o.record.tx_hash))["nonce"]
            for o in results
            if o.record
        )
        assert nonces == [start_nonce, start_nonce + 1]
        for registry in registries:
            _assert_chain_holds_records(registry.log, contract)
    finally:
        for registry in registries:
            registry.close()


def test_stuck_transaction_is_replaced_with_same_nonce_and_higher_fee(
    anvil_node: AnvilNode, registry: Registry
) -> None:
    chain, contract = _deploy(anvil_node)
    scheduler = AnchorScheduler(
        registry.log, contract, _settings(anchor_tx_timeout_seconds=0.5, anchor_fee_bump_percent=25)
    )
    _append(registry.log, 5)
    start_nonce = chain.w3.eth.get_transaction_count(chain.account.address)
    anvil_node.call("evm_setAutomine", False)
    results: list[StepOutcome] = []
    worker = threading.Thread(target=lambda: results.append(scheduler.run_once()))
    worker.start()

    def pool() -> list[dict[str, Any]]:
        content = anvil_node.call("txpool_content")["pending"]
        return [tx for by_nonce in content.values() for tx in by_nonce.values()]

    _wait_until(lambda: bool(pool()), what="the first anchor in the pool")
    original = pool()[0]
    # Not mined for longer than the timeout: the scheduler must replace it.
    _wait_until(lambda: pool() and pool()[0]["hash"] != original["hash"], what="the replacement")
    replacement = pool()[0]
    assert len(pool()) == 1, "the node keeps one transaction per nonce"
    anvil_node.call("evm_mine")
    worker.join(30)
    (outcome,) = results
    assert outcome.result is StepResult.ANCHORED and outcome.record is not None
    assert outcome.replacements >= 1
    mined = chain.w3.eth.get_transaction(HexBytes(outcome.record.tx_hash))
    assert mined["nonce"] == start_nonce == int(original["nonce"], 16)
    assert mined["maxFeePerGas"] > int(original["maxFeePerGas"], 16)
    assert int(replacement["maxFeePerGas"], 16) >= int(original["maxFeePerGas"], 16) * 125 // 100
    assert outcome.record.tx_hash != HexBytes(original["hash"])
    # The original was never mined.
    assert chain.w3.eth.get_transaction_count(chain.account.address) == start_nonce + 1
    _assert_chain_holds_records(registry.log, contract)


def test_dropped_transaction_is_sent_again(anvil_node: AnvilNode, registry: Registry) -> None:
    _, contract = _deploy(anvil_node)
    scheduler = AnchorScheduler(registry.log, contract, _settings(anchor_tx_timeout_seconds=60))
    _append(registry.log, 5)
    anvil_node.call("evm_setAutomine", False)
    results: list[StepOutcome] = []
    worker = threading.Thread(target=lambda: results.append(scheduler.run_once()))
    worker.start()

    def pooled() -> list[str]:
        content = anvil_node.call("txpool_content")["pending"]
        return [tx["hash"] for by_nonce in content.values() for tx in by_nonce.values()]

    _wait_until(lambda: bool(pooled()), what="the anchor in the pool")
    (first,) = pooled()
    anvil_node.call("anvil_dropTransaction", first)  # the node forgets it
    _wait_until(lambda: bool(pooled()) and pooled()[0] != first, what="the re-sent anchor")
    anvil_node.call("evm_mine")
    worker.join(30)
    (outcome,) = results
    assert outcome.result is StepResult.ANCHORED and outcome.record is not None
    assert outcome.record.tx_hash != HexBytes(first)
    _assert_chain_holds_records(registry.log, contract)


def test_fee_increases_stop_at_the_cap_and_the_transaction_is_still_recorded(
    anvil_node: AnvilNode, registry: Registry
) -> None:
    chain, contract = _deploy(anvil_node)
    scheduler = AnchorScheduler(
        registry.log,
        contract,
        _settings(anchor_tx_timeout_seconds=0.3, anchor_max_replacements=1),
    )
    _append(registry.log, 5)
    anvil_node.call("evm_setAutomine", False)
    capped = scheduler.run_once()
    assert capped.result is StepResult.FAILED and capped.replacements == 1
    assert "not mined after 1 fee increases" in (capped.error or "")
    assert anchor_records(registry.log.database) == []
    anvil_node.call("evm_mine")
    # The next step finds the (once replaced) transaction mined and records it; no new one.
    resumed = scheduler.run_once(force=True)
    assert resumed.result is StepResult.ANCHORED and resumed.record is not None
    assert resumed.replacements == 0
    assert chain.w3.eth.get_transaction_count(chain.account.address) == 1  # the one anchor
    _assert_chain_holds_records(registry.log, contract)
