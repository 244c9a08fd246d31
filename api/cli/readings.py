"""`carbonledger readings import FILE.csv`: historical signed readings into the registry.

Wiring (in api/cli/main.py):

    app.add_typer(readings_app, name="readings")

This module never imports api.cli.main at import time (api.cli.main imports it); the CLI's helpers
(settings, opening the registry, CliError) are imported inside the command.

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

import csv
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from ledger.meters.ingest import IngestResult

EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
COLUMNS = ("meter", "seq", "time", "importWh", "exportWh", "alg", "sig")
HEADER = ",".join(COLUMNS)
INTEGER_COLUMNS = frozenset({"seq", "importWh", "exportWh"})
DEFAULT_BATCH = 1_000
MAX_LINE_BYTES = 64 * 1024
"""A row is ~200 bytes; the bound stops a file without line breaks (a wrong file, a binary)
from being read into memory whole. The csv module bounds a quoted field spanning lines."""
_DECIMAL = re.compile(r"^[0-9]{1,16}$")
_BOM = "\ufeff"

readings_app = typer.Typer(help="Signed meter readings: bulk import.", no_args_is_help=True)


class _InputError(Exception):
    """The file cannot be read on from here; the rows before were submitted."""


def _fail(message: str, exit_code: int = EXIT_USAGE) -> NoReturn:
    from api.cli.main import CliError  # noqa: PLC0415 - api.cli.main imports this module

    raise CliError(message, exit_code)


# ------------------------------------------------------------------------------ reading


class _CountingLines:
    """Text lines of a binary file, counting the bytes consumed (for the progress bar).

    A text file's tell() is disabled while it is iterated, so the count is kept here.
    Decoding is strict: a byte sequence that is not UTF-8 stops the import at that line.
    """

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.consumed = 0
        self.line = 0

    def __iter__(self) -> Iterator[str]:
        while chunk := self.raw.readline(MAX_LINE_BYTES + 1):
            self.consumed += len(chunk)
            self.line += 1
            if len(chunk) > MAX_LINE_BYTES:
                raise _InputError(
                    f"line {self.line} is longer than {MAX_LINE_BYTES} bytes; not a readings CSV"
                )
            try:
                text = chunk.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _InputError(
                    f"line {self.line} is not UTF-8 text; rows before it were processed"
                ) from exc
            if self.line == 1 and text.startswith(_BOM):
                text = text[1:]
            yield text


@dataclass(frozen=True, slots=True)
class _Row:
    number: int
    """Spreadsheet row number: the header is row 1."""
    envelope: dict[str, Any] | None
    problem: str | None = None


def _cell(name: str, value: str) -> int | str:
    if name in INTEGER_COLUMNS and _DECIMAL.fullmatch(value):
        return int(value)
    return value


def _rows(lines: _CountingLines) -> Iterator[_Row]:
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise _InputError(f"the header is not valid CSV: {exc}") from exc
    if header is None:
        raise _InputError(f"the file is empty; the first row must be the header {HEADER}")
    names = [name.strip() for name in header]
    if sorted(names) != sorted(COLUMNS):
        missing = sorted(set(COLUMNS) - set(names))
        extra = sorted(set(names) - set(COLUMNS))
        raise _InputError(
            f"the header must name exactly the columns {HEADER} (any order); "
            f"missing {missing}, unexpected or repeated {extra or sorted(names)}"
        )
    number = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # The csv module cannot resynchronise after a broken quote: stop here.
            raise _InputError(
                f"row {number + 1}: not valid CSV ({exc}); rows before it were processed"
            ) from exc
        number += 1
        if not cells:
            continue  # a blank line carries no reading
        if len(cells) != len(names):
            yield _Row(number, None, f"{len(cells)} cells; the header has {len(names)}")
            continue
        values = dict(zip(names, cells, strict=True))
        envelope = {
            "payload": {
                name: _cell(name, values[name])
                for name in ("meter", "seq", "time", "importWh", "exportWh")
            },
            "alg": values["alg"],
            "sig": values["sig"],
        }
        yield _Row(number, envelope)


# ------------------------------------------------------------------------------ outcome


@dataclass(slots=True)
class _Tally:
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

    def add(self, report: IO[str], rows: list[_Row], result: IngestResult) -> None:
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
    org: Annotated[
        str,
        typer.Option(
            "--org",
            metavar="NAME",
            help="Organisation that owns the meters; rows of other meters are rejected.",
            show_default=False,
        ),
    ],
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
    sequence rules); accepted rows become `reading/1` log entries. Rejected rows are written
    to the report file with their row number (header = row 1), reason code and detail.
    Re-running an import is harmless: rows already imported count as duplicates.
    """
    from rich.console import Console  # noqa: PLC0415 - api.cli.main's start-up stays light
    from sqlalchemy import select  # noqa: PLC0415

    from api.cli.main import _open_registry, _settings  # noqa: PLC0415 - api.cli.main imports this module
    from ledger.access.models import Organisation  # noqa: PLC0415
    from ledger.meters.ingest import IngestPolicy, ingest  # noqa: PLC0415

    settings = _settings(ctx)
    if batch > settings.max_readings_per_batch:
        _fail(f"--batch is at most {settings.max_readings_per_batch} (the ingestion limit)")
    try:
        raw = file.open("rb")
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror or exc}")
    report_path = rejects or file.with_name(file.name + ".rejected.jsonl")
    if report_path.resolve() == file.resolve():
        raw.close()
        _fail("--rejects must not be the input file")
    policy = IngestPolicy(
        max_items=settings.max_readings_per_batch,
        future_skew_seconds=settings.reading_future_skew_seconds,
    )
    tally = _Tally()
    stderr = Console(stderr=True, soft_wrap=True, highlight=False)
    with raw, _open_registry(settings) as registry:
        with registry.database.read() as session:
            organisation_id = session.execute(
                select(Organisation.id).where(Organisation.name == org.strip())
            ).scalar_one_or_none()
        if organisation_id is None:
            _fail(f"no organisation named {org!r} (create it with `admin create-client --org`)")
        try:
            report = report_path.open("w", encoding="utf-8")
        except OSError as exc:
            _fail(f"cannot write the report {report_path}: {exc.strerror or exc}")
        owner: str = organisation_id
        with report:
            _import_rows(
                _CountingLines(raw),
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
    _print_summary(summary)


def _import_rows(
    lines: _CountingLines,
    submit: Callable[[list[Any]], IngestResult],
    *,
    total_bytes: int,
    report: IO[str],
    stderr: Console,
    tally: _Tally,
    batch: int,
) -> None:
    """Stream rows into batches of `batch`, submit each, record outcomes in `tally`."""
    from rich.progress import (  # noqa: PLC0415 - api.cli.main's start-up stays light
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
        pending: list[_Row] = []

        def flush() -> None:
            tally.add(report, pending, submit([row.envelope for row in pending]))
            pending.clear()
            progress.update(task, completed=lines.consumed, rows=tally.rows)

        try:
            for row in _rows(lines):
                tally.rows += 1
                if row.envelope is None:
                    assert row.problem is not None
                    tally.reject(report, row.number, "malformed", row.problem)
                    continue
                pending.append(row)
                if len(pending) >= batch:
                    flush()
        except _InputError as exc:
            # Submit what was read before the bad spot, so "rows before it" holds exactly.
            if pending:
                flush()
            _fail(str(exc))
        if pending:
            flush()
        progress.update(task, completed=total_bytes, rows=tally.rows)


def _print_summary(summary: dict[str, Any]) -> None:
    from rich.console import Console  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    console = Console(soft_wrap=True, highlight=False)
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
