"""The hourly CSV and the PNG chart of a matching report."""

from __future__ import annotations

import re
import struct
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.dates import num2date
from matplotlib.figure import Figure
from matplotlib.font_manager import findfont
from matplotlib.ft2font import FT2Font
from matplotlib.text import Text

from api.report_files import (
    CHART_HEIGHT_PX,
    CHART_WIDTH_PX,
    CSV_COLUMNS,
    chart_figure,
    chart_title,
    span_text,
    volume_match_label,
    write_chart,
    write_csv,
    zone_label,
)
from ledger.certificates.matching import MatchingReport, compute_matching, percent
from ledger.certificates.rules import gec_text
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


# ------------------------------------------------------------ the chart, for people

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _report(
    consumption: dict[tuple[GridRegion, int], int],
    supply: dict[tuple[GridRegion, int], int],
    start: int,
    hours: int,
) -> MatchingReport:
    return compute_matching(
        consumption,
        supply,
        start=start,
        end=start + hours * H,
        same_region=False,
        factors=packaged_factor_table(),
        organisation_id="org",
    )


def _flat(start: int, hours: int, wh: int) -> dict[tuple[GridRegion, int], int]:
    return {(GridRegion.EAST, start + n * H): wh for n in range(hours)}


def _texts(figure: Figure) -> list[str]:
    figure.canvas.draw()  # tick labels exist once drawn
    return [text.get_text() for text in figure.findobj(Text) if text.get_text()]


def test_time_axes_name_the_zone_and_its_offset() -> None:
    figure = chart_figure(_report(_flat(YEAR_START, 48, 1_000), {}, YEAR_START, 48), SHANGHAI)
    hourly, daily, mean_day = figure.axes
    assert hourly.get_xlabel() == "local time (Asia/Shanghai, UTC+8)"
    assert daily.get_xlabel().startswith("local calendar day (Asia/Shanghai, UTC+8)")
    assert mean_day.get_xlabel() == "hour of day, local time (Asia/Shanghai, UTC+8)"
    assert not any("UTC)" in text for text in _texts(figure)), "no axis may still claim UTC"


@pytest.mark.parametrize(
    ("zone", "start", "hours", "label"),
    [
        ("Asia/Shanghai", YEAR_START, 24, "Asia/Shanghai, UTC+8"),
        ("UTC", YEAR_START, 24, "UTC, UTC+0"),
        ("Asia/Kolkata", YEAR_START, 24, "Asia/Kolkata, UTC+5:30"),
        ("America/New_York", YEAR_START, 24, "America/New_York, UTC-5"),
        # 2026-03-29 01:00 UTC: central Europe moves from UTC+1 to UTC+2 within the period.
        ("Europe/Berlin", YEAR_START + (31 + 28 + 27) * 24 * H, 72, "Europe/Berlin, UTC+1/UTC+2"),
    ],
)
def test_zone_label(zone: str, start: int, hours: int, label: str) -> None:
    assert zone_label(ZoneInfo(zone), start, start + hours * H) == label


def test_a_known_utc_hour_lands_on_its_local_hour() -> None:
    # Consumption only in the hour 02:00-03:00 UTC of 1 January = 10:00-11:00 in Shanghai.
    at = YEAR_START + 2 * H
    report = _report({(GridRegion.EAST, at): 5_000}, {}, YEAR_START, 24)
    for zone, local_hour in ((SHANGHAI, 10), (ZoneInfo("UTC"), 2), (ZoneInfo("Asia/Kolkata"), 7)):
        hourly, _, mean_day = chart_figure(report, zone).axes
        consumption_bars = mean_day.containers[0]  # drawn first; "matched" lies over it
        heights = {
            round(bar.get_x() + bar.get_width() / 2): bar.get_height() for bar in consumption_bars
        }
        assert {hour for hour, height in heights.items() if height > 0} == {local_hour}, zone
        line = next(line for line in hourly.get_lines() if line.get_label() == "consumption")
        x, y = (list(values) for values in line.get_data())
        peak = x[y.index(max(y))].astimezone(zone)  # the plotted moment, zone-aware
        assert (peak.hour, peak.date().isoformat()) == (local_hour, "2026-01-01"), zone


def test_date_ticks_fall_on_local_midnights() -> None:
    report = _report(_flat(YEAR_START, 14 * 24, 1_000), {}, YEAR_START, 14 * 24)
    figure = chart_figure(report, SHANGHAI)
    figure.canvas.draw()
    for axis in figure.axes[:2]:
        ticks = [num2date(tick, tz=SHANGHAI) for tick in axis.get_xticks()]
        assert ticks and all((t.hour, t.minute) == (0, 0) for t in ticks), ticks
    # In UTC the same period's day ticks would sit at 16:00 of the local day before.
    assert all(num2date(tick).hour == 16 for tick in figure.axes[0].get_xticks())


def test_days_are_local_calendar_days_and_sum_to_the_report() -> None:
    # 48 UTC hours from 00:00Z are 08:00 on day one to 08:00 on day three in Shanghai:
    # 16 hours, 24 hours, 8 hours; the first and last day are drawn hollow.
    report = _report(_flat(YEAR_START, 48, 1_000), {}, YEAR_START, 48)
    _, daily, _ = chart_figure(report, SHANGHAI).axes
    full = next(line for line in daily.get_lines() if line.get_label() == "consumption")
    kwh = [round(value, 6) for value in full.get_ydata()]  # type: ignore[union-attr]
    assert kwh == [16.0, 24.0, 8.0]
    assert sum(kwh) * 1_000 == report.consumption_wh
    hollow = [
        line
        for line in daily.get_lines()
        if line.get_marker() == "o" and line.get_markerfacecolor() == "white"
    ]
    assert {len(line.get_xdata()) for line in hollow} == {2}  # type: ignore[arg-type]
    assert "partly in the period" in daily.get_xlabel()
    # Midnight to midnight locally: no partial day, no note.
    aligned = YEAR_START - 8 * H
    whole = _report(_flat(aligned, 48, 1_000), {}, aligned, 48)
    assert "partly" not in chart_figure(whole, SHANGHAI).axes[1].get_xlabel()


@pytest.mark.parametrize(
    ("start", "end", "zone", "span", "volume"),
    [
        (YEAR_START, YEAR_START + 14 * 24 * H, SHANGHAI, "14 days", "period volume match"),
        (YEAR_START, YEAR_START + 36 * H, SHANGHAI, "36 hours", "period volume match"),
        (YEAR_START, YEAR_START + 24 * H, SHANGHAI, "1 day", "period volume match"),
        # The calendar year in UTC (the report's own hours) and in the registry's zone.
        (
            YEAR_START,
            YEAR_START + 365 * 24 * H,
            SHANGHAI,
            "calendar year 2026",
            "annual volume match",
        ),
        (
            YEAR_START - 8 * H,
            YEAR_START + (365 * 24 - 8) * H,
            SHANGHAI,
            "calendar year 2026",
            "annual volume match",
        ),
        # A year's length is not a calendar year: Feb to Feb is "365 days".
        (
            YEAR_START + 31 * 24 * H,
            YEAR_START + (31 + 365) * 24 * H,
            SHANGHAI,
            "365 days",
            "period volume match",
        ),
        # Shanghai's calendar year seen from UTC+0 is not UTC's calendar year.
        (
            YEAR_START - 8 * H,
            YEAR_START + (365 * 24 - 8) * H,
            ZoneInfo("UTC"),
            "365 days",
            "period volume match",
        ),
    ],
)
def test_title_states_the_real_span(
    start: int, end: int, zone: ZoneInfo, span: str, volume: str
) -> None:
    assert span_text(start, end, zone) == span
    assert volume_match_label(start, end, zone) == volume
    report = compute_matching(
        {}, {}, start=start, end=end, same_region=True, factors=packaged_factor_table()
    )
    title = chart_title(report, zone)
    assert f"24/7 matching, {span}: " in title and volume in title
    assert ("annual" in title) is (volume == "annual volume match")


def test_numbers_on_the_chart_are_the_reports() -> None:
    consumption = _flat(YEAR_START, 14 * 24, 2_345)
    supply = {
        (GridRegion.EAST, YEAR_START + n * H): 7_000 for n in range(14 * 24) if 1 <= n % 24 < 9
    }
    report = _report(consumption, supply, YEAR_START, 14 * 24)
    figure = chart_figure(report, SHANGHAI)
    title = figure.get_suptitle()
    assert title == chart_title(report, SHANGHAI)

    def number(pattern: str) -> str:
        found = re.search(pattern, title)
        assert found is not None, (pattern, title)
        return found.group(1)

    # Against the inputs, not only against the report's own fields.
    assert int(number(r"retired supply ([0-9,]+) Wh").replace(",", "")) == sum(supply.values())
    assert number(r"retired supply [0-9,]+ Wh \(([0-9.]+) GEC\)") == gec_text(sum(supply.values()))
    assert int(number(r"consumption ([0-9,]+) Wh").replace(",", "")) == sum(consumption.values())
    assert int(number(r"matched ([0-9,]+) Wh").replace(",", "")) == report.matched_wh
    emissions = report.to_json()["emissions"]
    assert Decimal(number(r"location-based ([0-9.]+) kg CO2")) == Decimal(
        emissions["locationBased"]
    )
    assert Decimal(number(r"market-based ([0-9.]+) kg CO2 \(hourly")) == Decimal(
        emissions["marketBased"]
    )
    assert Decimal(number(r"([0-9.]+) kg CO2 \(volume basis\)")) == Decimal(
        emissions["marketBasedVolume"]
    )
    assert Decimal(emissions["locationBased"]) > 0 and Decimal(emissions["marketBased"]) > 0
    assert number(r"hourly CFE score ([0-9.]+) %") == f"{percent(report.cfe_score):.2f}"


def test_every_character_on_the_chart_has_a_glyph() -> None:
    """The chart is English only: its font has no CJK glyphs, which would render as boxes."""
    figure = chart_figure(_year_report(), SHANGHAI)
    figure.canvas.draw()
    for text in figure.findobj(Text):
        content = text.get_text()
        if not content:
            continue
        charmap = FT2Font(findfont(text.get_fontproperties())).get_charmap()
        missing = {char for char in content if char != "\n" and ord(char) not in charmap}
        assert not missing, (content, missing)
