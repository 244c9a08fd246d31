"""`carbonledger meter sign`: readings signed with a meter's key file, in the three formats, and
what the registry makes of them (`readings import`, `POST /v1/readings`)."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import CliRegistry, assert_one_line_error, isolated_env, run
from fastapi.testclient import TestClient

from api.app import create_app
from api.cli.meter import IMPORT_COLUMNS
from api.cli.readings import COLUMNS
from api.security import ensure_token_secret
from api.settings import ApiSettings
from ledger.access.clients import create_client
from ledger.meters.ingest import Reason
from ledger.meters.readings import format_time
from ledger.registry import Registry, open_registry
from meter_signing.keys import create_meter_key_file, load_meter_key_file
from meter_signing.signing import verify_envelope

ROWS = [
    (1, "2026-06-01T00:00:00Z", 100, 0),
    (2, "2026-06-01T00:15:00Z", 130, 5),
    (3, "2026-06-01T00:30:00Z", 170, 12),
]


def write_csv(
    path: Path, rows: list[tuple[Any, ...]], header: str = "seq,time,importWh,exportWh"
) -> Path:
    path.write_text(header + "\n" + "".join(",".join(map(str, row)) + "\n" for row in rows))
    return path


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "pv-1.pem"
    create_meter_key_file(path)
    return path


def sign(*args: str, stdin: str | None = None) -> Any:
    return run(["meter", "sign", "--meter", "pv-1", *args], isolated_env(), input=stdin)


def test_jsonl_envelopes_verify_under_the_key_and_carry_the_rows(
    key_file: Path, tmp_path: Path
) -> None:
    result = sign("--key", str(key_file), "--csv", str(write_csv(tmp_path / "r.csv", ROWS)))
    assert result.exit_code == 0, result.output
    envelopes = [json.loads(line) for line in result.stdout.splitlines()]
    public = load_meter_key_file(key_file).public_spki
    for envelope, (seq, time, import_wh, export_wh) in zip(envelopes, ROWS, strict=True):
        reading = verify_envelope(envelope, public)
        assert reading.payload.meter == "pv-1" and reading.payload.seq == seq
        assert format_time(reading.payload.time) == time
        assert (reading.payload.import_wh, reading.payload.export_wh) == (import_wh, export_wh)


def test_columns_in_any_order_and_from_stdin(key_file: Path) -> None:
    text = "time,exportWh,seq,importWh\n2026-06-01T00:00:00Z,0,7,42\n"
    result = sign("--key", str(key_file), "--csv", "-", stdin=text)
    assert result.exit_code == 0, result.output
    (envelope,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert envelope["payload"] == {
        "meter": "pv-1",
        "seq": 7,
        "time": "2026-06-01T00:00:00Z",
        "importWh": 42,
        "exportWh": 0,
    }


def test_one_reading_from_options_and_the_body_format(key_file: Path) -> None:
    result = sign(
        "--key", str(key_file), "--seq", "4", "--time", "2026-06-01T01:00:00Z",
        "--import-wh", "200", "--export-wh", "0", "--format", "body",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert list(body) == ["readings"] and len(body["readings"]) == 1
    verify_envelope(body["readings"][0], load_meter_key_file(key_file).public_spki)


def test_the_csv_format_is_what_readings_import_reads(key_file: Path, tmp_path: Path) -> None:
    assert IMPORT_COLUMNS == COLUMNS
    out = tmp_path / "signed.csv"
    source = write_csv(tmp_path / "r.csv", ROWS)
    result = sign(
        "--key", str(key_file), "--csv", str(source), "--format", "csv", "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "signed 3 readings of pv-1 (seq 1..3)" in result.stderr
    rows = list(csv.DictReader(out.open()))
    assert [int(row["seq"]) for row in rows] == [1, 2, 3]
    assert {row["alg"] for row in rows} == {"Ed25519"}


@pytest.mark.parametrize(
    ("rows", "fragment"),
    [
        ([(1, "2026-06-01T00:00:00Z", 1, 0), (1, "2026-06-01T00:15:00Z", 2, 0)], "row 3: seq 1"),
        (
            [(1, "2026-06-01T00:15:00Z", 1, 0), (2, "2026-06-01T00:00:00Z", 2, 0)],
            "row 3: time 2026-06-01T00:00:00Z is not after",
        ),
        ([(1, "2026-06-01 00:00:00", 1, 0)], "row 2: time must be an RFC 3339 UTC time"),
        ([(1, "2026-06-01T00:00:00Z", -5, 0)], "row 2: importWh must be a whole number"),
        ([(1, "2026-06-01T00:00:00Z", 1)], "row 2: 3 cells; the header has 4"),
    ],
)
def test_a_bad_row_is_named_and_nothing_is_written(
    key_file: Path, tmp_path: Path, rows: list[tuple[Any, ...]], fragment: str
) -> None:
    out = tmp_path / "signed.jsonl"
    out.write_text("earlier output\n")
    source = write_csv(tmp_path / "r.csv", rows)
    result = sign("--key", str(key_file), "--csv", str(source), "--out", str(out))
    assert_one_line_error(result, 2, fragment)
    assert out.read_text() == "earlier output\n"
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--seq", "1", "--time", "2026-06-01T00:00:00Z"], "missing --import-wh, --export-wh"),
        (["--format", "xml", "--seq", "1"], "--format must be one of jsonl, body, csv"),
        (["--csv", "missing.csv"], "cannot read missing.csv"),
    ],
)
def test_usage_errors(key_file: Path, args: list[str], fragment: str) -> None:
    assert_one_line_error(sign("--key", str(key_file), *args), 2, fragment)


def test_csv_and_options_are_exclusive(key_file: Path, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "r.csv", ROWS)
    result = sign("--key", str(key_file), "--csv", str(source), "--seq", "9")
    assert_one_line_error(result, 2, "give --csv or --seq, not both")


def test_a_wrong_header_and_an_empty_file(key_file: Path, tmp_path: Path) -> None:
    wrong = write_csv(tmp_path / "w.csv", ROWS, header="seq,time,import,export")
    assert_one_line_error(
        sign("--key", str(key_file), "--csv", str(wrong)), 2, "the header must name"
    )
    empty = write_csv(tmp_path / "e.csv", [])
    assert_one_line_error(sign("--key", str(key_file), "--csv", str(empty)), 2, "holds no readings")


def test_a_key_file_others_can_read_is_refused(key_file: Path) -> None:
    os.chmod(key_file, 0o644)
    result = sign("--key", str(key_file), "--seq", "1", "--time", "2026-06-01T00:00:00Z",
                  "--import-wh", "1", "--export-wh", "0")  # fmt: skip
    assert_one_line_error(result, 3, str(key_file))


# ------------------------------------------------------------ what the registry accepts


@pytest.fixture
def registry_of(cli_registry: CliRegistry) -> Iterator[Registry]:
    opened = open_registry(cli_registry.settings, migrate=False)
    create_client(opened.database, "Sunny Roofs", ["readings:write"])
    try:
        yield opened
    finally:
        opened.close()


def register(cli_registry: CliRegistry, key_file: Path, *extra: str) -> None:
    result = run(
        [
            "meter", "register", "--meter", "pv-1", "--org", "Sunny Roofs",
            "--role", "generation", "--province", "CN-JS", "--grid-region", "east",
            "--source", "solar", "--capacity-w", "5000", "--key", str(key_file), *extra,
        ],
        cli_registry.env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output


def test_history_imports_when_the_key_is_valid_from_before_it(
    cli_registry: CliRegistry, registry_of: Registry, key_file: Path, tmp_path: Path
) -> None:
    register(cli_registry, key_file, "--valid-from", "2026-05-01T00:00:00Z")
    signed = tmp_path / "signed.csv"
    source = write_csv(tmp_path / "r.csv", ROWS)
    args = ["--key", str(key_file), "--csv", str(source), "--format", "csv", "--out", str(signed)]
    assert sign(*args).exit_code == 0
    size = registry_of.log.head().size
    imported = run(
        ["readings", "import", str(signed), "--org", "Sunny Roofs", "--json"], cli_registry.env
    )
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.stdout)["accepted"] == 3
    assert registry_of.log.head().size == size + 3


def test_history_before_the_keys_valid_from_is_refused_with_the_reason_and_the_fix(
    cli_registry: CliRegistry, registry_of: Registry, key_file: Path, tmp_path: Path
) -> None:
    register(cli_registry, key_file)  # validFrom: now, after every row
    signed = tmp_path / "signed.csv"
    source = write_csv(tmp_path / "r.csv", ROWS)
    args = ["--key", str(key_file), "--csv", str(source), "--format", "csv", "--out", str(signed)]
    assert sign(*args).exit_code == 0
    imported = run(
        ["readings", "import", str(signed), "--org", "Sunny Roofs"],
        {**cli_registry.env, "COLUMNS": "300"},
    )
    assert imported.exit_code == 0, imported.output
    assert "3 rejected" in imported.stdout
    assert Reason.NO_ACTIVE_KEY.value in imported.stdout
    assert "--valid-from" in imported.stdout and "at or before the first reading" in imported.stdout


def test_the_body_is_one_post_v1_readings_request(
    cli_registry: CliRegistry, registry_of: Registry, key_file: Path, tmp_path: Path
) -> None:
    register(cli_registry, key_file, "--valid-from", "2026-05-01T00:00:00Z")
    source = write_csv(tmp_path / "r.csv", ROWS)
    body = json.loads(sign("--key", str(key_file), "--csv", str(source), "--format", "body").stdout)

    settings = ApiSettings(**cli_registry.settings.model_dump())
    ensure_token_secret(settings)
    issued = create_client(registry_of.database, "Sunny Roofs", ["readings:write"])
    with TestClient(create_app(settings)) as client:
        token = client.post(
            "/auth/token",
            data={"grant_type": "client_credentials"},
            auth=(issued.client_id, issued.client_secret),
        ).json()["access_token"]
        response = client.post(
            "/v1/readings", json=body, headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 200, response.text
    statuses = [item["status"] for item in response.json()["results"]]
    assert statuses == ["accepted"] * 3


def test_a_signature_by_another_key_is_not_the_meters(
    cli_registry: CliRegistry, registry_of: Registry, key_file: Path, tmp_path: Path
) -> None:
    """A key file that is not the registered one signs envelopes the registry refuses."""
    register(cli_registry, key_file, "--valid-from", "2026-05-01T00:00:00Z")
    impostor = tmp_path / "impostor.pem"
    create_meter_key_file(impostor)
    signed = tmp_path / "signed.csv"
    source = write_csv(tmp_path / "r.csv", ROWS)
    args = ["--key", str(impostor), "--csv", str(source), "--format", "csv", "--out", str(signed)]
    assert sign(*args).exit_code == 0
    size = registry_of.log.head().size
    imported = run(
        ["readings", "import", str(signed), "--org", "Sunny Roofs", "--json"], cli_registry.env
    )
    summary = json.loads(imported.stdout)
    assert summary["accepted"] == 0
    assert summary["rejectedByReason"] == {Reason.BAD_SIGNATURE.value: 3}
    assert registry_of.log.head().size == size
