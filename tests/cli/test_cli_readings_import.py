"""`carbonledger readings import FILE.csv` on SQLite and PostgreSQL.

Outcomes are checked against the registry itself (log size, the leaves' payloads, the
reading rows), and the rejection report line by line.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import CliRegistry, assert_one_line_error, isolated_env, run
from meter_support import EPOCH, T0, MeterKeyPair, generation_spec, new_key, sign, stream

from api.cli.common import EXIT_UNAVAILABLE, EXIT_USAGE
from api.cli.readings import COLUMNS
from ledger.access.clients import create_client
from ledger.log.canonical import parse_entry
from ledger.meters.registration import register_key, register_meter
from ledger.registry import Registry, open_registry


@pytest.fixture
def registry_of(cli_registry: CliRegistry) -> Iterator[Registry]:
    opened = open_registry(cli_registry.settings, migrate=False)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def key(registry_of: Registry) -> MeterKeyPair:
    """Organisation "Acme" owns pv-1 (10 kW solar, Ed25519 key); "Other" owns pv-9."""
    acme = create_client(registry_of.database, "Acme", ["readings:write"]).organisation_id
    other = create_client(registry_of.database, "Other", ["readings:write"]).organisation_id
    pair = new_key()
    for organisation, meter, meter_key in ((acme, "pv-1", pair), (other, "pv-9", new_key())):
        register_meter(registry_of.log, organisation, generation_spec(meter))
        register_key(
            registry_of.log,
            meter,
            meter_key.spki,
            organisation_id=organisation,
            valid_from=EPOCH - timedelta(days=1),
        )
    return pair


def row_of(envelope: dict[str, Any]) -> dict[str, Any]:
    return {**envelope["payload"], "alg": envelope["alg"], "sig": envelope["sig"]}


def write_csv(path: Path, rows: list[dict[str, Any]] | list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow([row[name] for name in COLUMNS] if isinstance(row, dict) else row)
    return path


def import_json(env: dict[str, str | None], *args: str) -> dict[str, Any]:
    result = run(["readings", "import", *args, "--org", "Acme", "--json"], env)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def report_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_rows_go_through_ingestion_and_rejections_are_reported(
    cli_registry: CliRegistry, registry_of: Registry, key: MeterKeyPair, tmp_path: Path
) -> None:
    good = stream(key, "pv-1", 4)
    tampered = row_of(sign(key, "pv-1", 5, T0 + 5 * 900, 500)) | {"importWh": 501}
    not_a_number = row_of(sign(key, "pv-1", 6, T0 + 6 * 900, 600)) | {"seq": "6.0"}
    foreign = row_of(sign(key, "pv-9", 1, T0, 1))
    rows: list[Any] = [row_of(e) for e in good[:2]]
    rows += [tampered, row_of(good[0]), ["pv-1", "3"], not_a_number, foreign]
    rows += [row_of(e) for e in good[2:]]
    source = write_csv(tmp_path / "history.csv", rows)
    size_before = registry_of.log.head().size

    summary = import_json(cli_registry.env, str(source), "--batch", "3")

    assert summary["rows"] == 9
    assert (summary["accepted"], summary["duplicate"], summary["rejected"]) == (4, 1, 4)
    assert summary["rejectedByReason"] == {
        "bad-signature": 1,
        "malformed": 2,
        "meter-not-owned": 1,
    }
    # The four good readings are the four new leaves, in file order, exactly as signed.
    assert (summary["firstIndex"], summary["lastIndex"]) == (size_before, size_before + 3)
    assert registry_of.log.head().size == size_before + 4
    leaves = [parse_entry(registry_of.log.entry(size_before + n)) for n in range(4)]
    assert [leaf["payload"] for leaf in leaves] == [e["payload"] for e in good]
    assert [leaf["sig"] for leaf in leaves] == [e["sig"] for e in good]

    report = report_lines(Path(summary["rejectsFile"]))
    assert Path(summary["rejectsFile"]) == tmp_path / "history.csv.rejected.jsonl"
    # Spreadsheet numbering: the header is row 1, so the tampered row (third data row) is 4.
    assert [(line["row"], line["reason"]) for line in report] == [
        (4, "bad-signature"),
        (6, "malformed"),
        (7, "malformed"),
        (8, "meter-not-owned"),
    ]
    assert report[1]["detail"] == "2 cells; the header has 7"
    assert "seq must be an integer" in report[2]["detail"]
    assert (report[0]["meter"], report[0]["seq"]) == ("pv-1", 5)


def test_a_second_import_changes_nothing(
    cli_registry: CliRegistry, registry_of: Registry, key: MeterKeyPair, tmp_path: Path
) -> None:
    source = write_csv(tmp_path / "a.csv", [row_of(e) for e in stream(key, "pv-1", 7)])
    first = import_json(cli_registry.env, str(source))
    assert (first["accepted"], first["rejected"], first["rejectsFile"]) == (7, 0, None)
    head = registry_of.log.head()

    again = import_json(cli_registry.env, str(source), "--batch", "2")

    assert (again["accepted"], again["duplicate"], again["rejected"]) == (0, 7, 0)
    assert registry_of.log.head() == head
    assert not (tmp_path / "a.csv.rejected.jsonl").exists()


def test_header_columns_may_come_in_any_order_with_a_bom(
    cli_registry: CliRegistry, registry_of: Registry, key: MeterKeyPair, tmp_path: Path
) -> None:
    envelopes = stream(key, "pv-1", 2)
    order = list(reversed(COLUMNS))
    lines = [",".join(order)] + [
        ",".join(str(row_of(e)[name]) for name in order) for e in envelopes
    ]
    source = tmp_path / "bom.csv"
    source.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    summary = import_json(cli_registry.env, str(source), "--rejects", str(tmp_path / "r.jsonl"))
    assert summary["accepted"] == 2


def test_human_summary(cli_registry: CliRegistry, key: MeterKeyPair, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "h.csv", [row_of(e) for e in stream(key, "pv-1", 3)])
    result = run(["readings", "import", str(source), "--org", "Acme"], cli_registry.env)
    assert result.exit_code == 0, result.stderr
    assert "3 rows: 3 accepted, 0 duplicate, 0 rejected" in result.stdout
    # stderr is not a terminal here: no progress bar, nothing else.
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "the file is empty"),
        (b"meter,seq,time,importWh,exportWh,alg\n", "missing ['sig']"),
        (b"meter,seq,time,importWh,exportWh,alg,sig,extra\n", "unexpected"),
    ],
)
def test_a_wrong_header_is_a_usage_error(
    cli_registry: CliRegistry,
    registry_of: Registry,
    key: MeterKeyPair,
    tmp_path: Path,
    content: bytes,
    fragment: str,
) -> None:
    source = tmp_path / "bad.csv"
    source.write_bytes(content)
    head = registry_of.log.head()
    result = run(["readings", "import", str(source), "--org", "Acme"], cli_registry.env)
    assert_one_line_error(result, EXIT_USAGE, fragment)
    assert registry_of.log.head() == head


def test_usage_and_availability_errors(
    cli_registry: CliRegistry, key: MeterKeyPair, tmp_path: Path
) -> None:
    source = write_csv(tmp_path / "ok.csv", [row_of(e) for e in stream(key, "pv-1", 1)])
    env = cli_registry.env
    assert_one_line_error(
        run(["readings", "import", str(source), "--org", "Nobody"], env),
        EXIT_USAGE,
        "no organisation named 'Nobody'",
    )
    assert_one_line_error(
        run(["readings", "import", str(tmp_path / "missing.csv"), "--org", "Acme"], env),
        EXIT_USAGE,
        "cannot read",
    )
    assert_one_line_error(
        run(["readings", "import", str(source), "--org", "Acme", "--batch", "5001"], env),
        EXIT_USAGE,
        "--batch is at most 5000",
    )
    uninitialised = isolated_env(data_dir=str(tmp_path / "nothing-here"))
    assert_one_line_error(
        run(["readings", "import", str(source), "--org", "Acme"], uninitialised),
        EXIT_UNAVAILABLE,
        "not initialised",
    )


def test_bad_bytes_stop_the_import_after_the_rows_before_them(
    cli_registry: CliRegistry, registry_of: Registry, key: MeterKeyPair, tmp_path: Path
) -> None:
    envelopes = stream(key, "pv-1", 3)
    source = write_csv(tmp_path / "broken.csv", [row_of(e) for e in envelopes])
    with source.open("ab") as handle:
        handle.write(b"pv-1,9,\xff\xfe,0,0,Ed25519,x\n")
    size = registry_of.log.head().size
    result = run(
        ["readings", "import", str(source), "--org", "Acme", "--batch", "2"], cli_registry.env
    )
    assert_one_line_error(result, EXIT_USAGE, "line 5 is not UTF-8")
    # Every row before the bad line was submitted, the pending partial batch included.
    assert registry_of.log.head().size == size + 3
