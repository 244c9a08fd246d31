"""24/7 (hourly) matching of consumption against retired certificates, and Scope 2 figures.

For an organisation and a period of whole UTC hours:

- consumption: per hour, the `importWh` of the organisation's `consumption` and
  `bidirectional` meters (`ledger.meters.intervals` rule), by the meter's grid region;
- supply: per hour, the Wh of certificates retired for the organisation (as beneficiary)
  whose production hour is that hour, by the certificate's grid region;
- matched: per hour min(consumption, supply) — per region when `same_region`, else with all
  regions pooled per hour; unmatched = consumption - matched; surplus = supply - matched.

Figures (all energy in integer Wh; emissions exact `Decimal` kg CO2):

- hourly CFE score = Σ matched / Σ consumption (undefined without consumption);
- annual volume match = min(Σ supply, Σ consumption) / Σ consumption, the usual annual claim,
  shown beside the CFE score for comparison (CFE ≤ volume match always);
- location-based emissions = Σ over (region, year) of consumption kWh x the location factor;
- market-based emissions = Σ over hours of unmatched kWh x the residual factor of the hour's
  year (the factor excluding market-traded non-fossil power, so certified green power is not
  counted twice); for comparison the same on an annual-volume basis, per calendar year:
  (consumption - min(supply, consumption)) kWh x residual factor. For a period inside one
  year that is exactly (Σ consumption - min(Σ supply, Σ consumption)) x factor; across a
  year boundary a certificate only covers consumption of its own production year.

An hour's year is its UTC calendar year, like the period itself (the Chinese factors follow
calendar years in UTC+8; the difference is 8 of 8,760 hours, and the published factors are
years behind anyway, see `ledger.factors.grid`).

Limits: a period is 1 to `MAX_HOURS` (8,784 = a leap year) whole hours; at most
`MAX_METER_HOURS` meter-hours are read per report; a region-hour holds at most
`MAX_WH_PER_REGION_HOUR`, so every total fits in int64 (pandas' integer type).
"""

from __future__ import annotations

import decimal
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import pandas as pd
from sqlalchemy import func, select

from ledger.access.models import Organisation
from ledger.certificates.models import Certificate, CertificateRetirement
from ledger.certificates.rules import gec_text
from ledger.factors.grid import PACKAGED_SOURCE, Factor, FactorTable
from ledger.meters.energy import meter_energy
from ledger.meters.entries import GridRegion, MeterRole
from ledger.meters.models import Meter
from ledger.storage.db import Database
from ledger.times import format_utc

HOUR = 3600
MAX_HOURS = 366 * 24
"""A leap year of hours: a calendar year's report always fits, whatever the year."""
MAX_METER_HOURS = 500 * MAX_HOURS
"""Bounds the readings work of one report: e.g. 500 consumption meters for a whole year."""
MAX_WH_PER_REGION_HOUR = 10**14
"""100 GWh in one region and hour, ~100x China's whole demand: above it is a data error, and
7 regions x 8,784 hours x 10^14 Wh stays below 2^63."""
REPORT_FORMAT = "carbonledger/matching-report/1"
CONSUMING_ROLES = (MeterRole.CONSUMPTION.value, MeterRole.BIDIRECTIONAL.value)
HOURLY_COLUMNS = ("regions", "consumption_wh", "supply_wh", "matched_wh", "unmatched_wh")
_ENERGY_COLUMNS = ["consumption_wh", "supply_wh"]
# Wh (<= 2^63) x kWh scale x a factor of a few digits: far below 60 digits, so every
# product and sum is exact and never rounded.
_EXACT = decimal.Context(prec=60, traps=[decimal.Inexact, decimal.InvalidOperation])
_GRAMS = Decimal("0.001")

HourlyEnergy = Mapping[tuple[GridRegion, int], int]
"""Wh per (grid region, hour start in epoch seconds)."""


class MatchingRequestError(ValueError):
    """A matching report cannot be made as asked; the message says why."""


class UnknownOrganisationError(MatchingRequestError, LookupError):
    pass


def check_period(start: int, end: int) -> int:
    """Validate a report period [start, end) in epoch seconds; returns its number of hours."""
    if start % HOUR or end % HOUR:
        raise MatchingRequestError("`from` and `to` must fall on whole UTC hours")
    if end <= start:
        raise MatchingRequestError("`to` must be after `from`")
    hours = (end - start) // HOUR
    if hours > MAX_HOURS:
        raise MatchingRequestError(f"a report covers at most {MAX_HOURS} hours; asked {hours}")
    return hours


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class RegionTotals:
    region: GridRegion
    consumption_wh: int
    supply_wh: int
    matched_wh: int | None
    """Only when matching within regions: pooled matching has no per-region match."""


@dataclass(frozen=True, slots=True)
class LocationLine:
    """Location-based emissions of one region's consumption in one year."""

    region: GridRegion
    year: int
    consumption_wh: int
    factor: Factor
    emissions_kg: Decimal


@dataclass(frozen=True, slots=True)
class ResidualLine:
    """Market-based emissions of one year: hourly and annual-volume unmatched consumption."""

    year: int
    consumption_wh: int
    supply_wh: int
    unmatched_wh: int
    volume_unmatched_wh: int
    factor: Factor
    market_based_kg: Decimal
    market_based_volume_kg: Decimal


@dataclass(frozen=True, eq=False)
class MatchingReport:
    """A matching report; `hourly` has one row per UTC hour of the period (see HOURLY_COLUMNS).

    `hourly` is indexed by the hour's start (tz-aware UTC `DatetimeIndex` named `hour`); the
    energy columns are int64 Wh and `regions` lists the regions with energy that hour.
    """

    organisation_id: str | None
    start: int
    end: int
    same_region: bool
    hourly: pd.DataFrame
    consumption_wh: int
    supply_wh: int
    matched_wh: int
    volume_matched_wh: int
    regions: tuple[RegionTotals, ...]
    location: tuple[LocationLine, ...]
    residual: tuple[ResidualLine, ...]
    location_based_kg: Decimal
    market_based_kg: Decimal
    market_based_volume_kg: Decimal
    factor_source: str

    @property
    def hours(self) -> int:
        return (self.end - self.start) // HOUR

    @property
    def unmatched_wh(self) -> int:
        return self.consumption_wh - self.matched_wh

    @property
    def surplus_wh(self) -> int:
        """Retired supply that no consumption in its hour (and region) used."""
        return self.supply_wh - self.matched_wh

    @property
    def cfe_score(self) -> Fraction | None:
        """Σ matched / Σ consumption, exact; None without consumption."""
        return Fraction(self.matched_wh, self.consumption_wh) if self.consumption_wh else None

    @property
    def volume_match(self) -> Fraction | None:
        """min(Σ supply, Σ consumption) / Σ consumption, exact; None without consumption."""
        if not self.consumption_wh:
            return None
        return Fraction(self.volume_matched_wh, self.consumption_wh)

    def to_json(self, *, include_hours: bool = False) -> dict[str, Any]:
        """Plain JSON (keys as in the HTTP API).

        Energy: integer Wh. Percentages: floats in percent, rounded to 4 decimals, null
        without consumption. Emissions: kg CO2 as decimal strings with 3 decimals (rounded
        half-up to whole grams; strings, because the exact values are decimals and JSON
        numbers are read as binary floats). GEC equivalents: Wh / 10^6 as strings with
        6 decimals, exact. Factors: kg CO2 per kWh as the table's decimal strings.
        """
        body: dict[str, Any] = {
            "report": REPORT_FORMAT,
            "organisation": self.organisation_id,
            "from": format_utc(self.start),
            "to": format_utc(self.end),
            "hours": self.hours,
            "sameRegion": self.same_region,
            "consumptionWh": self.consumption_wh,
            "supplyWh": self.supply_wh,
            "matchedWh": self.matched_wh,
            "unmatchedWh": self.unmatched_wh,
            "surplusWh": self.surplus_wh,
            "volumeMatchedWh": self.volume_matched_wh,
            "cfePercent": percent(self.cfe_score),
            "volumeMatchPercent": percent(self.volume_match),
            "gec": {
                "consumption": gec_text(self.consumption_wh),
                "supply": gec_text(self.supply_wh),
                "matched": gec_text(self.matched_wh),
            },
            "emissions": {
                "unit": "kgCO2",
                "locationBased": kg_text(self.location_based_kg),
                "marketBased": kg_text(self.market_based_kg),
                "marketBasedVolume": kg_text(self.market_based_volume_kg),
            },
            "regions": [
                {
                    "region": item.region.value,
                    "consumptionWh": item.consumption_wh,
                    "supplyWh": item.supply_wh,
                    "matchedWh": item.matched_wh,
                }
                for item in self.regions
            ],
            "factors": {
                # A file name only: the server's directory layout is not the reader's business.
                "table": (
                    self.factor_source
                    if self.factor_source == PACKAGED_SOURCE
                    else Path(self.factor_source).name
                ),
                "location": [
                    {
                        "region": line.region.value,
                        "year": line.year,
                        "consumptionWh": line.consumption_wh,
                        **_factor_json(line.factor),
                        "emissionsKg": kg_text(line.emissions_kg),
                    }
                    for line in self.location
                ],
                "residual": [
                    {
                        "year": line.year,
                        "consumptionWh": line.consumption_wh,
                        "supplyWh": line.supply_wh,
                        "unmatchedWh": line.unmatched_wh,
                        "volumeUnmatchedWh": line.volume_unmatched_wh,
                        **_factor_json(line.factor),
                        "marketBasedKg": kg_text(line.market_based_kg),
                        "marketBasedVolumeKg": kg_text(line.market_based_volume_kg),
                    }
                    for line in self.residual
                ],
            },
        }
        if include_hours:
            frame = self.hourly
            body["hourly"] = [
                {
                    "hour": format_utc(self.start + offset * HOUR),
                    "regions": regions.split(";") if regions else [],
                    "consumptionWh": int(consumption),
                    "supplyWh": int(supply),
                    "matchedWh": int(matched),
                    "unmatchedWh": int(unmatched),
                }
                for offset, (regions, consumption, supply, matched, unmatched) in enumerate(
                    zip(*(frame[column] for column in HOURLY_COLUMNS), strict=True)
                )
            ]
        return body


def _factor_json(factor: Factor) -> dict[str, Any]:
    return {
        "factorYear": factor.year,
        "factorSource": factor.source,
        "kgCO2PerKWh": str(factor.value),
    }


def percent(share: Fraction | None) -> float | None:
    return None if share is None else round(float(share * 100), 4)


def kg_text(kg: Decimal) -> str:
    return str(kg.quantize(_GRAMS, rounding=decimal.ROUND_HALF_UP))


def _kg(wh: int, factor: Decimal) -> Decimal:
    return _EXACT.multiply(_EXACT.scaleb(Decimal(wh), -3), factor)


def _total(values: Iterable[Decimal]) -> Decimal:
    total = Decimal(0)
    for value in values:
        total = _EXACT.add(total, value)
    return total


# ------------------------------------------------------------------------ the pure core


def _cells(consumption: HourlyEnergy, supply: HourlyEnergy, start: int, end: int) -> pd.DataFrame:
    """Consumption and supply per (region, hour offset), summed; only non-empty cells."""
    records: list[tuple[str, int, int, int]] = []
    for column, energy in ((0, consumption), (1, supply)):
        for (region, hour), wh in energy.items():
            try:
                name = GridRegion(region).value
            except ValueError as exc:
                raise MatchingRequestError(f"unknown grid region {region!r}") from exc
            if hour % HOUR or not start <= hour < end:
                raise MatchingRequestError(f"hour {hour} is not a whole hour of the period")
            if not 0 <= wh <= MAX_WH_PER_REGION_HOUR:
                raise MatchingRequestError(
                    f"{wh} Wh in {name} at {format_utc(hour)} is outside "
                    f"[0, {MAX_WH_PER_REGION_HOUR}]"
                )
            offset = (hour - start) // HOUR
            records.append((name, offset, wh, 0) if column == 0 else (name, offset, 0, wh))
    frame = pd.DataFrame.from_records(
        records, columns=["region", "offset", *_ENERGY_COLUMNS]
    ).astype({"region": "object", "offset": "int64", **dict.fromkeys(_ENERGY_COLUMNS, "int64")})
    cells = frame.groupby(["region", "offset"], sort=True)[_ENERGY_COLUMNS].sum()
    # Summing duplicates could still pass the per-cell bound.
    if len(cells) and int(cells.to_numpy().max()) > MAX_WH_PER_REGION_HOUR:
        raise MatchingRequestError(f"more than {MAX_WH_PER_REGION_HOUR} Wh in one region-hour")
    return cells


def compute_matching(
    consumption: HourlyEnergy,
    supply: HourlyEnergy,
    *,
    start: int,
    end: int,
    same_region: bool,
    factors: FactorTable,
    organisation_id: str | None = None,
) -> MatchingReport:
    """Match hourly consumption against supply; both in Wh per (region, hour start)."""
    hours = check_period(start, end)
    cells = _cells(consumption, supply, start, end)
    cells["matched_wh"] = cells[_ENERGY_COLUMNS].min(axis=1)
    if same_region:
        per_hour = cells.groupby(level="offset")[[*_ENERGY_COLUMNS, "matched_wh"]].sum()
    else:
        per_hour = cells.groupby(level="offset")[_ENERGY_COLUMNS].sum()
        per_hour["matched_wh"] = per_hour[_ENERGY_COLUMNS].min(axis=1)
    per_hour = per_hour.reindex(pd.RangeIndex(hours), fill_value=0).astype("int64")
    per_hour["unmatched_wh"] = per_hour["consumption_wh"] - per_hour["matched_wh"]

    active = cells[(cells["consumption_wh"] > 0) | (cells["supply_wh"] > 0)].reset_index()
    # A plain loop: a pandas string aggregation per hour costs ~1 s for a year.
    names: defaultdict[int, list[str]] = defaultdict(list)
    # `cells` is sorted by (region, offset), so every hour's list comes out sorted.
    for name, offset in zip(active["region"], active["offset"], strict=True):
        names[int(offset)].append(str(name))
    index = pd.DatetimeIndex(
        pd.to_datetime(start + HOUR * per_hour.index.to_numpy(dtype="int64"), unit="s", utc=True),
        name="hour",
    )
    hourly = pd.DataFrame(
        {
            "regions": pd.Series(
                [";".join(names.get(offset, ())) for offset in range(hours)], dtype=object
            ).to_numpy(),
            **{column: per_hour[column].to_numpy() for column in HOURLY_COLUMNS[1:]},
        },
        index=index,
    )
    years = index.year.to_numpy()

    regions = tuple(
        RegionTotals(
            region=GridRegion(str(name)),
            consumption_wh=int(group["consumption_wh"].sum()),
            supply_wh=int(group["supply_wh"].sum()),
            matched_wh=int(group["matched_wh"].sum()) if same_region else None,
        )
        for name, group in cells.groupby(level="region", sort=True)
    )

    location: list[LocationLine] = []
    consumed = cells[cells["consumption_wh"] > 0].reset_index()
    consumed["year"] = years[consumed["offset"].to_numpy()] if len(consumed) else []
    for key, wh in consumed.groupby(["region", "year"])["consumption_wh"].sum().items():
        name, year = cast("tuple[str, int]", key)
        region, used = GridRegion(str(name)), int(wh)
        factor = factors.location_factor(region, int(year))
        location.append(LocationLine(region, int(year), used, factor, _kg(used, factor.value)))

    residual: list[ResidualLine] = []
    for key, group in hourly.groupby(years):
        year = int(cast("int", key))
        used, supplied = int(group["consumption_wh"].sum()), int(group["supply_wh"].sum())
        if used == 0 and supplied == 0:
            continue
        unmatched = int(group["unmatched_wh"].sum())
        volume_unmatched = used - min(used, supplied)
        factor = factors.residual_factor(year)
        residual.append(
            ResidualLine(
                year=year,
                consumption_wh=used,
                supply_wh=supplied,
                unmatched_wh=unmatched,
                volume_unmatched_wh=volume_unmatched,
                factor=factor,
                market_based_kg=_kg(unmatched, factor.value),
                market_based_volume_kg=_kg(volume_unmatched, factor.value),
            )
        )

    total_consumption = int(per_hour["consumption_wh"].sum())
    total_supply = int(per_hour["supply_wh"].sum())
    return MatchingReport(
        organisation_id=organisation_id,
        start=start,
        end=end,
        same_region=same_region,
        hourly=hourly,
        consumption_wh=total_consumption,
        supply_wh=total_supply,
        matched_wh=int(per_hour["matched_wh"].sum()),
        volume_matched_wh=min(total_supply, total_consumption),
        regions=regions,
        location=tuple(location),
        residual=tuple(residual),
        location_based_kg=_total(line.emissions_kg for line in location),
        market_based_kg=_total(line.market_based_kg for line in residual),
        market_based_volume_kg=_total(line.market_based_volume_kg for line in residual),
        factor_source=factors.source,
    )


# ------------------------------------------------------------------------ the database


def hourly_consumption(
    database: Database, organisation_id: str, start: int, end: int
) -> dict[tuple[GridRegion, int], int]:
    """importWh per (grid region, hour) of the organisation's consuming meters."""
    hours = check_period(start, end)
    with database.read() as session:
        if session.get(Organisation, organisation_id) is None:
            raise UnknownOrganisationError(f"no organisation {organisation_id!r}")
        meters = session.execute(
            select(Meter.id, Meter.grid_region)
            .where(Meter.organisation_id == organisation_id, Meter.role.in_(CONSUMING_ROLES))
            .order_by(Meter.id)
        ).all()
    if len(meters) * hours > MAX_METER_HOURS:
        raise MatchingRequestError(
            f"{len(meters)} consumption meters x {hours} hours exceeds the limit of "
            f"{MAX_METER_HOURS} meter-hours per report; ask for at most "
            f"{MAX_METER_HOURS // len(meters)} hours"
        )
    totals: defaultdict[tuple[GridRegion, int], int] = defaultdict(int)
    for meter_id, region in meters:
        for interval in meter_energy(database, meter_id, start, end, HOUR):
            if interval.import_wh:
                totals[GridRegion(region), interval.start] += interval.import_wh
    return dict(totals)


def hourly_supply(
    database: Database, organisation_id: str, start: int, end: int
) -> dict[tuple[GridRegion, int], int]:
    """Wh of certificates retired for the organisation, per (grid region, production hour)."""
    check_period(start, end)
    volume = func.sum(Certificate.serial_end - Certificate.serial_start)
    query = (
        select(Certificate.grid_region, Certificate.hour_start, volume)
        .join(CertificateRetirement, CertificateRetirement.certificate_id == Certificate.id)
        .where(
            Certificate.status == "retired",
            CertificateRetirement.beneficiary_id == organisation_id,
            Certificate.hour_start >= start,
            Certificate.hour_start < end,
        )
        .group_by(Certificate.grid_region, Certificate.hour_start)
    )
    with database.read() as session:
        rows = session.execute(query).all()
    # PostgreSQL sums BIGINT as NUMERIC (a Decimal here).
    return {(GridRegion(region), int(hour)): int(wh) for region, hour, wh in rows}


def matching_report(
    database: Database,
    organisation_id: str,
    start: int,
    end: int,
    *,
    same_region: bool,
    factors: FactorTable,
) -> MatchingReport:
    """The matching report of an organisation over [start, end) (epoch seconds, whole hours)."""
    consumption = hourly_consumption(database, organisation_id, start, end)
    supply = hourly_supply(database, organisation_id, start, end)
    return compute_matching(
        consumption,
        supply,
        start=start,
        end=end,
        same_region=same_region,
        factors=factors,
        organisation_id=organisation_id,
    )
