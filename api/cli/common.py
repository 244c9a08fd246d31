"""What every `carbonledger` command shares: exit codes, the one `error:` line, consoles,
the `--json` flag, settings and the registry, the chain, and bounded input reading.

Conventions (docs/decisions.md, "CLI conventions"): machine output (`--json`, proofs,
checkpoint notes) goes alone and raw to stdout; human text goes through Rich; an expected
failure is exactly one `error: …` line on stderr with exit code 1 (a check failed),
2 (usage or input) or 3 (the registry or the chain cannot be used).

This module is import-light on purpose, like every command module: the root app imports
them all to build the command tree, and `carbonledger --help` must not pay for
SQLAlchemy, pydantic settings, web3 or Rich. What is heavy is imported inside the
function that needs it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, Final, NoReturn

import typer
import typer.core

if TYPE_CHECKING:
    from pydantic import ValidationError
    from rich.console import Console

    from api.settings import ApiSettings
    from attestation.chain.client import ChainSettings
    from attestation.chain.embedded import Chain
    from ledger.log.store import Log
    from ledger.registry import Registry
    from ledger.storage.db import Database

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
"""A proof, bundle, checkpoint or audit did not verify."""
EXIT_USAGE = 2
"""The command was used wrongly or its input is malformed."""
EXIT_UNAVAILABLE = 3
"""The registry or the chain cannot be used: not initialised, unreachable, bad key file."""
EXIT_INCOMPLETE = 4
"""No check failed, but one could not be made (a trust input was not given): not a success."""

STDIN = "-"


class CliError(Exception):
    """An expected failure: shown as one `error:` line on stderr, no traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def fail(message: str, exit_code: int = EXIT_USAGE) -> NoReturn:
    raise CliError(message, exit_code)


# -------------------------------------------------------------------------- output


def stdout_console() -> Console:
    from rich.console import Console  # Rich costs a tenth of a second

    # Built per call so the console follows sys.stdout as it is now (test runners swap
    # it); soft_wrap keeps long values such as keys and secrets on one copyable line.
    return Console(soft_wrap=True, highlight=False)


def stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True, highlight=False)


def print_error_line(message: str) -> None:
    """The one `error:` line; multi-line messages (psycopg's, for one) are folded."""
    from rich.text import Text

    single = " ".join(message.split())
    stderr_console().print(Text.assemble(("error: ", "bold red"), single))


def print_note(message: str) -> None:
    """A yellow note on stderr: something the reader must know, not an error."""
    from rich.text import Text

    stderr_console().print(Text(message, style="yellow"))


def write_machine(text: str) -> None:
    """Exact bytes for pipes: no Rich markup, wrapping or colour."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def print_field(console: Console, label: str, value: str, note: str = "") -> None:
    from rich.text import Text

    line = Text.assemble(("  " + label.ljust(14), "bold"), value)
    if note:
        line.append(f"  ({note})", style="dim")
    console.print(line)


def print_headline(console: Console, text: str, style: str = "bold green") -> None:
    from rich.text import Text

    console.print(Text(text, style=style))


@dataclass(frozen=True)
class CheckLine:
    """One named check of a verify command, as printed: PASS, FAIL or SKIP and why."""

    name: str
    passed: bool | None
    """None: not made (an earlier check it builds on failed, or nothing to check against)."""
    detail: str


def print_checks(checks: Sequence[CheckLine]) -> None:
    """One aligned `PASS|FAIL|SKIP  name  detail` line per check, on stdout; then, if any
    failed, the one `verification failed: <names>` error (exit 1)."""
    from rich.text import Text

    console = stdout_console()
    width = max((len(check.name) for check in checks), default=0)
    for check in checks:
        if check.passed is None:
            verdict = ("SKIP", "yellow")
        elif check.passed:
            verdict = ("PASS", "bold green")
        else:
            verdict = ("FAIL", "bold red")
        console.print(
            Text.assemble(verdict, "  ", (check.name.ljust(width), "bold"), "  ", check.detail)
        )
    failed = [check.name for check in checks if check.passed is False]
    if failed:
        fail(f"verification failed: {', '.join(failed)}", EXIT_CHECK_FAILED)


JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON on stdout (for scripts) instead of text.")
]
OrganisationOption = Annotated[
    str,
    typer.Option(
        "--org",
        metavar="NAME",
        help="The organisation, by the name `admin create-client --org` gave it.",
        show_default=False,
    ),
]


# ---------------------------------------------------------------- the command tree


# Typer vendors Click as a private module (`typer._click`), so the Click types in these
# signatures have no public name to import: they are `Any` here.


def show_flags_as_flags(command: Any, ctx: Any) -> None:
    """Flags take no value, so their help shows no `<bool>` value type.

    Typer labels every option with its type, flags included; an empty metavar is what
    its help formatter prints instead. The help option is created per command on demand,
    so it is fetched (and cached by Click) here to get the same treatment.
    """
    options = [param for param in command.params if isinstance(param, typer.core.TyperOption)]
    help_option = command.get_help_option(ctx)
    if isinstance(help_option, typer.core.TyperOption):
        options.append(help_option)
    for option in options:
        if option.is_flag and option.metavar is None:
            option.metavar = ""


class CommandGroup(typer.core.TyperGroup):
    """A group of commands whose help shows flags as flags (see `show_flags_as_flags`).

    Every group of the tree uses it: Click resolves each command through its group's
    `get_command`, for running it and for its `--help` alike.
    """

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            show_flags_as_flags(command, ctx)
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        show_flags_as_flags(self, ctx)
        super().format_help(ctx, formatter)


MARKUP_MODE: Final = "markdown"
"""How help texts are rendered: docstring paragraphs are reflowed, `code` is marked."""


def command_group(help_text: str) -> typer.Typer:
    """A sub-app of `carbonledger` (`log`, `meter`, `anchor`, …); called bare, it shows its help."""
    return typer.Typer(
        cls=CommandGroup, help=help_text, no_args_is_help=True, rich_markup_mode=MARKUP_MODE
    )


# ------------------------------------------------------------------------ settings


@dataclass(frozen=True)
class GlobalOptions:
    """The root options (`carbonledger --data-dir DIR …`), kept on the Click context."""

    data_dir: Path | None = None


def global_options(ctx: typer.Context) -> GlobalOptions:
    root = ctx.find_root()
    return root.obj if isinstance(root.obj, GlobalOptions) else GlobalOptions()


def invalid_setting(error: ValidationError) -> CliError:
    first = error.errors()[0]
    name = "CARBONLEDGER_" + "_".join(str(part) for part in first["loc"]).upper()
    return CliError(f"invalid setting {name}: {first['msg']}", EXIT_USAGE)


def api_settings(ctx: typer.Context) -> ApiSettings:
    """The registry's settings: CARBONLEDGER_* variables, `--data-dir` on top."""
    from pydantic import ValidationError

    from api.settings import ApiSettings  # pydantic-settings is slow to import

    overrides: dict[str, Any] = {}
    data_dir = global_options(ctx).data_dir
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    try:
        return ApiSettings(**overrides)
    except ValidationError as error:
        raise invalid_setting(error) from error


def chain_settings() -> ChainSettings:
    from pydantic import ValidationError

    from attestation.chain.client import ChainSettings

    try:
        return ChainSettings()
    except ValidationError as error:
        raise invalid_setting(error) from error


def redacted_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# ------------------------------------------------------------- opening the registry


def not_initialised(where: str) -> CliError:
    return CliError(
        f"the registry is not initialised ({where}); run `carbonledger init` "
        "or point --data-dir / CARBONLEDGER_DATABASE_URL at an initialised one",
        EXIT_UNAVAILABLE,
    )


def connect(settings: ApiSettings, *, allow_outdated_schema: bool = False) -> Database:
    """A database that holds an initialised registry at this version's schema.

    Only `init` and `serve` migrate: other commands must not create or alter anything,
    least of all when pointed at the wrong directory or database by mistake.
    """
    from sqlalchemy import exc as sqlalchemy_exc
    from sqlalchemy.engine import make_url

    from ledger.storage.db import Database
    from ledger.storage.revision import current_revision, schema_head

    url = settings.resolved_database_url()
    parsed = make_url(url)
    # Connecting to SQLite would create an empty database file (and its directory).
    if (
        parsed.get_backend_name() == "sqlite"
        and parsed.database not in (None, "", ":memory:")
        and not Path(str(parsed.database)).is_file()
    ):
        raise not_initialised(f"no database file at {parsed.database}")
    database = Database(url)
    try:
        with database.engine.connect() as connection:
            current = current_revision(connection)
    except (sqlalchemy_exc.OperationalError, sqlalchemy_exc.InterfaceError) as error:
        database.dispose()
        cause = error.orig if error.orig is not None else error
        raise CliError(
            f"cannot reach the database at {redacted_url(url)}: {cause}", EXIT_UNAVAILABLE
        ) from error
    if current is None:
        database.dispose()
        raise not_initialised(f"no schema in {redacted_url(url)}")
    head = schema_head(current)
    if current != head and not allow_outdated_schema:
        database.dispose()
        raise CliError(
            f"the database schema is at revision {current} but this version of "
            f"carbonledger uses {head}; run `carbonledger init` to migrate it",
            EXIT_UNAVAILABLE,
        )
    return database


@contextmanager
def open_log(settings: ApiSettings) -> Iterator[Log]:
    """The log alone: proofs need no signing key, so a host without one can serve them."""
    from ledger.log.store import Log

    database = connect(settings)
    try:
        yield Log(database)
    finally:
        database.dispose()


@contextmanager
def open_registry(settings: ApiSettings) -> Iterator[Registry]:
    from ledger.registry import open_registry as open_initialised

    connect(settings).dispose()
    registry = open_initialised(settings, migrate=False)
    try:
        yield registry
    finally:
        registry.close()


def organisation_named(database: Database, given: str) -> str:
    """The id of the organisation named `given` (as `admin create-client --org` made it),
    or whose id it is."""
    from sqlalchemy import select

    from ledger.access.models import Organisation

    with database.read() as session:
        if session.get(Organisation, given) is not None:
            return given
        found = session.execute(
            select(Organisation.id).where(Organisation.name == given.strip())
        ).scalar_one_or_none()
    if found is None:
        fail(f"no organisation named {given!r} (create it with `admin create-client --org`)")
    return found


# ------------------------------------------------------------------------ the chain


@contextmanager
def chain_errors() -> Iterator[None]:
    """Chain failures as the CLI's one-line errors: unreachable or misconfigured is 3."""
    from attestation.chain.errors import ChainError

    try:
        yield
    except ChainError as error:
        raise CliError(str(error), EXIT_UNAVAILABLE) from error


def checked_rpc_url(url: str, option: str) -> str:
    """`url` if it can name a JSON-RPC endpoint; else a usage error that says how to fix it."""
    from attestation.chain.rpc import rpc_url_problem

    problem = rpc_url_problem(url)
    if problem is not None:
        fail(f"{option}: {problem}")
    return url


@contextmanager
def open_chain(ctx: typer.Context) -> Iterator[tuple[Chain, Path]]:
    """The chain the registry anchors on (embedded, or CARBONLEDGER_CHAIN_RPC with its key)."""
    from attestation.chain.connect import open_chain as open_configured
    from attestation.chain.errors import ChainError
    from attestation.chain.rpc import unreachable_message

    data_dir = api_settings(ctx).data_dir
    settings = chain_settings()
    if settings.chain_rpc is not None:
        checked_rpc_url(settings.chain_rpc, "CARBONLEDGER_CHAIN_RPC")
    try:
        chain = open_configured(settings, data_dir)
    except ChainError as error:
        # web3's transport errors (requests, urllib3) are OSErrors: say what to check.
        if settings.chain_rpc is not None and isinstance(error.__cause__, OSError):
            fail(unreachable_message(settings.chain_rpc, error.__cause__), EXIT_UNAVAILABLE)
        fail(str(error), EXIT_UNAVAILABLE)
    try:
        yield chain, data_dir
    finally:
        chain.close()


# -------------------------------------------------------------------------- inputs


def utc_option(text: str, option: str) -> int:
    """Epoch seconds of a time given on the command line, spelled as in every entry
    (`ledger.times`, DESIGN §4.1)."""
    from ledger.times import UtcTimeError, parse_utc

    try:
        return parse_utc(text, option)
    except UtcTimeError as error:
        fail(str(error))


def one_stdin(*sources: str | Path | None) -> None:
    if sum(str(source) == STDIN for source in sources if source is not None) > 1:
        fail("only one input can be read from stdin (-); give the others as files")


def source_name(source: str) -> str:
    return "stdin" if source == STDIN else source


def read_bytes(source: str, limit: int, what: str) -> bytes:
    """A file's (or stdin's) bytes, refusing more than `limit`: a wrong file (a disk image,
    /dev/zero) must not be read into memory whole."""
    if source == STDIN:
        if sys.stdin is None or sys.stdin.isatty():
            fail(f"expected {what} on stdin, but stdin is a terminal; pipe it in or give a file")
        data = sys.stdin.buffer.read(limit + 1)
    else:
        try:
            with Path(source).open("rb") as handle:
                data = handle.read(limit + 1)
        except OSError as error:
            fail(f"cannot read {what} from {source}: {error.strerror or error}")
    if len(data) > limit:
        fail(f"{source_name(source)} is larger than {limit} bytes; is it {what}?")
    return data


MAX_LINE_BYTES = 64 * 1024
"""A CSV row of readings is ~200 bytes; the bound stops a file without line breaks (a wrong
file, a binary) from being read into memory whole. The csv module bounds a quoted field
spanning lines."""
BYTE_ORDER_MARK = "\ufeff"


class InputError(Exception):
    """The input cannot be read on from here (what came before it was used)."""


class CountingLines:
    """Text lines of a binary file, each at most MAX_LINE_BYTES, counting the bytes consumed
    (for a progress bar: a text file's tell() is disabled while it is iterated).

    Decoding is strict: a byte sequence that is not UTF-8 stops the reading at that line. A
    byte order mark at the start (spreadsheets write one) is dropped.
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
                raise InputError(
                    f"line {self.line} is longer than {MAX_LINE_BYTES} bytes; not a readings CSV"
                )
            try:
                text = chunk.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"line {self.line} is not UTF-8 text") from exc
            if self.line == 1 and text.startswith(BYTE_ORDER_MARK):
                text = text[1:]
            yield text


DECIMAL_CELL = re.compile(r"^[0-9]{1,16}$")
"""An integer cell: plain decimal digits (no sign, spaces or exponent), at most 16 of them."""


def decimal_cell(value: str) -> int | None:
    return int(value) if DECIMAL_CELL.fullmatch(value) else None


@dataclass(frozen=True, slots=True)
class CsvRecord:
    number: int
    """Spreadsheet row number: the header is row 1."""
    values: dict[str, str] | None
    """Cell by column name; None when the row has another cell count than the header."""
    problem: str | None = None


def csv_records(lines: Iterable[str], columns: Sequence[str]) -> Iterator[CsvRecord]:
    """The rows of a CSV file whose header names exactly `columns` (in any order).

    RFC 4180 quoting; blank lines are skipped; a row with the wrong cell count comes with
    its problem instead of values. Raises InputError for a bad header or broken quoting
    (the csv module cannot resynchronise after one, so reading stops there).
    """
    import csv

    reader = csv.reader(lines, strict=True)
    expected = ",".join(columns)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise InputError(f"the header is not valid CSV: {exc}") from exc
    if header is None:
        raise InputError(f"the file is empty; the first row must be the header {expected}")
    names = [name.strip() for name in header]
    if sorted(names) != sorted(columns):
        missing = sorted(set(columns) - set(names))
        extra = sorted(set(names) - set(columns))
        raise InputError(
            f"the header must name exactly the columns {expected} (any order); "
            f"missing {missing}, unexpected or repeated {extra or sorted(names)}"
        )
    number = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InputError(f"row {number + 1}: not valid CSV ({exc})") from exc
        number += 1
        if not cells:
            continue  # a blank line carries no reading
        if len(cells) != len(names):
            yield CsvRecord(number, None, f"{len(cells)} cells; the header has {len(names)}")
            continue
        yield CsvRecord(number, dict(zip(names, cells, strict=True)))


# ------------------------------------------------------------------ expected errors

# (module, exception class, exit code). An exception can only be an instance of a class
# whose module is loaded, so `explain` looks the classes up in sys.modules instead of
# importing them: the verify commands must not load SQLAlchemy just to rule it out.
# tests/cli/test_cli_structure.py checks that every entry names a real exception class.
EXPECTED_ERRORS: tuple[tuple[str, str, int], ...] = (
    ("ledger.log.store", "LogNotInitialisedError", EXIT_UNAVAILABLE),
    ("ledger.log.store", "LogError", EXIT_UNAVAILABLE),
    ("ledger.keyfiles", "KeyFileError", EXIT_UNAVAILABLE),
    ("api.security", "TokenSecretError", EXIT_UNAVAILABLE),
    ("attestation.chain.errors", "ChainError", EXIT_UNAVAILABLE),
    ("ledger.access.clients", "ClientError", EXIT_USAGE),
    ("ledger.log.merkle", "ProofRequestError", EXIT_USAGE),
    ("ledger.log.checkpoint", "CheckpointError", EXIT_USAGE),
)
DATABASE_ERRORS = ("OperationalError", "InterfaceError")
"""`sqlalchemy.exc` classes that mean the database cannot be reached (exit 3)."""


def explain(error: BaseException) -> CliError | None:
    """The one-line message and exit code of an expected exception; None for a bug."""
    if isinstance(error, CliError):
        return error
    for module_name, class_name, exit_code in EXPECTED_ERRORS:
        module = sys.modules.get(module_name)
        if module is not None and isinstance(error, getattr(module, class_name)):
            return CliError(str(error), exit_code)
    sqlalchemy_exc = sys.modules.get("sqlalchemy.exc")
    if sqlalchemy_exc is not None and isinstance(
        error, tuple(getattr(sqlalchemy_exc, name) for name in DATABASE_ERRORS)
    ):
        cause = getattr(error, "orig", None) or error
        return CliError(f"database error: {cause}", EXIT_UNAVAILABLE)
    return None
