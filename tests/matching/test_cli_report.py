"""`carbonledger report matching`, run in process with Typer's CliRunner."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import pytest
from matching_support import HOUR, START, consumption_meter, organisation, retired_certificate
from typer.testing import CliRunner, Result

from api.cli.main import app
from api.cli.reports import file_stem
from api.settings import ApiSettings
from ledger.certificates.matching import matching_report
from ledger.factors.grid import FactorSettings, packaged_factor_table
from ledger.meters.entries import GridRegion
from ledger.registry import Registry
from ledger.settings import LedgerSettings
from ledger.times import format_utc

FROM, TO = format_utc(START), format_utc(START + 24 * HOUR)
SETTING_VARIABLES = tuple(
    "CARBONLEDGER_" + name.upper()
    for name in (*ApiSettings.model_fields, *FactorSettings.model_fields)
)


def _env(settings: LedgerSettings, database_url: str) -> dict[str, str | None]:
    env: dict[str, str | None] = dict.fromkeys(SETTING_VARIABLES)
    env["CARBONLEDGER_DATA_DIR"] = str(settings.data_dir)
    env["CARBONLEDGER_DATABASE_URL"] = database_url
    return env


def _run(args: Sequence[str], env: Mapping[str, str | None]) -> Result:
    return CliRunner().invoke(app, ["report", "matching", *args], env=env)


def _one_error_line(result: Result, exit_code: int, fragment: str) -> None:
    assert result.exit_code == exit_code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0], lines[0]


@pytest.fixture
def buyer(registry: Registry) -> str:
    buyer = organisation(registry, "Buyer Co")
    producer = organisation(registry, "Producer Co")
    consumption_meter(registry, buyer, "load-1", GridRegion.EAST, [4_000] * 24)
    consumption_meter(registry, buyer, "load-2", GridRegion.NORTH, [1_000] * 24)
    for hour in range(8, 16):
        retired_certificate(
            registry,
            producer=producer,
            beneficiary=buyer,
            hour_start=START + hour * HOUR,
            wh=6_000,
            region=GridRegion.EAST,
        )
    return buyer


def test_writes_csv_and_chart_and_prints_a_summary(
    registry: Registry, settings: LedgerSettings, database_url: str, buyer: str, tmp_path: Path
) -> None:
    out = tmp_path / "reports" / "2026"
    result = _run(
        ["--organisation", buyer, "--from", FROM, "--to", TO, "--out", str(out)],
        _env(settings, database_url),
    )
    assert result.exit_code == 0, (result.stdout, result.stderr)
    stem = file_stem(buyer, START, START + 24 * HOUR)
    assert stem == f"matching-{buyer}-20260302T00Z-20260303T00Z"
    table = pd.read_csv(out / f"{stem}.csv")
    assert len(table) == 24
    assert int(table["consumption_wh"].sum()) == 24 * 5_000
    assert int(table["matched_wh"].sum()) == 8 * 5_000  # pooled: north uses east's surplus
    assert (out / f"{stem}.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert "hourly CFE score     33.33 %" in result.stdout
    assert "period volume match  40.00 %" in result.stdout  # one day, not a year
    assert "0.120000" in result.stdout  # 120 kWh of consumption in GEC


def test_json_output_is_the_report(
    registry: Registry, settings: LedgerSettings, database_url: str, buyer: str, tmp_path: Path
) -> None:
    result = _run(
        # By name as well as by id, like `readings import --org`.
        [
            *("--organisation", "Buyer Co", "--from", FROM, "--to", TO),
            *("--out", str(tmp_path), "--same-region", "--json"),
        ],
        _env(settings, database_url),
    )
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    expected = matching_report(
        registry.database,
        buyer,
        START,
        START + 24 * HOUR,
        same_region=True,
        factors=packaged_factor_table(),
    ).to_json()
    assert body == expected
    assert body["matchedWh"] == 8 * 4_000
    stem = file_stem(buyer, START, START + 24 * HOUR)
    assert json.loads((tmp_path / f"{stem}.json").read_text(encoding="utf-8")) == expected


def test_a_factor_file_changes_the_emissions(
    registry: Registry, settings: LedgerSettings, database_url: str, buyer: str, tmp_path: Path
) -> None:
    factors = tmp_path / "factors.json"
    factors.write_text(
        json.dumps(
            {
                "national_average": {"2026": 1.0},
                "national_average_excluding_market_traded_non_fossil": {"2026": 2.0},
            }
        ),
        encoding="utf-8",
    )
    args = ["--organisation", buyer, "--from", FROM, "--to", TO, "--out", str(tmp_path)]
    result = _run([*args, "--factors", str(factors), "--json"], _env(settings, database_url))
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["emissions"]["locationBased"] == "120.000"
    assert body["emissions"]["marketBased"] == "160.000"  # 80 kWh unmatched x 2
    assert body["factors"]["table"] == "factors.json"


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"--from": "2026-03-02"}, "--from must be an RFC 3339 UTC time"),
        ({"--to": "2026-13-02T00:00:00Z"}, "not a valid date"),
        ({"--from": "2026-03-02T00:30:00Z"}, "whole UTC hours"),
        ({"--to": "2027-03-04T00:00:00Z"}, "at most 8784 hours"),
        ({"--organisation": "Nobody Ltd"}, "no organisation"),
        ({"--factors": "/nonexistent/factors.json"}, "cannot read"),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(
    registry: Registry,
    settings: LedgerSettings,
    database_url: str,
    buyer: str,
    tmp_path: Path,
    change: dict[str, str],
    fragment: str,
) -> None:
    options = {"--organisation": buyer, "--from": FROM, "--to": TO, "--out": str(tmp_path)}
    options.update(change)
    args = [item for pair in options.items() for item in pair]
    _one_error_line(_run(args, _env(settings, database_url)), 2, fragment)


def test_uninitialised_registry_is_exit_3(tmp_path: Path) -> None:
    env: dict[str, str | None] = dict.fromkeys(SETTING_VARIABLES)
    env["CARBONLEDGER_DATA_DIR"] = str(tmp_path / "nothing-here")
    args = ["--organisation", "x", "--from", FROM, "--to", TO, "--out", str(tmp_path / "out")]
    _one_error_line(_run(args, env), 3, "not initialised")
    assert not (tmp_path / "out").exists()


def test_an_unknown_time_zone_is_bad_input(
    registry: Registry, settings: LedgerSettings, database_url: str, buyer: str, tmp_path: Path
) -> None:
    env = {**_env(settings, database_url), "CARBONLEDGER_TIMEZONE": "Asia/Beijing"}
    result = _run(
        ["--organisation", buyer, "--from", FROM, "--to", TO, "--out", str(tmp_path / "out")], env
    )
    _one_error_line(result, 2, "CARBONLEDGER_TIMEZONE")
    assert "not an IANA time zone name" in result.stderr
    assert not (tmp_path / "out").exists(), "nothing is written"
