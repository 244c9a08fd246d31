"""Files of a matching report (`ledger.certificates.matching`): the hourly CSV and the PNG chart.

CSV (UTF-8, comma-separated, header row, one row per UTC hour of the period, in order):

    hour_utc,regions,consumption_wh,supply_wh,matched_wh,unmatched_wh,cfe
    2026-01-01T00:00:00Z,east;south,1500,1200,500,1000,0.333333

`regions` lists the grid regions with consumption or supply that hour (`;`-separated, empty
when none); energy is integer Wh; `cfe` is that hour's matched / consumption as a fraction
with six decimals, empty when the hour has no consumption. Column sums equal the report's
totals.

Chart (PNG, `CHART_WIDTH_PX` x `CHART_HEIGHT_PX`): the top panel shows hourly consumption and
matched green supply as step lines (the gap between them is the unmatched consumption); below,
daily totals of consumption, retired supply and matched energy, which stay readable for a whole
year where 8,760 hourly steps blur, and the mean day (per UTC hour of day), which shows which
hours certificates leave uncovered. The title gives the CFE score and the annual volume match.
Drawn on a bare `Figure` with the Agg canvas: no pyplot state, no display, safe in threads.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ledger.certificates.matching import HOURLY_COLUMNS, percent
from ledger.times import format_utc

if TYPE_CHECKING:
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


def write_chart(report: MatchingReport, path: Path) -> None:
    """Write the PNG chart (layout in the module docstring)."""
    # Deferred: matplotlib is slow to import and only the chart needs it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    hourly = report.hourly
    daily = hourly[["consumption_wh", "supply_wh", "matched_wh"]].resample("1D").sum()
    hour_scale, hour_unit = _unit(int(hourly[["consumption_wh", "matched_wh"]].to_numpy().max()))
    day_scale, day_unit = _unit(int(daily.to_numpy().max()))

    profile = hourly[["consumption_wh", "matched_wh"]].groupby(_hours(hourly).hour).mean()

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
    hours = _hours(hourly).to_pydatetime()
    consumption = hourly["consumption_wh"].to_numpy() / hour_scale
    matched = hourly["matched_wh"].to_numpy() / hour_scale
    top.fill_between(hours, matched, step="post", color="#2ca02c", alpha=0.35, linewidth=0)
    top.step(hours, consumption, where="post", color="#444444", linewidth=0.7, label="consumption")
    top.step(
        hours, matched, where="post", color="#2ca02c", linewidth=0.7, label="matched green supply"
    )
    top.set_ylabel(f"{hour_unit} per hour")
    top.set_ylim(bottom=0)
    top.legend(loc="upper right")
    top.grid(alpha=0.3)

    days = _hours(daily).to_pydatetime()
    for column, label, colour in (
        ("consumption_wh", "consumption", "#444444"),
        ("supply_wh", "retired supply", "#1f77b4"),
        ("matched_wh", "matched", "#2ca02c"),
    ):
        # Markers: a report of a single day is one point, which a bare line would not show.
        bottom.plot(
            days,
            daily[column].to_numpy() / day_scale,
            label=label,
            color=colour,
            linewidth=1.2,
            marker="o",
            markersize=3 if len(days) <= 62 else 0,
        )
    if len(days) == 1:
        bottom.set_xlim(days[0] - timedelta(days=1), days[0] + timedelta(days=1))
    bottom.set_ylabel(f"{day_unit} per day (UTC)")
    bottom.set_ylim(bottom=0)
    bottom.legend(loc="upper right")
    bottom.grid(alpha=0.3)

    # The mean day shows at a glance which hours certificates do not cover (nights, for solar).
    day.bar(
        profile.index,
        profile["consumption_wh"].to_numpy() / hour_scale,
        color="#bbbbbb",
        label="consumption",
    )
    day.bar(
        profile.index,
        profile["matched_wh"].to_numpy() / hour_scale,
        color="#2ca02c",
        label="matched",
    )
    day.set_xlabel("hour of day (UTC)")
    day.set_ylabel(f"mean {hour_unit} per hour")
    day.set_xticks(range(0, 24, 3))
    day.legend(loc="upper right")
    day.grid(alpha=0.3, axis="y")

    scope = "same region" if report.same_region else "all regions pooled"
    figure.suptitle(
        f"24/7 matching {format_utc(report.start)} to {format_utc(report.end)} ({scope})\n"
        f"hourly CFE score {_share(percent(report.cfe_score))}, "
        f"annual volume match {_share(percent(report.volume_match))}"
    )
    # No bbox_inches="tight": it would change the pixel size the docstring promises.
    figure.savefig(path, format="png", dpi=CHART_DPI)
