"""China's grid CO2 emission factors, for location- and market-based Scope 2 figures.

A factor table is a JSON document in the format of `tests/data/factors/cn_factors_gec.json`:
either that whole document (the factors sit under `china_grid_co2_factors_kgCO2_per_kWh`) or the
inner object alone. Values are kg CO2 per kWh, keyed by year (text, four digits):

- `national_average`: the national average grid factor;
- `national_average_excluding_market_traded_non_fossil`: the national factor without the
  non-fossil power sold through green-power / certificate markets (the residual factor used for
  market-based figures, so certified green power is not counted twice);
- `regional_<year>`: one factor per regional grid, keyed by its Chinese name (华北 …);
- anything else (`national_fossil_power`, `issuers`, `announcements`, `provenance`, …) is kept as
  provenance and not used.

The registry ships a copy of the MEE/NBS figures (`ledger/factors/data/cn_grid_factors.json`);
a user points at another file with `CARBONLEDGER_GRID_FACTORS_FILE` or an explicit path. Values are
parsed straight from the JSON text into `Decimal`, so 0.5617 stays exactly 0.5617.

Year rule (both lookups): a year that has published figures uses them; a year without uses the
nearest earlier published year, or the earliest one when none is earlier (factors are announced
about two years late, so the current year is normally missing). Every lookup result names the
year actually used and the source key, so a report can say what it applied.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ledger.meters.entries import GridRegion

FACTORS_KEY = "china_grid_co2_factors_kgCO2_per_kWh"
NATIONAL_KEY = "national_average"
RESIDUAL_KEY = "national_average_excluding_market_traded_non_fossil"
REGIONAL_PREFIX = "regional_"
PACKAGED_SOURCE = "packaged:ledger/factors/data/cn_grid_factors.json"

MAX_FACTOR_FILE_BYTES = 1 << 20
"""The published table is ~2 KB; the bound stops a wrong file from being read into memory whole."""
MAX_FACTOR = Decimal(10)
"""kg CO2 per kWh; coal plants emit about 1. Anything above is a unit mistake (g, t)."""
MIN_YEAR, MAX_YEAR = 1990, 2200

REGION_NAMES: Mapping[GridRegion, str] = MappingProxyType(
    {
        GridRegion.NORTH: "华北",
        GridRegion.NORTHEAST: "东北",
        GridRegion.EAST: "华东",
        GridRegion.CENTRAL: "华中",
        GridRegion.NORTHWEST: "西北",
        GridRegion.SOUTH: "南方",
        GridRegion.SOUTHWEST: "西南",
    }
)
"""The regional grids by their names in the MEE/NBS announcements."""
_REGIONS_BY_NAME = {name: region for region, name in REGION_NAMES.items()}
_YEAR = re.compile(r"^[0-9]{4}$")


class FactorTableError(ValueError):
    """A factor table cannot be read or breaks the format; the message says where."""


class FactorSettings(BaseSettings):
    """Where the grid factor table comes from (environment `CARBONLEDGER_GRID_FACTORS_FILE`)."""

    model_config = SettingsConfigDict(env_prefix="CARBONLEDGER_", extra="ignore")

    grid_factors_file: Path | None = Field(
        default=None,
        description="JSON factor table in the format of the packaged one (default: packaged).",
    )


@dataclass(frozen=True, slots=True)
class Factor:
    """One emission factor as applied: what was asked for and what was used."""

    value: Decimal
    """kg CO2 per kWh."""
    year: int
    """The year whose published figure was used."""
    requested_year: int
    source: str
    """Where in the table the value is: `regional_2023/华东`, `national_average/2021`, …"""

    @property
    def substituted(self) -> bool:
        """Whether another year's figure stands in for the requested year."""
        return self.year != self.requested_year


@dataclass(frozen=True, slots=True)
class FactorTable:
    """A parsed factor table; build it with `parse_factor_table` or the loaders below."""

    national: Mapping[int, Decimal]
    residual: Mapping[int, Decimal]
    regional: Mapping[int, Mapping[GridRegion, Decimal]]
    source: str
    """The file path, or `PACKAGED_SOURCE`."""
    provenance: Mapping[str, Any]
    """The table's other members (issuers, announcements, provenance notes), verbatim."""

    def location_factor(self, region: GridRegion, year: int) -> Factor:
        """The grid factor for consumption in `region` during `year`.

        regional_<year> when it covers the region, else national_average[year], after the
        year rule of the module docstring.
        """
        used = _year_used(year, set(self.national) | set(self.regional))
        regional = self.regional.get(used, {})
        if region in regional:
            return Factor(
                regional[region], used, year, f"{REGIONAL_PREFIX}{used}/{REGION_NAMES[region]}"
            )
        # parse_factor_table guarantees a national figure wherever a region is missing.
        return Factor(self.national[used], used, year, f"{NATIONAL_KEY}/{used}")

    def residual_factor(self, year: int) -> Factor:
        """The factor excluding market-traded non-fossil power, for unmatched consumption."""
        used = _year_used(year, set(self.residual))
        return Factor(self.residual[used], used, year, f"{RESIDUAL_KEY}/{used}")


def _year_used(year: int, published: set[int]) -> int:
    assert published, "parse_factor_table refuses tables without years"
    if year in published:
        return year
    earlier = [candidate for candidate in published if candidate < year]
    return max(earlier) if earlier else min(published)


# ------------------------------------------------------------------------------ parsing


def _value(where: str, raw: Any) -> Decimal:
    # bool is an int subclass, and ints are not what the announcements publish.
    if not isinstance(raw, Decimal) or not raw.is_finite():
        raise FactorTableError(f"{where}: a factor must be a decimal number, got {raw!r}")
    if not Decimal(0) < raw <= MAX_FACTOR:
        raise FactorTableError(f"{where}: {raw} kg/kWh is outside (0, {MAX_FACTOR}]")
    return raw


def _year(where: str, text: str) -> int:
    if not _YEAR.fullmatch(text) or not MIN_YEAR <= int(text) <= MAX_YEAR:
        raise FactorTableError(f"{where}: {text!r} is not a year between {MIN_YEAR} and {MAX_YEAR}")
    return int(text)


def _by_year(table: Mapping[str, Any], key: str) -> dict[int, Decimal]:
    member = table.get(key)
    if not isinstance(member, dict) or not member:
        raise FactorTableError(f"{key}: must be a non-empty object of year -> factor")
    return {_year(key, text): _value(f"{key}/{text}", raw) for text, raw in member.items()}


def parse_factor_table(document: Any, source: str) -> FactorTable:
    """Check and index a factor table parsed with `parse_float=Decimal`."""
    if isinstance(document, dict) and FACTORS_KEY in document:
        document = document[FACTORS_KEY]
    if not isinstance(document, dict):
        raise FactorTableError(f"{source}: not a factor table (a JSON object with {NATIONAL_KEY})")
    try:
        national = _by_year(document, NATIONAL_KEY)
        residual = _by_year(document, RESIDUAL_KEY)
        regional: dict[int, Mapping[GridRegion, Decimal]] = {}
        provenance: dict[str, Any] = {}
        for key, member in document.items():
            if key in (NATIONAL_KEY, RESIDUAL_KEY):
                continue
            if not key.startswith(REGIONAL_PREFIX):
                provenance[key] = member
                continue
            year = _year(key, key.removeprefix(REGIONAL_PREFIX))
            if not isinstance(member, dict) or not member:
                raise FactorTableError(f"{key}: must be a non-empty object of region -> factor")
            regions: dict[GridRegion, Decimal] = {}
            for name, raw in member.items():
                if name not in _REGIONS_BY_NAME:
                    # A misspelt region would otherwise fall back to the national figure unseen.
                    raise FactorTableError(
                        f"{key}: unknown region {name!r}; known: {', '.join(_REGIONS_BY_NAME)}"
                    )
                regions[_REGIONS_BY_NAME[name]] = _value(f"{key}/{name}", raw)
            if len(regions) < len(REGION_NAMES) and year not in national:
                raise FactorTableError(
                    f"{key}: covers {len(regions)} of {len(REGION_NAMES)} regions and "
                    f"{NATIONAL_KEY} has no {year} figure for the others"
                )
            regional[year] = MappingProxyType(regions)
    except FactorTableError as exc:
        raise FactorTableError(f"{source}: {exc}") from exc
    return FactorTable(
        national=MappingProxyType(national),
        residual=MappingProxyType(residual),
        regional=MappingProxyType(regional),
        source=source,
        provenance=MappingProxyType(provenance),
    )


def parse_factor_text(text: str | bytes, source: str) -> FactorTable:
    try:
        document = json.loads(text, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FactorTableError(f"{source}: not JSON: {exc}") from exc
    return parse_factor_table(document, source)


def load_factor_table(path: Path) -> FactorTable:
    """Read a factor table file (at most `MAX_FACTOR_FILE_BYTES`)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FACTOR_FILE_BYTES + 1)
    except OSError as exc:
        raise FactorTableError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_FACTOR_FILE_BYTES:
        raise FactorTableError(f"{path}: larger than {MAX_FACTOR_FILE_BYTES} bytes")
    return parse_factor_text(data, str(path))


@functools.cache
def packaged_factor_table() -> FactorTable:
    """The MEE/NBS figures shipped with the registry."""
    data = resources.files("ledger.factors").joinpath("data", "cn_grid_factors.json").read_bytes()
    return parse_factor_text(data, PACKAGED_SOURCE)


def configured_factor_table(path: Path | None = None) -> FactorTable:
    """An explicit `path`, else `CARBONLEDGER_GRID_FACTORS_FILE`, else the packaged table."""
    chosen = path if path is not None else FactorSettings().grid_factors_file
    return packaged_factor_table() if chosen is None else load_factor_table(chosen)
