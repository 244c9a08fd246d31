"""Files of a matching report (`ledger.certificates.matching`): the hourly CSV and the PNG chart.

CSV (UTF-8, comma-separated, header row, one row per UTC hour of the period, in order):

    hour_utc,regions,consumption_wh,supply_wh,matched_wh,unmatched_wh,cfe
    2026-01-01T00:00:00Z,east;south,1500,1200,500,1000,0.333333

`regions` lists the grid regions with consumption or supply that hour (`;`-separated, empty
when none); energy is integer Wh; `cfe` is that hour's matched / consumption as a fraction
with six decimals, empty when the hour has no consumption. Column sums equal the report's
totals.

Chart (PNG, `CHART_WIDTH_PX` x `CHART_HEIGHT_PX`), for people, so in the registry's local time
zone (`CARBONLEDGER_TIMEZONE`, named on every time axis as e.g. "local time (Asia/Shanghai,
UTC+8)"): the top panel shows hourly consumption and matched green supply as step lines (the
gap between them is the unmatched consumption); below, totals per local calendar day of
consumption, retired supply and matched energy, which stay readable for a whole year where
8,760 hourly steps blur (a day the period covers only in part has a hollow marker), and the
mean day per local hour, which shows which hours certificates leave uncovered (for solar: the
evening). The title states the real span ("14 days", "calendar year 2026"), the hourly CFE
score and the volume match, called "annual" only for a calendar year and "period" otherwise,
and the report's totals: consumption, retired supply (Wh and GEC) and the location- and
market-based emissions, each spelled exactly as in the report's JSON. The chart's texts are
English only: its font (matplotlib's DejaVu Sans, present everywhere) has no CJK glyphs.
Drawn on a bare `Figure` with the Agg canvas: no pyplot state, no display, safe in threads.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pandas as pd

from ledger.certificates.matching import HOURLY_COLUMNS, percent
from ledger.certificates.rules import gec_text
from ledger.settings import DEFAULT_TIMEZONE

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ledger.certificates.matching import MatchingReport

CSV_COLUMNS = ("hour_utc", *HOURLY_COLUMNS, "cfe")
CHART_WIDTH_PX = 1400
CHART_HEIGHT_PX = 900
CHART_DPI = 100
_UNITS = ((10**9, "GWh"), (10**6, "MWh"), (10**3, "kWh"), (1, "Wh"))


def hourly_table(report: MatchingReport) -> pd.DataFrame:
    """The CSV's rows as a DataFrame (column names as in `CSV_COLUMNS`)."""
    frame = report.hourly.loc[:, list(HOURLY_COLUMNS)].copy()
    consumption = frame["consumption_wh"]
    cfe = (frame["matched_wh"] / consumption.where(consumption > 0)).round(6)
    frame["cfe"] = cfe
    frame.insert(0, "hour_utc", _hours(report.hourly).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return frame.reset_index(drop=True)


def _hours(frame: pd.DataFrame) -> pd.DatetimeIndex:
    index = frame.index
    assert isinstance(index, pd.DatetimeIndex), "reports and resampling keep a DatetimeIndex"
    return index


def write_csv(report: MatchingReport, path: Path) -> None:
    """Write the hourly CSV (format in the module docstring)."""
    hourly_table(report).to_csv(
        path, index=False, float_format="%.6f", lineterminator="\n", encoding="utf-8"
    )


def _unit(largest: int) -> tuple[int, str]:
    for scale, name in _UNITS:
        if largest >= scale:
            return scale, name
    return 1, "Wh"


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} %"


# ------------------------------------------------------------------ time and span words


def _local(seconds: int, zone: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(seconds, UTC).astimezone(zone)


def _offset_text(offset: timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


def zone_label(zone: ZoneInfo, start: int, end: int) -> str:
    """`Asia/Shanghai, UTC+8`; every offset the period sees (`Europe/Berlin, UTC+1/UTC+2`)."""
    offsets: list[timedelta] = []
    # Offsets change on the hour in every zone with whole-hour periods: hourly samples suffice.
    for moment in range(start, max(end, start + 1), 3600):
        offset = _local(moment, zone).utcoffset()
        assert offset is not None
        if offset not in offsets:
            offsets.append(offset)
    return f"{zone.key}, " + "/".join(_offset_text(offset) for offset in offsets)


def is_calendar_year(start: int, end: int, zone: ZoneInfo) -> bool:
    """1 January 00:00 to the next 1 January 00:00, in `zone` or in UTC (the report's own)."""
    for tz in (zone, UTC):
        first, last = _local(start, zone).astimezone(tz), _local(end, zone).astimezone(tz)
        starts_year = (first.month, first.day, first.hour, first.minute) == (1, 1, 0, 0)
        ends_year = (last.month, last.day, last.hour, last.minute) == (1, 1, 0, 0)
        if starts_year and ends_year and last.year == first.year + 1:
            return True
    return False


def span_text(start: int, end: int, zone: ZoneInfo) -> str:
    """The span in words: `calendar year 2026`, `14 days`, `1 day`, `36 hours`."""
    if is_calendar_year(start, end, zone):
        return f"calendar year {_local(start, zone).year}"
    hours = (end - start) // 3600
    if hours % 24 == 0:
        days = hours // 24
        return f"{days} day{'' if days == 1 else 's'}"
    return f"{hours} hour{'' if hours == 1 else 's'}"


def volume_match_label(start: int, end: int, zone: ZoneInfo) -> str:
    """`annual volume match` for a calendar year only; `period volume match` otherwise."""
    return f"{'annual' if is_calendar_year(start, end, zone) else 'period'} volume match"


def chart_title(report: MatchingReport, zone: ZoneInfo) -> str:
    """The chart's four title lines: span and scope; scores; energy totals; emissions."""
    scope = "same region" if report.same_region else "all regions pooled"
    moment = "%Y-%m-%d %H:%M"
    body = report.to_json()
    emissions = body["emissions"]
    return (
        f"24/7 matching, {span_text(report.start, report.end, zone)}: "
        f"{_local(report.start, zone):{moment}} to {_local(report.end, zone):{moment}} "
        f"local time ({zone_label(zone, report.start, report.end)}), {scope}\n"
        f"hourly CFE score {_share(percent(report.cfe_score))}, "
        f"{volume_match_label(report.start, report.end, zone)} "
        f"{_share(percent(report.volume_match))}\n"
        f"consumption {report.consumption_wh:,} Wh, retired supply {report.supply_wh:,} Wh "
        f"({gec_text(report.supply_wh)} GEC), matched {report.matched_wh:,} Wh\n"
        f"Scope 2 emissions: location-based {emissions['locationBased']} kg CO2; "
        f"market-based {emissions['marketBased']} kg CO2 (hourly matching), "
        f"{emissions['marketBasedVolume']} kg CO2 (volume basis)"
    )


# ----------------------------------------------------------------------------- chart


def chart_figure(report: MatchingReport, zone: ZoneInfo | None = None) -> Figure:
    """The chart as a matplotlib `Figure` (layout in the module docstring)."""
    # Deferred: matplotlib is slow to import and only the chart needs it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    zone = zone or ZoneInfo(DEFAULT_TIMEZONE)
    label = zone_label(zone, report.start, report.end)
    hourly = report.hourly.tz_convert(zone)
    hour_scale, hour_unit = _unit(int(hourly[["consumption_wh", "matched_wh"]].to_numpy().max()))

    figure = Figure(
        figsize=(CHART_WIDTH_PX / CHART_DPI, CHART_HEIGHT_PX / CHART_DPI),
        dpi=CHART_DPI,
        layout="constrained",
    )
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(2, 3, height_ratios=(3, 2))
    top = figure.add_subplot(grid[0, :])
    bottom = figure.add_subplot(grid[1, :2])
    day = figure.add_subplot(grid[1, 2])
    for axis in (top, bottom):
        # Ticks and their labels in the zone: matplotlib's own default would be UTC.
        # (matplotlib ships these two without annotations.)
        locator = AutoDateLocator(tz=zone)  # type: ignore[no-untyped-call]
        formatter = ConciseDateFormatter(locator, tz=zone, show_offset=False)  # type: ignore[no-untyped-call]
        axis.xaxis.set_major_locator(locator)
        axis.xaxis.set_major_formatter(formatter)
    _hourly_panel(top, hourly, hour_scale, hour_unit)
    top.set_xlabel(f"local time ({label})")
    _daily_panel(bottom, hourly, label)
    _mean_day_panel(day, hourly, hour_scale, hour_unit)
    day.set_xlabel(f"hour of day, local time ({label})")
    figure.suptitle(chart_title(report, zone))
    return figure


def _hourly_panel(axis: Axes, hourly: pd.DataFrame, scale: int, unit: str) -> None:
    hours = _hours(hourly).to_pydatetime()
    consumption = hourly["consumption_wh"].to_numpy() / scale
    matched = hourly["matched_wh"].to_numpy() / scale
    axis.fill_between(hours, matched, step="post", color="#2ca02c", alpha=0.35, linewidth=0)
    axis.step(hours, consumption, where="post", color="#444444", linewidth=0.7, label="consumption")
    axis.step(
        hours, matched, where="post", color="#2ca02c", linewidth=0.7, label="matched green supply"
    )
    axis.set_ylabel(f"{unit} per hour")
    axis.set_ylim(bottom=0)
    axis.legend(loc="upper right")
    axis.grid(alpha=0.3)


def _daily_panel(axis: Axes, hourly: pd.DataFrame, label: str) -> None:
    """Totals per local calendar day; hollow markers for days the period covers in part."""
    daily = hourly[["consumption_wh", "supply_wh", "matched_wh"]].resample("1D").sum()
    hours_per_day = hourly["consumption_wh"].resample("1D").size().to_numpy()
    day_starts = _hours(daily)
    # The period's first and last local days are partial unless it runs from midnight to
    # midnight locally; DST days have 23 or 25 hours, hence the calendar offset.
    partial = [
        int(hours) != ((start + pd.DateOffset(days=1)) - start) // pd.Timedelta(hours=1)
        for start, hours in zip(day_starts, hours_per_day, strict=True)
    ]
    scale, unit = _unit(int(daily.to_numpy().max()))
    days = day_starts.to_pydatetime()
    for column, name, colour in (
        ("consumption_wh", "consumption", "#444444"),
        ("supply_wh", "retired supply", "#1f77b4"),
        ("matched_wh", "matched", "#2ca02c"),
    ):
        values = daily[column].to_numpy() / scale
        axis.plot(days, values, label=name, color=colour, linewidth=1.2)
        # Markers: a report of a single day is one point, which a bare line would not show;
        # past two months they would only blur the line (partial days keep theirs).
        for hollow in (False, True):
            chosen = [i for i, flag in enumerate(partial) if flag is hollow]
            if chosen and (hollow or len(days) <= 62):
                axis.plot(
                    [days[i] for i in chosen],
                    values[chosen],
                    linestyle="none",
                    marker="o",
                    markersize=4 if hollow else 3,
                    color=colour,
                    markerfacecolor="white" if hollow else colour,
                )
    if len(days) == 1:
        axis.set_xlim(days[0] - timedelta(days=1), days[0] + timedelta(days=1))
    axis.set_ylabel(f"{unit} per day")
    note = "; hollow marker: a day only partly in the period" if any(partial) else ""
    axis.set_xlabel(f"local calendar day ({label}){note}")
    axis.set_ylim(bottom=0)
    axis.legend(loc="upper right")
    axis.grid(alpha=0.3)


def _mean_day_panel(axis: Axes, hourly: pd.DataFrame, scale: int, unit: str) -> None:
    """The mean day shows at a glance which hours certificates do not cover (for solar: the
    evening)."""
    profile = hourly[["consumption_wh", "matched_wh"]].groupby(_hours(hourly).hour).mean()
    axis.bar(
        profile.index,
        profile["consumption_wh"].to_numpy() / scale,
        color="#bbbbbb",
        label="consumption",
    )
    axis.bar(
        profile.index, profile["matched_wh"].to_numpy() / scale, color="#2ca02c", label="matched"
    )
    axis.set_ylabel(f"mean {unit} per hour")
    axis.set_xticks(range(0, 24, 3))
    axis.set_xlim(-0.6, 23.6)
    axis.legend(loc="upper right")
    axis.grid(alpha=0.3, axis="y")


def write_chart(report: MatchingReport, path: Path, zone: ZoneInfo | None = None) -> None:
    """Write the PNG chart in `zone` (default Asia/Shanghai; layout in the module docstring)."""
    # No bbox_inches="tight": it would change the pixel size the docstring promises.
    chart_figure(report, zone).savefig(path, format="png", dpi=CHART_DPI)
