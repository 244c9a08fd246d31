"""The pure matching core: a hand-computed example, properties, and the request limits."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.certificates.matching import (
    MAX_HOURS,
    MAX_WH_PER_REGION_HOUR,
    MatchingReport,
    MatchingRequestError,
    compute_matching,
    gec_text,
)
from ledger.factors.grid import packaged_factor_table
from ledger.meters.entries import GridRegion

H = 3600
T2023 = int(datetime(2023, 6, 1, tzinfo=UTC).timestamp())
FACTORS = packaged_factor_table()
EAST, SOUTH = GridRegion.EAST, GridRegion.SOUTH

Energy = dict[tuple[GridRegion, int], int]

CONSUMPTION: Energy = {
    (EAST, T2023): 10_000,
    (SOUTH, T2023): 2_000,
    (EAST, T2023 + H): 4_000,
    (SOUTH, T2023 + 2 * H): 6_000,
}
SUPPLY: Energy = {
    (EAST, T2023): 3_000,
    (SOUTH, T2023): 5_000,
    (EAST, T2023 + H): 8_000,
}


def _report(
    consumption: Energy, supply: Energy, *, same_region: bool, start: int = T2023, hours: int = 3
) -> MatchingReport:
    return compute_matching(
        consumption,
        supply,
        start=start,
        end=start + hours * H,
        same_region=same_region,
        factors=FACTORS,
        organisation_id="org",
    )


def test_hand_computed_example_within_regions() -> None:
    report = _report(CONSUMPTION, SUPPLY, same_region=True)
    # Hour 0: east min(10,000, 3,000) + south min(2,000, 5,000); hour 1: east 4,000; hour 2: none.
    assert list(report.hourly["matched_wh"]) == [5_000, 4_000, 0]
    assert list(report.hourly["unmatched_wh"]) == [7_000, 0, 6_000]
    assert list(report.hourly["regions"]) == ["east;south", "east", "south"]
    assert (report.consumption_wh, report.supply_wh, report.matched_wh) == (22_000, 16_000, 9_000)
    assert (report.unmatched_wh, report.surplus_wh, report.volume_matched_wh) == (
        13_000,
        7_000,
        16_000,
    )
    assert report.cfe_score == Fraction(9, 22)
    assert report.volume_match == Fraction(16, 22)
    # 2023 factors (MEE/NBS): east 0.55, south 0.4042, residual 0.6096 kg/kWh.
    assert report.location_based_kg == Decimal("14") * Decimal("0.55") + Decimal("8") * Decimal(
        "0.4042"
    )
    assert report.location_based_kg == Decimal("10.9336")
    assert report.market_based_kg == Decimal("13") * Decimal("0.6096") == Decimal("7.9248")
    assert report.market_based_volume_kg == Decimal("6") * Decimal("0.6096")

    body = report.to_json()
    assert body["cfePercent"] == 40.9091
    assert body["volumeMatchPercent"] == 72.7273
    assert body["emissions"] == {
        "unit": "kgCO2",
        "locationBased": "10.934",
        "marketBased": "7.925",
        "marketBasedVolume": "3.658",
    }
    assert body["gec"] == {"consumption": "0.022000", "supply": "0.016000", "matched": "0.009000"}
    assert body["regions"] == [
        {"region": "east", "consumptionWh": 14_000, "supplyWh": 11_000, "matchedWh": 7_000},
        {"region": "south", "consumptionWh": 8_000, "supplyWh": 5_000, "matchedWh": 2_000},
    ]
    location = {line["region"]: line for line in body["factors"]["location"]}
    assert location["east"]["factorSource"] == "regional_2023/华东"
    assert location["south"]["kgCO2PerKWh"] == "0.4042"
    assert location["south"]["emissionsKg"] == "3.234"
    [residual] = body["factors"]["residual"]
    assert residual["factorYear"] == 2023 and residual["kgCO2PerKWh"] == "0.6096"


def test_hand_computed_example_pooled() -> None:
    report = _report(CONSUMPTION, SUPPLY, same_region=False)
    # Hour 0: min(12,000, 8,000): the south surplus covers east consumption.
    assert list(report.hourly["matched_wh"]) == [8_000, 4_000, 0]
    assert report.matched_wh == 12_000
    assert report.market_based_kg == Decimal("10") * Decimal("0.6096")
    assert report.to_json()["regions"][0]["matchedWh"] is None


def test_later_years_use_the_latest_factors_and_say_so() -> None:
    start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    report = _report({(EAST, start): 1_000_000}, {}, same_region=True, start=start, hours=1)
    [line] = report.location
    assert (line.year, line.factor.year, line.factor.substituted) == (2026, 2023, True)
    assert report.location_based_kg == Decimal("550.000")
    body = report.to_json()
    assert body["factors"]["residual"][0]["factorYear"] == 2023
    assert body["gec"]["consumption"] == "1.000000"


def test_volume_comparison_counts_certificates_in_their_own_year() -> None:
    start = int(datetime(2022, 12, 31, 23, tzinfo=UTC).timestamp())
    report = _report(
        {(EAST, start): 1_000}, {(EAST, start + H): 1_000}, same_region=True, start=start, hours=2
    )
    assert report.volume_match == 1
    [y2022, y2023] = report.residual
    assert (y2022.year, y2022.volume_unmatched_wh, y2023.volume_unmatched_wh) == (2022, 1_000, 0)
    assert report.market_based_volume_kg == Decimal("0.5856")


def test_gec_text_is_exact() -> None:
    assert gec_text(0) == "0.000000"
    assert gec_text(1) == "0.000001"
    assert gec_text(1_234_567) == "1.234567"
    assert gec_text(10**18 + 5) == "1000000000000.000005"


def test_no_consumption_has_no_scores() -> None:
    report = _report({}, {(EAST, T2023): 5}, same_region=True)
    assert report.cfe_score is None and report.volume_match is None
    body = report.to_json(include_hours=True)
    assert body["cfePercent"] is None and body["volumeMatchPercent"] is None
    assert len(body["hourly"]) == 3
    assert body["hourly"][0] == {
        "hour": "2023-06-01T00:00:00Z",
        "regions": ["east"],
        "consumptionWh": 0,
        "supplyWh": 5,
        "matchedWh": 0,
        "unmatchedWh": 0,
    }


@pytest.mark.parametrize(
    ("start", "end", "fragment"),
    [
        (T2023 + 1, T2023 + H, "whole UTC hours"),
        (T2023, T2023 + 1800, "whole UTC hours"),
        (T2023, T2023, "after"),
        (T2023 + H, T2023, "after"),
        (T2023, T2023 + (MAX_HOURS + 1) * H, "at most 8784 hours"),
    ],
)
def test_period_limits(start: int, end: int, fragment: str) -> None:
    with pytest.raises(MatchingRequestError, match=fragment):
        compute_matching({}, {}, start=start, end=end, same_region=True, factors=FACTORS)


def test_a_leap_year_fits() -> None:
    start = int(datetime(2028, 1, 1, tzinfo=UTC).timestamp())
    report = _report({}, {}, same_region=True, start=start, hours=MAX_HOURS)
    assert len(report.hourly) == MAX_HOURS == 8784


@pytest.mark.parametrize(
    ("consumption", "fragment"),
    [
        ({(EAST, T2023 - H): 1}, "not a whole hour of the period"),
        ({(EAST, T2023 + 3 * H): 1}, "not a whole hour of the period"),
        ({(EAST, T2023 + 5): 1}, "not a whole hour of the period"),
        ({(EAST, T2023): -1}, "outside"),
        ({(EAST, T2023): MAX_WH_PER_REGION_HOUR + 1}, "outside"),
        ({("mars", T2023): 1}, "unknown grid region"),
    ],
)
def test_bad_inputs(consumption: Energy, fragment: str) -> None:
    with pytest.raises(MatchingRequestError, match=fragment):
        _report(consumption, {}, same_region=True)


# ------------------------------------------------------------------------ properties

HOURS = 30
REGIONS = [EAST, SOUTH, GridRegion.NORTH]
STARTS = st.sampled_from(
    [
        int(datetime(year, month, 1, tzinfo=UTC).timestamp())
        for year in (2020, 2021, 2022, 2023, 2026)
        for month in (1, 6, 12)
    ]
    + [int(datetime(2022, 12, 31, 12, tzinfo=UTC).timestamp())]
)
CELLS = st.dictionaries(
    st.tuples(st.sampled_from(REGIONS), st.integers(0, HOURS - 1)),
    st.integers(0, 10**9),
    max_size=40,
)


def _energy(cells: dict[tuple[GridRegion, int], int], start: int) -> Energy:
    return {(region, start + offset * H): wh for (region, offset), wh in cells.items()}


@settings(max_examples=60, deadline=None)
@given(start=STARTS, consumption=CELLS, supply=CELLS)
def test_matching_properties(
    start: int,
    consumption: dict[tuple[GridRegion, int], int],
    supply: dict[tuple[GridRegion, int], int],
) -> None:
    used, given_ = _energy(consumption, start), _energy(supply, start)
    within = _report(used, given_, same_region=True, start=start, hours=HOURS)
    pooled = _report(used, given_, same_region=False, start=start, hours=HOURS)
    for report in (within, pooled):
        hourly = report.hourly
        assert (hourly["matched_wh"] >= 0).all()
        assert (hourly["matched_wh"] <= hourly[["consumption_wh", "supply_wh"]].min(axis=1)).all()
        assert (hourly["unmatched_wh"] == hourly["consumption_wh"] - hourly["matched_wh"]).all()
        assert report.consumption_wh == sum(used.values()) == int(hourly["consumption_wh"].sum())
        assert report.supply_wh == sum(given_.values()) == int(hourly["supply_wh"].sum())
        assert report.matched_wh == int(hourly["matched_wh"].sum())
        if report.cfe_score is not None:
            assert report.volume_match is not None
            assert 0 <= report.cfe_score <= report.volume_match <= 1
        assert report.market_based_kg >= report.market_based_volume_kg >= 0
        # Location-based: every Wh at its own region's and year's factor, recomputed directly.
        expected = sum(
            (
                Decimal(wh)
                / 1000
                * FACTORS.location_factor(region, datetime.fromtimestamp(hour, UTC).year).value
                for (region, hour), wh in used.items()
            ),
            Decimal(0),
        )
        assert report.location_based_kg == expected
    # Pooling can only help: any per-region match is also a pooled match.
    assert (pooled.hourly["matched_wh"] >= within.hourly["matched_wh"]).all()
    assert pooled.matched_wh >= within.matched_wh
    assert pooled.location_based_kg == within.location_based_kg
    assert pooled.market_based_volume_kg == within.market_based_volume_kg


@settings(max_examples=40, deadline=None)
@given(start=STARTS, consumption=CELLS, supply=CELLS, same_region=st.booleans())
def test_emissions_are_additive_over_disjoint_hours(
    start: int,
    consumption: dict[tuple[GridRegion, int], int],
    supply: dict[tuple[GridRegion, int], int],
    same_region: bool,
) -> None:
    used, given_ = _energy(consumption, start), _energy(supply, start)

    def part(energy: Energy, parity: int) -> Energy:
        return {key: wh for key, wh in energy.items() if (key[1] - start) // H % 2 == parity}

    whole = _report(used, given_, same_region=same_region, start=start, hours=HOURS)
    even, odd = (
        _report(part(used, p), part(given_, p), same_region=same_region, start=start, hours=HOURS)
        for p in (0, 1)
    )
    assert whole.location_based_kg == even.location_based_kg + odd.location_based_kg
    assert whole.market_based_kg == even.market_based_kg + odd.market_based_kg
    assert whole.matched_wh == even.matched_wh + odd.matched_wh
    # The volume figure is not additive (that is the point of hourly matching): it can only
    # be smaller for the whole than for the parts.
    assert whole.market_based_volume_kg <= even.market_based_volume_kg + odd.market_based_volume_kg
