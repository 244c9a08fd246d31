"""The hourly CSV and the PNG chart of a matching report."""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from api.report_files import CHART_HEIGHT_PX, CHART_WIDTH_PX, CSV_COLUMNS, write_chart, write_csv
from ledger.certificates.matching import MatchingReport, compute_matching
from ledger.factors.grid import packaged_factor_table
from ledger.meters.entries import GridRegion

H = 3600
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
YEAR_START = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())


def _year_report() -> MatchingReport:
    """A year of a flat load against solar-shaped certificates, in two regions."""
    consumption, supply = {}, {}
    for hour in range(8760):
        at = YEAR_START + hour * H
        consumption[GridRegion.EAST, at] = 5_000_000 + (hour % 24) * 10_000
        consumption[GridRegion.SOUTH, at] = 1_000_000
        if 6 <= hour % 24 < 18:
            supply[GridRegion.EAST, at] = 8_000_000 - abs(12 - hour % 24) * 1_000_000
    return compute_matching(
        consumption,
        supply,
        start=YEAR_START,
        end=YEAR_START + 8760 * H,
        same_region=True,
        factors=packaged_factor_table(),
        organisation_id="org",
    )


def _read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"regions": "string"}, keep_default_na=False, na_values=[""])


def test_year_csv_reads_back_to_the_totals(tmp_path: Path) -> None:
    report = _year_report()
    path = tmp_path / "year.csv"
    write_csv(report, path)
    table = _read_csv(path)
    assert tuple(table.columns) == CSV_COLUMNS
    assert len(table) == 8760
    assert table["hour_utc"].iloc[0] == "2026-01-01T00:00:00Z"
    assert table["hour_utc"].iloc[-1] == "2026-12-31T23:00:00Z"
    assert int(table["consumption_wh"].sum()) == report.consumption_wh
    assert int(table["supply_wh"].sum()) == report.supply_wh
    assert int(table["matched_wh"].sum()) == report.matched_wh
    assert int(table["unmatched_wh"].sum()) == report.unmatched_wh
    assert set(table["regions"]) == {"east;south"}
    assert table["cfe"].between(0, 1).all()


@settings(max_examples=25, deadline=None)
@given(
    cells=st.dictionaries(
        st.tuples(st.sampled_from(list(GridRegion)), st.integers(0, 47)),
        st.integers(0, 10**12),
        max_size=30,
    ),
    supply=st.dictionaries(
        st.tuples(st.sampled_from(list(GridRegion)), st.integers(0, 47)),
        st.integers(0, 10**12),
        max_size=30,
    ),
)
def test_csv_sums_equal_the_report_for_any_input(
    tmp_path_factory: object,
    cells: dict[tuple[GridRegion, int], int],
    supply: dict[tuple[GridRegion, int], int],
) -> None:
    def energy(items: dict[tuple[GridRegion, int], int]) -> dict[tuple[GridRegion, int], int]:
        return {(region, YEAR_START + k * H): wh for (region, k), wh in items.items()}

    report = compute_matching(
        energy(cells),
        energy(supply),
        start=YEAR_START,
        end=YEAR_START + 48 * H,
        same_region=False,
        factors=packaged_factor_table(),
    )
    path = tmp_path_factory.mktemp("csv") / "report.csv"  # type: ignore[attr-defined]
    write_csv(report, path)
    table = _read_csv(path)
    assert len(table) == 48
    for column, total in (
        ("consumption_wh", report.consumption_wh),
        ("supply_wh", report.supply_wh),
        ("matched_wh", report.matched_wh),
        ("unmatched_wh", report.unmatched_wh),
    ):
        assert int(table[column].sum()) == total
    # Hours without consumption have no CFE value, the others one in [0, 1].
    assert table["cfe"].isna().tolist() == (table["consumption_wh"] == 0).tolist()


def test_chart_is_a_png_of_the_promised_size(tmp_path: Path) -> None:
    path = tmp_path / "year.png"
    write_chart(_year_report(), path)
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    # IHDR is the first chunk: length, b"IHDR", width, height (big-endian).
    assert data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (CHART_WIDTH_PX, CHART_HEIGHT_PX)


def test_chart_of_an_empty_report(tmp_path: Path) -> None:
    empty = compute_matching(
        {},
        {},
        start=YEAR_START,
        end=YEAR_START + 2 * H,
        same_region=True,
        factors=packaged_factor_table(),
    )
    path = tmp_path / "empty.png"
    write_chart(empty, path)
    assert path.read_bytes().startswith(PNG_SIGNATURE)
