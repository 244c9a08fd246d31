"""`matching_report` against a real registry (SQLite and PostgreSQL): what counts and what not."""

from __future__ import annotations

from decimal import Decimal

import pytest
from matching_support import (
    HOUR,
    START,
    consumption_meter,
    organisation,
    retired_certificate,
)
from meter_support import add_meter, generation_spec

from ledger.certificates.matching import (
    MAX_METER_HOURS,
    MatchingRequestError,
    UnknownOrganisationError,
    hourly_consumption,
    hourly_supply,
    matching_report,
)
from ledger.factors.grid import packaged_factor_table
from ledger.meters.entries import GridRegion, MeterRole
from ledger.registry import Registry

EAST, SOUTH = GridRegion.EAST, GridRegion.SOUTH


def test_report_from_readings_and_retirements(registry: Registry) -> None:
    buyer = organisation(registry, "Buyer Co")
    producer = organisation(registry, "Solar Farm Co")
    other = organisation(registry, "Someone Else")
    consumption_meter(registry, buyer, "load-east", EAST, [10_000, 4_000, 0, 1_000])
    consumption_meter(
        registry, buyer, "site-south", SOUTH, [2_000, 0, 6_000, 0], role=MeterRole.BIDIRECTIONAL
    )
    # Neither a generation meter of the buyer nor another organisation's load counts.
    add_meter(registry, buyer, generation_spec("roof-pv"))
    consumption_meter(registry, other, "other-load", EAST, [99_000] * 4)

    def certificate(
        hour: int,
        wh: int,
        region: GridRegion,
        *,
        status: str = "retired",
        beneficiary: str | None = None,
    ) -> None:
        retired_certificate(
            registry,
            producer=producer,
            beneficiary=beneficiary or buyer,
            hour_start=START + hour * HOUR,
            wh=wh,
            region=region,
            status=status,
        )

    certificate(0, 3_000, EAST)
    certificate(0, 5_000, SOUTH)
    certificate(1, 6_000, EAST)
    certificate(1, 2_000, EAST)  # two certificates in one hour add up
    # Not counted: still active, retired for another organisation, outside the period.
    certificate(2, 50_000, SOUTH, status="active")
    certificate(2, 50_000, SOUTH, beneficiary=other)
    certificate(-1, 50_000, EAST)
    certificate(4, 50_000, EAST)

    end = START + 4 * HOUR
    assert hourly_consumption(registry.database, buyer, START, end) == {
        (EAST, START): 10_000,
        (EAST, START + HOUR): 4_000,
        (EAST, START + 3 * HOUR): 1_000,
        (SOUTH, START): 2_000,
        (SOUTH, START + 2 * HOUR): 6_000,
    }
    assert hourly_supply(registry.database, buyer, START, end) == {
        (EAST, START): 3_000,
        (SOUTH, START): 5_000,
        (EAST, START + HOUR): 8_000,
    }

    factors = packaged_factor_table()
    within = matching_report(
        registry.database, buyer, START, end, same_region=True, factors=factors
    )
    assert list(within.hourly["consumption_wh"]) == [12_000, 4_000, 6_000, 1_000]
    assert list(within.hourly["supply_wh"]) == [8_000, 8_000, 0, 0]
    assert list(within.hourly["matched_wh"]) == [5_000, 4_000, 0, 0]
    assert within.organisation_id == buyer
    # 2026 uses the 2023 factors: east 0.55, south 0.4042; residual 0.6096.
    assert within.location_based_kg == Decimal("15") * Decimal("0.55") + Decimal("8") * Decimal(
        "0.4042"
    )
    assert within.market_based_kg == Decimal("14") * Decimal("0.6096")

    pooled = matching_report(
        registry.database, buyer, START, end, same_region=False, factors=factors
    )
    assert list(pooled.hourly["matched_wh"]) == [8_000, 4_000, 0, 0]
    assert pooled.to_json()["cfePercent"] == round(12_000 / 23_000 * 100, 4)


def test_unknown_organisation_and_limits(registry: Registry) -> None:
    database = registry.database
    factors = packaged_factor_table()
    with pytest.raises(UnknownOrganisationError):
        matching_report(
            database, "no-such-org", START, START + HOUR, same_region=True, factors=factors
        )
    buyer = organisation(registry)
    with pytest.raises(MatchingRequestError, match="whole UTC hours"):
        matching_report(
            database, buyer, START + 60, START + HOUR, same_region=True, factors=factors
        )
    # An organisation without meters or certificates gets an empty, well-formed report.
    empty = matching_report(
        database, buyer, START, START + 24 * HOUR, same_region=False, factors=factors
    )
    assert (empty.consumption_wh, empty.supply_wh, len(empty.hourly)) == (0, 0, 24)


def test_meter_hours_are_bounded(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    buyer = organisation(registry)
    consumption_meter(registry, buyer, "m-1", EAST, [1])
    consumption_meter(registry, buyer, "m-2", EAST, [1])
    # Two meters: a report of more than half the limit in hours is refused before any read.
    monkeypatch.setattr("ledger.certificates.matching.MAX_METER_HOURS", 10)
    with pytest.raises(MatchingRequestError, match="meter-hours"):
        hourly_consumption(registry.database, buyer, START, START + 6 * HOUR)
    assert hourly_consumption(registry.database, buyer, START, START + 5 * HOUR) == {
        (EAST, START): 2
    }
    assert MAX_METER_HOURS >= 500 * 8784
