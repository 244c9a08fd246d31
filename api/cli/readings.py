"""`carbonledger readings import FILE.csv`: historical signed readings into the registry.

The CSV format (UTF-8, optional BOM, comma-separated, RFC 4180 quoting, header required):

    meter,seq,time,importWh,exportWh,alg,sig
    pv-1,1,2026-06-01T00:00:00Z,100,0,Ed25519,3q2-7w...

Exactly these seven columns, in any order, one signed reading per row: the DESIGN §4.3
payload fields as they appear in the envelope, plus `alg` and `sig` (base64url, no padding).
The envelope is rebuilt from a row without any interpretation beyond turning `seq`,
`importWh` and `exportWh` into integers (a cell that is not a plain decimal integer is passed
on as text, so ingestion refuses it as `malformed` with its usual message). Every row then
goes through `ledger.meters.ingest.ingest`, the very function behind `POST /v1/readings`, in
batches: same rules, same reason codes, one transaction per batch.

Rows are numbered as a spreadsheet shows them: the header is row 1. Rejected rows are
written as JSON lines to the report file (`--rejects`, default FILE.csv.rejected.jsonl):
`{"row", "reason", "detail", "meter", "seq"}`; the file is removed again when no row was
rejected. A row whose cell count differs from the header's is `malformed` without reaching
ingestion. Duplicates (already in the registry with the
same signed payload) are counted, not reported: re-running an import is harmless.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer

from api.cli.common import (
    CountingLines,
    InputError,
    OrganisationOption,
    api_settings,
    command_group,
    csv_records,
    decimal_cell,
    fail,
    open_registry,
    organisation_named,
    stderr_console,
    stdout_console,
)

if TYPE_CHECKING:
    from rich.console import Console

    from ledger.meters.ingest import IngestResult

COLUMNS = ("meter", "seq", "time", "importWh", "exportWh", "alg", "sig")
HEADER = ",".join(COLUMNS)
PAYLOAD_COLUMNS = ("meter", "seq", "time", "importWh", "exportWh")
INTEGER_COLUMNS = frozenset({"seq", "importWh", "exportWh"})
DEFAULT_BATCH = 1_000

readings_app = command_group("Signed meter readings: bulk import.")


@dataclass(frozen=True, slots=True)
class Row:
    number: int
    """Spreadsheet row number: the header is row 1."""
    envelope: dict[str, Any] | None
    problem: str | None = None


def cell(name: str, value: str) -> int | str:
    """Integer columns as integers; anything else as text, for ingestion to refuse with its
    usual `malformed` message."""
    number = decimal_cell(value) if name in INTEGER_COLUMNS else None
    return value if number is None else number


def rows(lines: CountingLines) -> Iterator[Row]:
    for record in csv_records(lines, COLUMNS):
        if record.values is None:
            yield Row(record.number, None, record.problem)
            continue
        values = record.values
        envelope = {
            "payload": {name: cell(name, values[name]) for name in PAYLOAD_COLUMNS},
            "alg": values["alg"],
            "sig": values["sig"],
        }
        yield Row(record.number, envelope)


# ------------------------------------------------------------------------------ outcome


@dataclass(slots=True)
class Tally:
    rows: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    implausible: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    first_index: int | None = None
    last_index: int | None = None

    def reject(self, report: IO[str], row: int, reason: str, detail: str, **extra: Any) -> None:
        self.rejected += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1
        line = {"row": row, "reason": reason, "detail": detail} | extra
        report.write(json.dumps(line, ensure_ascii=False) + "\n")

    def add(self, report: IO[str], rows: list[Row], result: IngestResult) -> None:
        for row, item in zip(rows, result.items, strict=True):
            if item.status == "accepted":
                self.accepted += 1
                self.implausible += item.implausible
                assert item.index is not None
                if self.first_index is None:
                    self.first_index = item.index
                self.last_index = item.index
            elif item.status == "duplicate":
                self.duplicate += 1
            else:
                assert item.reason is not None
                self.reject(
                    report,
                    row.number,
                    item.reason.value,
                    item.detail or "",
                    meter=item.meter,
                    seq=item.seq,
                )

    def as_json(self, rejects: Path | None) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "rejected": self.rejected,
            "implausible": self.implausible,
            "rejectedByReason": dict(sorted(self.reasons.items())),
            "firstIndex": self.first_index,
            "lastIndex": self.last_index,
            "rejectsFile": str(rejects) if rejects is not None else None,
        }


# ------------------------------------------------------------------------------ command


@readings_app.command("import")
def import_command(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE.csv",
            help="CSV with the header meter,seq,time,importWh,exportWh,alg,sig.",
            show_default=False,
            dir_okay=False,
        ),
    ],
    *,
    org: OrganisationOption,
    rejects: Annotated[
        Path | None,
        typer.Option(
            "--rejects",
            metavar="FILE",
            help="Where to write rejected rows as JSON lines (default FILE.csv.rejected.jsonl).",
            show_default=False,
            dir_okay=False,
        ),
    ] = None,
    batch: Annotated[
        int,
        typer.Option(
            "--batch",
            metavar="N",
            min=1,
            help="Rows per ingestion transaction (at most CARBONLEDGER_MAX_READINGS_PER_BATCH).",
        ),
    ] = DEFAULT_BATCH,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON on stdout.")
    ] = False,
) -> None:
    """Import historical signed readings from a CSV file, streaming, in batches.

    Every row passes the same validation as `POST /v1/readings` (signature, key validity,
    sequence rules) for the meters of the organisation --org; accepted rows become `reading/1`
    log entries. Rejected rows (other organisations' meters among them) are written
    to the report file with their row number (header = row 1), reason code and detail.
    Re-running an import is harmless: rows already imported count as duplicates.
    """
    from ledger.meters.ingest import IngestPolicy, ingest

    settings = api_settings(ctx)
    if batch > settings.max_readings_per_batch:
        fail(f"--batch is at most {settings.max_readings_per_batch} (the ingestion limit)")
    try:
        raw = file.open("rb")
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}")
    report_path = rejects or file.with_name(file.name + ".rejected.jsonl")
    if report_path.resolve() == file.resolve():
        raw.close()
        fail("--rejects must not be the input file")
    policy = IngestPolicy(
        max_items=settings.max_readings_per_batch,
        future_skew_seconds=settings.reading_future_skew_seconds,
    )
    tally = Tally()
    stderr = stderr_console()
    with raw, open_registry(settings) as registry:
        owner = organisation_named(registry.database, org)
        try:
            report = report_path.open("w", encoding="utf-8")
        except OSError as exc:
            fail(f"cannot write the report {report_path}: {exc.strerror or exc}")
        with report:
            import_rows(
                CountingLines(raw),
                lambda items: ingest(registry.log, items, organisation_id=owner, policy=policy),
                total_bytes=file.stat().st_size,
                report=report,
                stderr=stderr,
                tally=tally,
                batch=batch,
            )
    if tally.rejected == 0:
        # No stale or empty report next to a clean import.
        report_path.unlink(missing_ok=True)

    summary = tally.as_json(report_path if tally.rejected else None)
    if json_output:
        print(json.dumps(summary))
        return
    print_summary(summary)


def import_rows(
    lines: CountingLines,
    submit: Callable[[list[Any]], IngestResult],
    *,
    total_bytes: int,
    report: IO[str],
    stderr: Console,
    tally: Tally,
    batch: int,
) -> None:
    """Stream rows into batches of `batch`, submit each, record outcomes in `tally`."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("importing"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[rows]:,} rows"),
        TimeRemainingColumn(),
        console=stderr,
        # A bar only where someone watches; pipes and CI logs get the summary alone.
        disable=not stderr.is_terminal,
    )
    with progress:
        task = progress.add_task("import", total=total_bytes, rows=0)
        pending: list[Row] = []

        def flush() -> None:
            tally.add(report, pending, submit([row.envelope for row in pending]))
            pending.clear()
            progress.update(task, completed=lines.consumed, rows=tally.rows)

        try:
            for row in rows(lines):
                tally.rows += 1
                if row.envelope is None:
                    assert row.problem is not None
                    tally.reject(report, row.number, "malformed", row.problem)
                    continue
                pending.append(row)
                if len(pending) >= batch:
                    flush()
        except InputError as exc:
            # Submit what was read before the bad spot, so "rows before it" holds exactly.
            if pending:
                flush()
            fail(f"{exc}; rows before it were processed" if tally.rows else str(exc))
        if pending:
            flush()
        progress.update(task, completed=total_bytes, rows=tally.rows)


def print_summary(summary: dict[str, Any]) -> None:
    from rich.text import Text

    from ledger.meters.ingest import Reason

    console = stdout_console()
    style = "bold green" if summary["rejected"] == 0 else "bold yellow"
    console.print(
        Text(
            f"Imported {summary['rows']:,} rows: {summary['accepted']:,} accepted, "
            f"{summary['duplicate']:,} duplicate, {summary['rejected']:,} rejected.",
            style=style,
        )
    )
    if summary["implausible"]:
        console.print(f"  {summary['implausible']:,} accepted readings are flagged implausible")
    if summary["firstIndex"] is not None:
        console.print(f"  log entries {summary['firstIndex']}..{summary['lastIndex']}")
    for reason, count in summary["rejectedByReason"].items():
        console.print(f"  {reason:<22}{count:,}")
    if summary["rejected"]:
        console.print(f"  rejected rows: {summary['rejectsFile']}")
    if Reason.NO_ACTIVE_KEY in summary["rejectedByReason"]:
        # The usual cause with history: the key was registered (validFrom) after the
        # readings it signed were taken.
        console.print(
            Text(
                f"  {Reason.NO_ACTIVE_KEY.value}: no key of the meter was valid at the time of "
                "those readings. A key signs readings only from its validFrom on; for history, "
                "register the key with `carbonledger meter register … --valid-from` at or "
                "before the first reading.",
                style="yellow",
            )
        )
