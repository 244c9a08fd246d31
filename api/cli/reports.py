"""`carbonledger report matching`: the 24/7 matching report as CSV, PNG chart and summary.

pandas and matplotlib are imported inside the command: they would otherwise slow every
`carbonledger` start by a second.

Files, in `--out DIR` (created if missing; existing files of the same name are replaced):

    matching-<organisation id>-<from>-<to>.csv   hourly rows (format: api.report_files)
    matching-<organisation id>-<from>-<to>.png   the chart
    matching-<organisation id>-<from>-<to>.json  with --json only: the report's JSON

with <from>/<to> as `20260101T00Z`. Exit codes as everywhere: 0 done, 2 usage (bad period,
unknown organisation, unusable factor file, unwritable directory), 3 registry unavailable.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from api.cli.common import (
    api_settings,
    command_group,
    fail,
    open_registry,
    organisation_named,
    stdout_console,
    utc_option,
)

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from ledger.certificates.matching import MatchingReport

report_app = command_group("Reports: 24/7 matching and Scope 2 emissions.")


def _stamp(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y%m%dT%HZ")


def file_stem(organisation_id: str, start: int, end: int) -> str:
    """`matching-<org>-<from>-<to>`; ids are UUIDs, anything else is made file-name safe."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", organisation_id)
    return f"matching-{safe}-{_stamp(start)}-{_stamp(end)}"


@report_app.command("matching")
def matching_command(
    ctx: typer.Context,
    *,
    organisation: Annotated[
        str,
        typer.Option(
            "--organisation",
            metavar="ORG",
            help="Organisation id (or name) whose consumption and retirements are matched.",
            show_default=False,
        ),
    ],
    from_text: Annotated[
        str,
        typer.Option(
            "--from",
            metavar="TIME",
            help="Start, a whole UTC hour: 2026-01-01T00:00:00Z.",
            show_default=False,
        ),
    ],
    to_text: Annotated[
        str,
        typer.Option(
            "--to",
            metavar="TIME",
            help="End (exclusive), a whole UTC hour; at most 8,784 hours after --from.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            metavar="DIR",
            help="Directory for the CSV and PNG (created if missing).",
            show_default=False,
            file_okay=False,
        ),
    ],
    same_region: Annotated[
        bool,
        typer.Option(
            "--same-region", help="Match only consumption and certificates of the same grid region."
        ),
    ] = False,
    factors_file: Annotated[
        Path | None,
        typer.Option(
            "--factors",
            metavar="FILE",
            help="Grid factor table (default CARBONLEDGER_GRID_FACTORS_FILE, else packaged).",
            show_default=False,
            dir_okay=False,
        ),
    ] = None,
    json_output: Annotated[
        bool,
        typer.Option("--json", help="Print the report JSON on stdout (and write it to DIR)."),
    ] = False,
) -> None:
    """Match hourly consumption against certificates retired for the organisation.

    Writes the hourly CSV (UTC hours) and a chart (consumption vs matched green supply, in
    CARBONLEDGER_TIMEZONE, default Asia/Shanghai) to DIR and prints the hourly CFE score, the
    volume match, location- and market-based emissions and GEC equivalents (1 GEC = 1 MWh).
    """
    from api.report_files import write_chart, write_csv  # pandas, matplotlib
    from ledger.certificates.matching import (
        MatchingRequestError,
        check_period,
        matching_report,
    )
    from ledger.factors.grid import FactorTableError, configured_factor_table

    start, end = utc_option(from_text, "--from"), utc_option(to_text, "--to")
    # Input mistakes first: they must not wait for, or depend on, the registry.
    try:
        check_period(start, end)
        factors = configured_factor_table(factors_file)
    except (MatchingRequestError, FactorTableError) as exc:
        fail(str(exc))
    settings = api_settings(ctx)
    with open_registry(settings) as registry:
        organisation_id = organisation_named(registry.database, organisation)
        try:
            report = matching_report(
                registry.database,
                organisation_id,
                start,
                end,
                same_region=same_region,
                factors=factors,
            )
        except MatchingRequestError as exc:
            fail(str(exc))
    stem = file_stem(organisation_id, start, end)
    try:
        out.mkdir(parents=True, exist_ok=True)
        csv_path, png_path = out / f"{stem}.csv", out / f"{stem}.png"
        write_csv(report, csv_path)
        write_chart(report, png_path, settings.zone())
        if json_output:
            body = json.dumps(report.to_json(), ensure_ascii=False)
            (out / f"{stem}.json").write_text(body + "\n", encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write to {out}: {exc.strerror or exc}")
    if json_output:
        print(body)
        return
    print_summary(report, csv_path, png_path, settings.zone())


def print_summary(report: MatchingReport, csv_path: Path, png_path: Path, zone: ZoneInfo) -> None:
    from rich.table import Table
    from rich.text import Text

    from api.report_files import volume_match_label
    from ledger.certificates.matching import kg_text, percent
    from ledger.certificates.rules import gec_text

    body = report.to_json()
    console = stdout_console()

    def share(value: float | None) -> str:
        return "n/a (no consumption)" if value is None else f"{value:.2f} %"

    console.print(
        Text(
            f"24/7 matching {body['from']} to {body['to']} "
            f"({'same region' if report.same_region else 'regions pooled'})",
            style="bold green",
        )
    )
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("")
    table.add_column("Wh", justify="right")
    table.add_column("GEC", justify="right")
    for label, wh in (
        ("consumption", report.consumption_wh),
        ("retired supply", report.supply_wh),
        ("matched hourly", report.matched_wh),
        ("unmatched", report.unmatched_wh),
    ):
        table.add_row(label, f"{wh:,}", gec_text(wh))
    console.print(table)
    console.print(f"  hourly CFE score     {share(percent(report.cfe_score))}")
    volume = volume_match_label(report.start, report.end, zone)
    console.print(f"  {volume:<19}  {share(percent(report.volume_match))}")
    console.print(f"  location-based       {kg_text(report.location_based_kg)} kg CO2")
    console.print(f"  market-based         {kg_text(report.market_based_kg)} kg CO2 (hourly)")
    console.print(
        f"                       {kg_text(report.market_based_volume_kg)} kg CO2 (volume basis)"
    )
    substituted = sorted(
        {
            f"{factor.requested_year}->{factor.year}"
            for factor in [line.factor for line in report.location]
            + [line.factor for line in report.residual]
            if factor.substituted
        }
    )
    if substituted:
        console.print(
            Text(
                f"  factors of earlier years stand in ({', '.join(substituted)}); "
                f"table: {body['factors']['table']}",
                style="dim",
            )
        )
    console.print(f"  csv    {csv_path}")
    console.print(f"  chart  {png_path}")
