"""When the next anchor is due: the rule (pure, table-driven), the scheduler's view of it, the
forecast `serve` gives callers, the interval defaults per chain, and a loop that wakes when
an anchor falls due instead of a tick later."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from metered_log_support import MeteredLog
from pydantic import ValidationError

from attestation.anchoring.anchor import anchor_records
from attestation.anchoring.due import AnchorDue, AnchorForecast, anchor_due
from attestation.anchoring.scheduler import (
    EMBEDDED_INTERVAL_SECONDS,
    JSON_RPC_INTERVAL_SECONDS,
    AnchorScheduler,
    AnchorService,
    AnchorSettings,
    StepResult,
)
from attestation.chain.client import ChainBackend, ChainSettings
from attestation.chain.deployment import resolve_contract
from attestation.chain.embedded import open_embedded_chain

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.mark.parametrize(
    ("log_size", "anchored_size", "anchored_at", "expected"),
    [
        # Nothing new: no anchor is due, however long ago the last one was.
        (10, 10, NOW - timedelta(days=1), None),
        (0, 0, None, None),
        # Never anchored: due as soon as there is an entry.
        (1, 0, None, AnchorDue(1, NOW)),
        # Fewer than N new, T not reached: due T after the last anchor.
        (12, 10, NOW - 20 * timedelta(seconds=1), AnchorDue(2, NOW + 40 * timedelta(seconds=1))),
        # T passed long ago: due now (not in the past).
        (12, 10, NOW - 10 * MINUTE, AnchorDue(2, NOW)),
        # N reached: due now, whatever T says.
        (15, 10, NOW, AnchorDue(5, NOW)),
        (16, 10, NOW - timedelta(seconds=1), AnchorDue(6, NOW)),
    ],
)
def test_anchor_due_rule(
    log_size: int, anchored_size: int, anchored_at: datetime | None, expected: AnchorDue | None
) -> None:
    due = anchor_due(
        log_size=log_size,
        anchored_size=anchored_size,
        anchored_at=anchored_at,
        every_entries=5,
        interval=MINUTE,
        now=NOW,
    )
    assert due == expected


@pytest.mark.parametrize(
    ("attempt_in", "seconds"), [(0.0, 1), (0.2, 1), (4.0, 4), (4.01, 5), (-30.0, 1), (600.0, 600)]
)
def test_retry_after_rounds_up_and_is_never_zero(attempt_in: float, seconds: int) -> None:
    forecast = AnchorForecast(NOW + timedelta(seconds=attempt_in), 3, retrying=False)
    assert forecast.seconds_until(NOW) == seconds


def test_interval_defaults_per_chain_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ENABLED", "INTERVAL_SECONDS", "EVERY_ENTRIES"):
        monkeypatch.delenv(f"CARBONLEDGER_ANCHOR_{name}", raising=False)
    settings = AnchorSettings()
    # Seconds on the free embedded chain, the conservative production default on JSON-RPC.
    assert (
        settings.interval(ChainBackend.EMBEDDED)
        == timedelta(seconds=5)
        == timedelta(seconds=EMBEDDED_INTERVAL_SECONDS)
    )
    assert (
        settings.interval(ChainBackend.JSON_RPC)
        == timedelta(seconds=600)
        == timedelta(seconds=JSON_RPC_INTERVAL_SECONDS)
    )
    assert settings.anchor_every_entries == 1000
    # The short embedded default never switches anchoring on for a JSON-RPC chain.
    assert not settings.scheduler_enabled(ChainBackend.JSON_RPC)
    monkeypatch.setenv("CARBONLEDGER_ANCHOR_INTERVAL_SECONDS", "90")
    configured = AnchorSettings()
    for backend in ChainBackend:
        assert configured.interval(backend) == timedelta(seconds=90)
    assert configured.scheduler_enabled(ChainBackend.JSON_RPC)
    for bad in ("0", "-5", "soon"):
        monkeypatch.setenv("CARBONLEDGER_ANCHOR_INTERVAL_SECONDS", bad)
        with pytest.raises(ValidationError, match="anchor_interval_seconds"):
            AnchorSettings()


class FakeClock:
    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment


def test_scheduler_due_follows_its_records(metered: MeteredLog, tmp_path: Path) -> None:
    chain = open_embedded_chain(tmp_path / "chain")
    try:
        contract = resolve_contract(chain, ChainSettings(), tmp_path / "chain")
        clock = FakeClock(datetime.now(UTC))
        settings = AnchorSettings(anchor_every_entries=5)  # T unset: the embedded 5 s
        scheduler = AnchorScheduler(metered.registry.log, contract, settings, now=clock)
        log_size = metered.registry.log.head().size
        assert scheduler.due() == AnchorDue(log_size, clock.moment), "never anchored: due now"

        first = scheduler.run_once()
        assert first.result is StepResult.ANCHORED and first.record is not None
        assert scheduler.due() is None, "all anchored"
        clock.moment = first.record.anchored_at + timedelta(seconds=1)
        metered.add_readings(2)
        due = scheduler.due()
        assert due == AnchorDue(2, first.record.anchored_at + timedelta(seconds=5))
        assert scheduler.run_once().result is StepResult.NOT_DUE  # the rule the step uses
        clock.moment = due.due_at
        assert scheduler.run_once().result is StepResult.ANCHORED
        assert scheduler.backoff_until() is None
    finally:
        chain.close()


def _wait(condition: object, what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_service_forecast_and_a_loop_that_wakes_when_the_anchor_is_due(
    metered: MeteredLog, tmp_path: Path
) -> None:
    data_dir = tmp_path / "node"
    # One anchor recorded before the service starts, then new readings: pending, not due.
    chain = open_embedded_chain(data_dir)
    try:
        contract = resolve_contract(chain, ChainSettings(), data_dir)
        first = AnchorScheduler(metered.registry.log, contract, AnchorSettings()).run_once()
        assert first.record is not None
    finally:
        chain.close()
    metered.add_readings(3)
    # A tick far longer than T: only waking at the due time anchors within the test.
    settings = AnchorSettings(
        anchor_interval_seconds=5, anchor_every_entries=10**6, anchor_tick_seconds=120
    )
    service = AnchorService.start(metered.registry.log, data_dir, ChainSettings(), settings)
    assert service is not None
    try:
        _wait(lambda: service.scheduler is not None, "the service to connect")
        forecast = service.forecast()
        # (Checked only while still pending: connecting may outlast T on a loaded machine.)
        if len(anchor_records(metered.registry.database)) == 1:
            assert forecast is not None and forecast.pending_entries == 3
            assert forecast.retrying is False
            due_at = first.record.anchored_at + timedelta(seconds=5)
            assert due_at <= forecast.attempt_at <= due_at + timedelta(seconds=1)
        _wait(lambda: len(anchor_records(metered.registry.database)) == 2, "the due anchor", 15)
        second = anchor_records(metered.registry.database)[0]
        assert second.size == metered.registry.log.head().size
        assert second.anchored_at - first.record.anchored_at < timedelta(seconds=60)
        _wait(lambda: service.forecast() is None, "nothing left to wait for")
        # Entries arriving while the loop sleeps its tick wait for the tick: the forecast
        # says so, rather than the rule's due time 5 s after the anchor.
        metered.add_readings(1)
        now = datetime.now(UTC)
        later = service.forecast(now)
        assert later is not None and later.pending_entries == 1
        assert 100 <= later.seconds_until(now) <= 121
    finally:
        service.close()


def test_forecast_of_a_service_that_cannot_reach_its_chain(
    metered: MeteredLog, tmp_path: Path
) -> None:
    chain_settings = ChainSettings(
        chain_rpc="http://127.0.0.1:9",  # discard port: connection refused
        chain_anchorer_key="0x" + "11" * 32,
        chain_contract="0x" + "22" * 20,
    )
    settings = AnchorSettings(
        anchor_enabled=True, anchor_retry_initial_seconds=30, anchor_tick_seconds=0.05
    )
    service = AnchorService.start(metered.registry.log, tmp_path, chain_settings, settings)
    assert service is not None
    try:
        _wait(lambda: service.last_error is not None, "the first connection attempt")
        now = datetime.now(UTC)
        forecast = service.forecast(now)
        assert forecast is not None
        # Not connected: the anchored size on that chain is unknown, and it says so.
        assert forecast.pending_entries is None and forecast.retrying
        assert 25 <= forecast.seconds_until(now) <= 30  # the backoff, not a made-up time
    finally:
        service.close()
