"""Wire format of the 24/7 matching report (`GET /v1/reports/matching`).

The body is `ledger.certificates.matching.MatchingReport.to_json()` validated against these
models, so
the HTTP answer and the CLI's JSON cannot drift apart. Units: energy integer Wh; percentages
floats in percent with 4 decimals (null without consumption); emissions kg CO2 as decimal
strings with 3 decimals; GEC equivalents (1 GEC = 1 MWh) as decimal strings with 6 decimals;
factors kg CO2 per kWh as the factor table's decimal strings.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ledger.certificates.matching import MatchingReport
from ledger.meters.entries import GridRegion

_KG = r"^[0-9]+\.[0-9]{3}$"
_GEC = r"^[0-9]+\.[0-9]{6}$"
_FACTOR = r"^[0-9]+(\.[0-9]+)?$"


class _Wire(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)


class GecEquivalents(_Wire):
    consumption: str = Field(pattern=_GEC, description="Consumption in GEC (Wh / 10^6).")
    supply: str = Field(pattern=_GEC, description="Retired certificates in GEC.")
    matched: str = Field(pattern=_GEC, description="Hourly-matched energy in GEC.")


class EmissionsBody(_Wire):
    unit: Literal["kgCO2"]
    location_based: str = Field(
        alias="locationBased",
        pattern=_KG,
        description="Consumption x the grid factor of its region and year.",
    )
    market_based: str = Field(
        alias="marketBased",
        pattern=_KG,
        description="Hourly unmatched consumption x the residual factor (excluding "
        "market-traded non-fossil power) of its year.",
    )
    market_based_volume: str = Field(
        alias="marketBasedVolume",
        pattern=_KG,
        description="For comparison: the market-based figure if certificates were matched "
        "by annual volume (per calendar year) instead of by hour.",
    )


class RegionBody(_Wire):
    region: GridRegion
    consumption_wh: int = Field(alias="consumptionWh")
    supply_wh: int = Field(alias="supplyWh")
    matched_wh: int | None = Field(
        alias="matchedWh", description="Null when regions are pooled (`sameRegion=false`)."
    )


class _FactorUse(_Wire):
    factor_year: int = Field(
        alias="factorYear", description="The year whose published factor was applied."
    )
    factor_source: str = Field(
        alias="factorSource", description="Where in the table: `regional_2023/华东`, …"
    )
    kg_co2_per_kwh: str = Field(alias="kgCO2PerKWh", pattern=_FACTOR)


class LocationFactorBody(_FactorUse):
    region: GridRegion
    year: int
    consumption_wh: int = Field(alias="consumptionWh")
    emissions_kg: str = Field(alias="emissionsKg", pattern=_KG)


class ResidualFactorBody(_FactorUse):
    year: int
    consumption_wh: int = Field(alias="consumptionWh")
    supply_wh: int = Field(alias="supplyWh")
    unmatched_wh: int = Field(alias="unmatchedWh")
    volume_unmatched_wh: int = Field(alias="volumeUnmatchedWh")
    market_based_kg: str = Field(alias="marketBasedKg", pattern=_KG)
    market_based_volume_kg: str = Field(alias="marketBasedVolumeKg", pattern=_KG)


class FactorsBody(_Wire):
    table: str = Field(description="The factor table: packaged, or the configured file's name.")
    location: list[LocationFactorBody]
    residual: list[ResidualFactorBody]


class HourBody(_Wire):
    hour: str = Field(description="Start of the UTC hour.")
    regions: list[GridRegion]
    consumption_wh: int = Field(alias="consumptionWh")
    supply_wh: int = Field(alias="supplyWh")
    matched_wh: int = Field(alias="matchedWh")
    unmatched_wh: int = Field(alias="unmatchedWh")


class MatchingReportBody(_Wire):
    report: Literal["carbonledger/matching-report/1"]
    organisation: str
    from_time: str = Field(alias="from")
    to_time: str = Field(alias="to")
    hours: int = Field(description="Whole UTC hours in [from, to).")
    same_region: bool = Field(alias="sameRegion")
    consumption_wh: int = Field(alias="consumptionWh")
    supply_wh: int = Field(
        alias="supplyWh",
        description="Wh of certificates retired for the organisation, produced in the period.",
    )
    matched_wh: int = Field(
        alias="matchedWh", description="Σ over hours of min(consumption, supply)."
    )
    unmatched_wh: int = Field(alias="unmatchedWh")
    surplus_wh: int = Field(
        alias="surplusWh", description="Retired supply no consumption of its hour used."
    )
    volume_matched_wh: int = Field(
        alias="volumeMatchedWh", description="min(Σ supply, Σ consumption)."
    )
    cfe_percent: float | None = Field(
        alias="cfePercent", description="Hourly CFE score: Σ matched / Σ consumption, in %."
    )
    volume_match_percent: float | None = Field(
        alias="volumeMatchPercent",
        description="Annual volume match: min(Σ supply, Σ consumption) / Σ consumption, in %.",
    )
    gec: GecEquivalents
    emissions: EmissionsBody
    regions: list[RegionBody]
    factors: FactorsBody
    hourly: list[HourBody] | None = Field(
        default=None, description="One entry per hour, only with `hourly=true`."
    )

    @classmethod
    def from_report(cls, report: MatchingReport, *, include_hours: bool) -> MatchingReportBody:
        return cls.model_validate(report.to_json(include_hours=include_hours))
