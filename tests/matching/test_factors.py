"""The grid factor table: the packaged copy, the year rules, the file setting, bad tables."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from testdata_support import require_testdata

from ledger.factors.grid import (
    FACTORS_KEY,
    MAX_FACTOR_FILE_BYTES,
    PACKAGED_SOURCE,
    REGION_NAMES,
    FactorTableError,
    configured_factor_table,
    load_factor_table,
    packaged_factor_table,
    parse_factor_text,
)
from ledger.meters.entries import GridRegion

PACKAGED = (
    Path(__file__).resolve().parents[2] / "ledger" / "factors" / "data" / "cn_grid_factors.json"
)


def _decimal_json(path: Path) -> object:
    return json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)


def test_packaged_copy_equals_the_shared_testdata_exactly() -> None:
    shared = require_testdata("factors", "cn_factors_gec.json")
    expected = _decimal_json(shared)[FACTORS_KEY]  # type: ignore[index]
    assert _decimal_json(PACKAGED) == {FACTORS_KEY: expected}
    # Also through the loader: the shared file itself is a valid table of the same values.
    shared_table, packaged = load_factor_table(shared), packaged_factor_table()
    assert packaged.source == PACKAGED_SOURCE
    assert shared_table.national == packaged.national
    assert shared_table.residual == packaged.residual
    assert shared_table.regional == packaged.regional
    assert packaged.provenance["provenance"] == expected["provenance"]


def test_packaged_values_are_the_announced_decimals() -> None:
    table = packaged_factor_table()
    assert table.national == {
        2021: Decimal("0.5568"),
        2022: Decimal("0.5366"),
        2023: Decimal("0.5306"),
    }
    assert table.residual == {2022: Decimal("0.5856"), 2023: Decimal("0.6096")}
    assert table.regional[2023][GridRegion.EAST] == Decimal("0.55")
    assert table.regional[2022][GridRegion.SOUTHWEST] == Decimal("0.2268")
    assert set(table.regional[2022]) == set(GridRegion) == set(REGION_NAMES)


@pytest.mark.parametrize(
    ("year", "used", "source", "value"),
    [
        (2023, 2023, "regional_2023/华东", "0.55"),
        (2022, 2022, "regional_2022/华东", "0.5617"),
        # No regional table for 2021: the national figure of that year.
        (2021, 2021, "national_average/2021", "0.5568"),
        # Not yet published: the nearest earlier year.
        (2026, 2023, "regional_2023/华东", "0.55"),
        (2024, 2023, "regional_2023/华东", "0.55"),
        # Before anything published: the earliest year.
        (2015, 2021, "national_average/2021", "0.5568"),
    ],
)
def test_location_factor_year_rule(year: int, used: int, source: str, value: str) -> None:
    factor = packaged_factor_table().location_factor(GridRegion.EAST, year)
    assert (factor.year, factor.requested_year, factor.source) == (used, year, source)
    assert factor.value == Decimal(value)
    assert factor.substituted is (used != year)


@pytest.mark.parametrize(
    ("year", "used", "value"),
    [
        (2023, 2023, "0.6096"),
        (2022, 2022, "0.5856"),
        (2030, 2023, "0.6096"),
        (2021, 2022, "0.5856"),
    ],
)
def test_residual_factor_year_rule(year: int, used: int, value: str) -> None:
    factor = packaged_factor_table().residual_factor(year)
    assert factor.year == used and factor.value == Decimal(value)
    assert factor.source == f"national_average_excluding_market_traded_non_fossil/{used}"


def test_every_region_maps_to_its_announced_name() -> None:
    table = packaged_factor_table()
    expected = {
        GridRegion.NORTH: "华北",
        GridRegion.NORTHEAST: "东北",
        GridRegion.EAST: "华东",
        GridRegion.CENTRAL: "华中",
        GridRegion.NORTHWEST: "西北",
        GridRegion.SOUTH: "南方",
        GridRegion.SOUTHWEST: "西南",
    }
    assert dict(REGION_NAMES) == expected
    for region, name in expected.items():
        assert table.location_factor(region, 2023).source == f"regional_2023/{name}"


def _write(tmp_path: Path, document: object, name: str = "factors.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path


def test_a_configured_file_replaces_the_packaged_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bare inner object is accepted as well as the full document.
    custom = _write(
        tmp_path,
        {
            "national_average": {"2024": 0.5},
            "national_average_excluding_market_traded_non_fossil": {"2024": 0.6},
            "regional_2024": {"华东": 0.45},
            "provenance": "test",
        },
    )
    monkeypatch.setenv("CARBONLEDGER_GRID_FACTORS_FILE", str(custom))
    table = configured_factor_table()
    assert table.source == str(custom)
    east = table.location_factor(GridRegion.EAST, 2026)
    assert (east.value, east.year, east.source) == (Decimal("0.45"), 2024, "regional_2024/华东")
    # A region missing from a partial regional table uses that year's national figure.
    north = table.location_factor(GridRegion.NORTH, 2024)
    assert (north.value, north.source) == (Decimal("0.5"), "national_average/2024")
    # An explicit path wins over the setting.
    assert configured_factor_table(PACKAGED).national[2021] == Decimal("0.5568")
    monkeypatch.delenv("CARBONLEDGER_GRID_FACTORS_FILE")
    assert configured_factor_table() is packaged_factor_table()


BASE = {
    "national_average": {"2023": 0.5},
    "national_average_excluding_market_traded_non_fossil": {"2023": 0.6},
}


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ([1, 2], "not a factor table"),
        ({"national_average": {"2023": 0.5}}, "excluding_market_traded"),
        ({**BASE, "national_average": {}}, "non-empty"),
        ({**BASE, "national_average": {"23": 0.5}}, "not a year"),
        ({**BASE, "national_average": {"2023": 1}}, "decimal number"),
        ({**BASE, "national_average": {"2023": "0.5"}}, "decimal number"),
        ({**BASE, "national_average": {"2023": 0.0}}, "outside"),
        ({**BASE, "national_average": {"2023": 550.0}}, "outside"),
        ({**BASE, "regional_2023": {"华东": 0.5, "Huadong": 0.5}}, "unknown region"),
        # A partial regional table needs a national figure of its year for the other regions.
        ({**BASE, "regional_2022": {"华东": 0.5}}, "covers 1 of 7"),
        ({**BASE, "regional_20x3": {"华东": 0.5}}, "not a year"),
    ],
)
def test_bad_tables_are_refused_with_the_place(document: object, fragment: str) -> None:
    with pytest.raises(FactorTableError, match=fragment):
        parse_factor_text(json.dumps(document, ensure_ascii=False), "test.json")


def test_bad_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FactorTableError, match="cannot read"):
        load_factor_table(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    with pytest.raises(FactorTableError, match="not JSON"):
        load_factor_table(broken)
    huge = tmp_path / "huge.json"
    huge.write_bytes(b" " * (MAX_FACTOR_FILE_BYTES + 1))
    with pytest.raises(FactorTableError, match="larger than"):
        load_factor_table(huge)
