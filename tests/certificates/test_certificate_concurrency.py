"""Races on certificates: real threads, each with its own registry (own connection pool),
released together by a barrier. PostgreSQL is the production backend; the retirement and
issuance races also run on the embedded SQLite file (WAL), its writer lock being the
other serialisation path.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
from certificate_invariant_support import (
    certificate_rows,
    check_all,
    device_hours,
    expected_production,
    keyed_scenario,
    log_entries,
    run_together,
)
from certificate_support import Scenario, issue_all
from meter_support import T0

from ledger.certificates.issuance import IssuanceResult, issue_certificates
from ledger.certificates.lifecycle import (
    LifecycleResult,
    RetirementRequest,
    retire_certificate,
    split_certificate,
    transfer_certificate,
)
from ledger.certificates.rules import (
    HOUR,
    CertificateStatus,
    NotOwnedError,
    RetirementPurpose,
    RuleViolationError,
)
from ledger.meters.entries import GridRegion
from ledger.registry import Registry, initialise_registry, open_registry
from ledger.settings import LedgerSettings

RETIREMENT_RACERS = 50


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_backend(request: pytest.FixtureRequest, tmp_path: Path) -> LedgerSettings:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'data' / 'carbonledger.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    return LedgerSettings(data_dir=tmp_path / "data", database_url=url)


@pytest.fixture
def postgres_only(postgres_url: str, tmp_path: Path) -> LedgerSettings:
    return LedgerSettings(data_dir=tmp_path / "data", database_url=postgres_url)


@pytest.fixture
def main_registry(any_backend: LedgerSettings) -> Iterator[Registry]:
    registry = initialise_registry(any_backend)
    try:
        yield registry
    finally:
        registry.close()


def _workers(settings: LedgerSettings, count: int) -> list[Registry]:
    """`count` registries on the same database; their issuer identity is loaded up front so
    the race is about the certificate, not about reading the key file."""
    registries = [open_registry(settings, migrate=False) for _ in range(count)]
    for registry in registries:
        registry.issuer()
    return registries


def _close(registries: list[Registry]) -> None:
    for registry in registries:
        registry.close()


def _request(scenario: Scenario) -> RetirementRequest:
    return RetirementRequest(
        beneficiary_id=scenario.buyer,
        purpose=RetirementPurpose.SCOPE2_MARKET_BASED,
        period_start=T0,
        period_end=T0 + 365 * 86_400,
        province="CN-SH",
        grid_region=GridRegion.EAST,
    )


def test_fifty_concurrent_retirements_of_one_certificate_exactly_one_wins(
    main_registry: Registry,
) -> None:
    registry = main_registry
    scenario = keyed_scenario(registry, hours=12)[0]
    target = max(issue_all(registry, scenario, hours=12).issued, key=lambda item: item.volume_wh)
    size_before = registry.log.head().size
    workers = _workers(registry.settings, RETIREMENT_RACERS)
    try:
        outcomes = run_together(
            partial(
                retire_certificate,
                worker.log,
                worker.issuer(),
                organisation_id=scenario.producer,
                certificate_id=target.certificate_id,
                request=_request(scenario),
            )
            for worker in workers
        )
    finally:
        _close(workers)

    winners = [item for item in outcomes if isinstance(item, LifecycleResult)]
    losers = [item for item in outcomes if not isinstance(item, LifecycleResult)]
    assert len(winners) == 1, losers[:3]
    assert winners[0].certificate.certificate_id == target.certificate_id
    assert winners[0].certificate.status is CertificateStatus.RETIRED
    assert len(losers) == RETIREMENT_RACERS - 1
    assert all(
        isinstance(item, RuleViolationError) and item.rule == "retired-is-final" for item in losers
    ), {repr(item) for item in losers}
    # Exactly one statement, and the refused 49 left nothing behind in the log.
    assert registry.log.head().size == size_before + 1
    retired = [
        entry
        for _, entry in log_entries(registry)
        if entry["kind"] == "certificate.retired/1"
        and entry["certificate"] == target.certificate_id
    ]
    assert len(retired) == 1
    assert retired[0]["beneficiary"] == scenario.buyer
    rows = check_all(registry)
    assert rows[target.certificate_id].status == CertificateStatus.RETIRED.value


def test_concurrent_issuance_of_overlapping_hours_never_exceeds_metered(
    main_registry: Registry,
) -> None:
    registry = main_registry
    scenario, stream = keyed_scenario(registry, hours=24)
    day1 = registry.log.head().size
    # Day 2 arrives in two batches at 45-minute steps, so the hour that holds the break
    # (07:00-08:00) is metered partly under the first anchor and fully under the second.
    partial_day2 = stream.add(10, 2700)
    full = stream.add(22, 2700)
    assert stream.last_time == T0 + 48 * HOUR
    plans = [
        (0, 48, full),
        (24, 32, partial_day2),
        (30, 48, full),
        (6, 31, day1),
        (0, 48, partial_day2),
        (20, 40, full),
        (31, 32, partial_day2),
        (31, 32, full),
    ]
    workers = _workers(registry.settings, len(plans))
    try:
        outcomes = run_together(
            partial(
                issue_certificates,
                worker.log,
                worker.issuer(),
                organisation_id=scenario.producer,
                device_id=scenario.device,
                account_id=scenario.producer_account,
                start=T0 + first * HOUR,
                end=T0 + last * HOUR,
                anchored_size=anchored,
                validity_months=12,
            )
            for worker, (first, last, anchored) in zip(workers, plans, strict=True)
        )
    finally:
        _close(workers)

    assert all(isinstance(item, IssuanceResult) for item in outcomes), outcomes
    expected = expected_production(stream.times, T0, T0 + 48 * HOUR)
    assert T0 + 31 * HOUR in expected, "the hour with the anchor break has production"
    hours = device_hours(registry, scenario.device)
    assert {hour: issued for (_, hour), (_, issued) in hours.items()} == expected
    assert {hour: metered for (_, hour), (metered, _) in hours.items()} == expected
    rows = check_all(registry, scenario.device)
    assert sum(row.volume for row in rows.values()) == sum(expected.values())
    assert sum(item.issued_wh for item in outcomes) == sum(expected.values())


def test_issuance_racing_arriving_readings_never_over_issues(main_registry: Registry) -> None:
    """Readings keep arriving while workers issue with whatever size they last saw, so some
    issue with a stale (smaller) anchored size after others issued with a larger one."""
    registry = main_registry
    scenario, stream = keyed_scenario(registry, hours=6)
    workers = _workers(registry.settings, 4)

    def arrive() -> int:
        for _ in range(12):
            stream.add(4, 2700)  # three hours at a time, the hour boundaries cut mid-segment
        return stream.last_time

    def issue(worker: Registry) -> list[IssuanceResult]:
        return [
            issue_certificates(
                worker.log,
                worker.issuer(),
                organisation_id=scenario.producer,
                device_id=scenario.device,
                account_id=scenario.producer_account,
                start=T0,
                end=T0 + 48 * HOUR,
                anchored_size=worker.log.head().size,
                validity_months=12,
            )
            for _ in range(6)
        ]

    try:
        outcomes = run_together([arrive, *(partial(issue, worker) for worker in workers)])
    finally:
        _close(workers)
    assert outcomes[0] == T0 + 42 * HOUR, outcomes[0]
    assert all(isinstance(item, list) for item in outcomes[1:]), outcomes
    check_all(registry, scenario.device)

    issue_all(registry, scenario, hours=48)  # whatever the race left over
    expected = expected_production(stream.times, T0, T0 + 48 * HOUR)
    hours = device_hours(registry, scenario.device)
    assert {hour: (metered, issued) for (_, hour), (metered, issued) in hours.items()} == {
        hour: (wh, wh) for hour, wh in expected.items()
    }
    check_all(registry, scenario.device)


def _holder_active(registry: Registry, account: str, device: str) -> list[str]:
    return sorted(
        row.id
        for row in certificate_rows(registry, device).values()
        if row.account_id == account and row.status == CertificateStatus.ACTIVE.value
    )


@pytest.mark.postgres
def test_concurrent_split_and_transfer_of_one_certificate_one_wins(
    postgres_only: LedgerSettings,
) -> None:
    registry = initialise_registry(postgres_only)
    try:
        scenario = keyed_scenario(registry, hours=12)[0]
        target = max(issue_all(registry, scenario, hours=12).issued, key=lambda c: c.volume_wh)
        volume = target.volume_wh
        size_before = registry.log.head().size
        workers = _workers(registry.settings, 30)
        owner, certificate = scenario.producer, target.certificate_id
        jobs: list[Callable[[], object]] = []
        for number, worker in enumerate(workers):
            log, issuer = worker.log, worker.issuer()
            # A third each: split in two, transfer whole, transfer a part (split + transfer).
            if number % 3 == 0:
                jobs.append(
                    partial(
                        split_certificate,
                        log,
                        issuer,
                        organisation_id=owner,
                        certificate_id=certificate,
                        volumes=[1 + number, volume - 1 - number],
                    )
                )
            else:
                jobs.append(
                    partial(
                        transfer_certificate,
                        log,
                        issuer,
                        organisation_id=owner,
                        certificate_id=certificate,
                        to_account=scenario.buyer_account,
                        volume_wh=None if number % 3 == 1 else number,
                    )
                )
        try:
            outcomes = run_together(jobs)
        finally:
            _close(workers)
        winners = [item for item in outcomes if not isinstance(item, BaseException)]
        losers = [item for item in outcomes if isinstance(item, BaseException)]
        assert len(winners) == 1, losers[:3]
        # Whoever lost found the certificate split (rule) or held by the buyer (ownership).
        assert all(
            (isinstance(item, RuleViolationError) and item.rule == "split-holds-nothing")
            or isinstance(item, NotOwnedError)
            for item in losers
        ), {repr(item) for item in losers}
        rows = check_all(registry, scenario.device)
        moved = rows[target.certificate_id]
        if isinstance(winners[0], LifecycleResult) and winners[0].remainder is None:
            assert moved.account_id == scenario.buyer_account  # a whole transfer
            assert registry.log.head().size == size_before + 1
        else:
            # A split (3 entries: split + 2 credentials), maybe with a transfer (4 entries).
            assert moved.status == CertificateStatus.SPLIT.value
            assert registry.log.head().size - size_before in (3, 4)
    finally:
        registry.close()


@pytest.mark.postgres
def test_concurrent_splits_and_transfers_keep_ranges_disjoint(
    postgres_only: LedgerSettings,
) -> None:
    """Many workers keep splitting and moving whatever the producer still holds."""
    registry = initialise_registry(postgres_only)
    try:
        scenario = keyed_scenario(registry, hours=24)[0]
        issued = issue_all(registry, scenario).issued
        hour_count = len(issued)
        workers = _workers(registry.settings, 12)

        def churn(worker: Registry, seed: int) -> dict[str, int]:
            rng = random.Random(seed)
            counts = {"transferred": 0, "split": 0, "refused": 0}
            for _ in range(8):
                held = _holder_active(worker, scenario.producer_account, scenario.device)
                if not held:
                    break
                # Few candidates, so the workers collide on the same certificates.
                certificate = rng.choice(held[: max(2, hour_count // 4)])
                try:
                    if rng.random() < 0.5:
                        counts["split"] += _split_in_two(worker, scenario, certificate, rng)
                    else:
                        transfer_certificate(
                            worker.log,
                            worker.issuer(),
                            organisation_id=scenario.producer,
                            certificate_id=certificate,
                            to_account=scenario.buyer_account,
                            volume_wh=None if rng.random() < 0.5 else 1,
                        )
                        counts["transferred"] += 1
                except (RuleViolationError, NotOwnedError):
                    counts["refused"] += 1
            return counts

        try:
            outcomes = run_together(
                partial(churn, worker, seed) for seed, worker in enumerate(workers)
            )
        finally:
            _close(workers)
        assert all(isinstance(item, dict) for item in outcomes), outcomes
        transferred = sum(item["transferred"] for item in outcomes)
        splits = sum(item["split"] for item in outcomes)
        assert transferred + splits > 0
        rows = check_all(registry, scenario.device)
        entries = [entry for _, entry in log_entries(registry)]
        assert sum(e["kind"] == "certificate.transferred/1" for e in entries) == transferred
        split_rows = [row for row in rows.values() if row.status == CertificateStatus.SPLIT.value]
        assert sum(e["kind"] == "certificate.split/1" for e in entries) == len(split_rows)
        bought = sum(
            row.volume
            for row in rows.values()
            if row.account_id == scenario.buyer_account
            and row.status != CertificateStatus.SPLIT.value
        )
        kept = sum(
            row.volume
            for row in rows.values()
            if row.account_id == scenario.producer_account
            and row.status != CertificateStatus.SPLIT.value
        )
        assert bought + kept == sum(item.volume_wh for item in issued)
    finally:
        registry.close()


def _split_in_two(
    worker: Registry, scenario: Scenario, certificate: str, rng: random.Random
) -> bool:
    row = certificate_rows(worker, scenario.device)[certificate]
    if row.volume < 2:
        return False
    first = rng.randint(1, row.volume - 1)
    split_certificate(
        worker.log,
        worker.issuer(),
        organisation_id=scenario.producer,
        certificate_id=certificate,
        volumes=[first, row.volume - first],
    )
    return True
