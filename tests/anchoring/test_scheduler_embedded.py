"""The scheduler on the embedded chain: when an anchor is due (N entries or T seconds), the
background service of `serve`, and a restart that keeps every earlier anchor verifiable."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from metered_log_support import MeteredLog

from attestation.anchoring.anchor import anchor_records
from attestation.anchoring.scheduler import (
    AnchorScheduler,
    AnchorService,
    AnchorSettings,
    StepResult,
)
from attestation.bundles.build import build_bundle
from attestation.bundles.chain_reader import ChainAnchorReader
from attestation.bundles.verify import verify_bundle
from attestation.chain.client import ChainBackend, ChainSettings
from attestation.chain.deployment import recorded_deployments, resolve_contract
from attestation.chain.embedded import open_embedded_chain
from attestation.chain.errors import ChainError


class FakeClock:
    def __init__(self) -> None:
        self.moment = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


def test_anchor_is_due_after_n_entries_or_t_seconds(metered: MeteredLog, tmp_path: Path) -> None:
    chain = open_embedded_chain(tmp_path / "chain")
    try:
        contract = resolve_contract(chain, ChainSettings(), tmp_path / "chain")
        clock = FakeClock()
        settings = AnchorSettings(anchor_every_entries=5, anchor_interval_seconds=60)
        scheduler = AnchorScheduler(metered.registry.log, contract, settings, now=clock)

        # Never anchored: the first entry is enough.
        first = scheduler.run_once()
        assert first.result is StepResult.ANCHORED and first.record is not None
        assert first.record.size == metered.registry.log.head().size == 5  # meter, key, 3 readings
        assert scheduler.run_once().result is StepResult.NOT_DUE, "nothing new"
        clock.moment = first.record.anchored_at  # T counts from the recorded anchor time

        metered.add_readings(4)  # 4 < N, and no time has passed
        assert scheduler.run_once().result is StepResult.NOT_DUE
        clock.advance(59)
        assert scheduler.run_once().result is StepResult.NOT_DUE
        clock.advance(1)  # T reached, with entries waiting
        by_time = scheduler.run_once()
        assert by_time.result is StepResult.ANCHORED and by_time.record is not None
        assert by_time.record.size == 9

        metered.add_readings(5)  # N reached at once, long before T
        by_count = scheduler.run_once()
        assert by_count.result is StepResult.ANCHORED and by_count.record is not None
        assert by_count.record.size == 14

        metered.add_readings(1)
        forced = scheduler.run_once(force=True)  # `carbonledger anchor now`
        assert forced.result is StepResult.ANCHORED and forced.record is not None
        assert forced.record.size == 15
        assert scheduler.run_once(force=True).result is StepResult.UP_TO_DATE
        assert [r.size for r in anchor_records(metered.registry.database)] == [15, 14, 9, 5]
    finally:
        chain.close()


def test_restart_keeps_earlier_anchors_verifiable(metered: MeteredLog, tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    settings = AnchorSettings(anchor_every_entries=1)
    chain = open_embedded_chain(data_dir)
    try:
        contract = resolve_contract(chain, ChainSettings(), data_dir)
        address = contract.address
        scheduler = AnchorScheduler(metered.registry.log, contract, settings)
        sizes = []
        for _ in range(3):
            outcome = scheduler.run_once()
            assert outcome.record is not None
            sizes.append(outcome.record.size)
            metered.add_readings(2)
        first_bundle = build_bundle(
            metered.registry.log, metered.registry.signer, [metered.readings[0]]
        )
    finally:
        chain.close()  # the service stops: the py-evm state in memory is gone

    chain = open_embedded_chain(data_dir)  # reopened from its state file
    try:
        contract = resolve_contract(chain, ChainSettings(), data_dir)
        assert contract.address == address == recorded_deployments(data_dir)[chain.chain_id].address
        log_id = anchor_records(metered.registry.database)[0].log_id
        for record in anchor_records(metered.registry.database):
            assert contract.root_at(log_id, record.size) == record.root
        reader = ChainAnchorReader(chain.w3)
        key = metered.registry.signer.verifier
        # A bundle handed out before the restart still verifies against the replayed chain.
        report = verify_bundle(first_bundle, anchor_reader=reader, log_verifier_key=key)
        assert report.ok, report.failures
        assert report.check("chain") is not None
        # And anchoring carries on from the anchored head, with a consistency proof.
        scheduler = AnchorScheduler(metered.registry.log, contract, settings)
        resumed = scheduler.run_once()
        assert (
            resumed.record is not None and resumed.record.size == metered.registry.log.head().size
        )
        assert [r.size for r in anchor_records(metered.registry.database)] == [
            resumed.record.size,
            *reversed(sizes),
        ]
        newest = build_bundle(metered.registry.log, metered.registry.signer, metered.readings[-2:])
        assert newest.anchor.size == resumed.record.size
        assert verify_bundle(newest, anchor_reader=reader, log_verifier_key=key).ok
    finally:
        chain.close()


def test_service_anchors_in_the_background_and_stops(metered: MeteredLog, tmp_path: Path) -> None:
    settings = AnchorSettings(anchor_every_entries=2, anchor_tick_seconds=0.05)
    data_dir = tmp_path / "service"
    service = AnchorService.start(metered.registry.log, data_dir, ChainSettings(), settings)
    assert service is not None
    try:
        deadline = time.monotonic() + 20
        while not anchor_records(metered.registry.database):
            assert time.monotonic() < deadline, service.last_error
            time.sleep(0.05)
        metered.add_readings(2)
        while anchor_records(metered.registry.database)[0].size < 7:
            assert time.monotonic() < deadline, service.last_error
            time.sleep(0.05)
    finally:
        service.close()
    assert not service.running
    # The writer lock is released on close: the chain opens again in this process.
    reopened = open_embedded_chain(data_dir)
    reopened.close()


def test_scheduler_switch_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ENABLED", "INTERVAL_SECONDS", "EVERY_ENTRIES"):
        monkeypatch.delenv(f"CARBONLEDGER_ANCHOR_{name}", raising=False)
    assert AnchorSettings().scheduler_enabled(ChainBackend.EMBEDDED)
    # On a JSON-RPC chain anchoring spends fees: only an explicit schedule turns it on.
    assert not AnchorSettings().scheduler_enabled(ChainBackend.JSON_RPC)
    monkeypatch.setenv("CARBONLEDGER_ANCHOR_INTERVAL_SECONDS", "300")
    assert AnchorSettings().scheduler_enabled(ChainBackend.JSON_RPC)
    monkeypatch.setenv("CARBONLEDGER_ANCHOR_ENABLED", "false")
    assert not AnchorSettings().scheduler_enabled(ChainBackend.EMBEDDED)
    assert not AnchorSettings().scheduler_enabled(ChainBackend.JSON_RPC)


def test_json_rpc_service_without_contract_refuses_to_start(
    metered: MeteredLog, tmp_path: Path
) -> None:
    chain_settings = ChainSettings(
        chain_rpc="http://127.0.0.1:9", chain_anchorer_key="0x" + "11" * 32
    )
    with pytest.raises(ChainError, match="carbonledger chain deploy"):
        AnchorService.start(
            metered.registry.log,
            tmp_path,
            chain_settings,
            AnchorSettings(anchor_enabled=True),
        )
