"""The `carbonledger` command line: set up and serve a registry, issue API clients,
and produce and check log proofs.

Exit codes (docs/decisions.md):
    0  success
    1  a proof or checkpoint did not verify (only the `log verify-*` commands)
    2  the command was used wrongly or its input is malformed
    3  the registry cannot be used: not initialised, unreachable, bad key file

Streams: machine output (proof JSON, checkpoint notes, `--json`) goes to stdout and
nothing else does there for those commands; human messages go through Rich, errors
always as one line on stderr. The `log verify-*` commands never read settings or open
a database, so a verifier can run them on any machine with nothing but the files.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.text import Text
from sqlalchemy import exc as sqlalchemy_exc
from sqlalchemy.engine import make_url
from typer.core import TyperGroup

from api.cli.audit import audit_app
from api.cli.chain import anchor_app, chain_app, verify_command
from api.cli.gateway import gateway_app, meter_simulate_command
from api.cli.readings import readings_app
from api.cli.reports import report_app
from api.schemas.log import ConsistencyProofBody, InclusionProofBody, LogInfo
from api.security import KNOWN_SCOPES, TokenSecretError, ensure_token_secret, load_token_secret
from api.settings import ApiSettings
from ledger.access.clients import ClientError, create_client
from ledger.keyfiles import KeyFileError, load_ed25519_key_file
from ledger.log.checkpoint import Checkpoint, CheckpointError, NoteVerifier, open_checkpoint
from ledger.log.merkle import (
    HASH_SIZE,
    ProofRequestError,
    VerificationError,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from ledger.log.store import Log, LogError, LogNotInitialisedError
from ledger.storage.db import Database

EXIT_OK = 0
EXIT_VERIFICATION_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3

MAX_PROOF_BYTES = 1 << 20
"""A proof has at most 128 hashes (~6 KiB of JSON); the cap stops a wrong file
(a disk image, /dev/zero) from being read into memory whole."""
MAX_LEAF_BYTES = 64 << 20
STDIN = "-"

if TYPE_CHECKING:
    from ledger.registry import Registry

_Model = TypeVar("_Model", bound=BaseModel)


class CliError(Exception):
    """An expected failure: shown as one `error:` line on stderr, no traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


# ------------------------------------------------------------------------- output


def _stdout() -> Console:
    # Built per call so the console follows sys.stdout as it is now (test runners swap
    # it); soft_wrap keeps long values such as keys and secrets on one copyable line.
    return Console(soft_wrap=True, highlight=False)


def _stderr() -> Console:
    return Console(stderr=True, soft_wrap=True, highlight=False)


def _fail_line(message: str) -> None:
    # Multi-line messages (psycopg's, for one) are folded so an error stays one line.
    single = " ".join(message.split())
    _stderr().print(Text.assemble(("error: ", "bold red"), single))


def _write_machine(text: str) -> None:
    """Exact bytes for pipes: no Rich markup, wrapping or colour."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def _field(console: Console, label: str, value: str, note: str = "") -> None:
    line = Text.assemble(("  " + label.ljust(14), "bold"), value)
    if note:
        line.append(f"  ({note})", style="dim")
    console.print(line)


# ------------------------------------------------------------------ error handling


def _explain(error: BaseException) -> CliError | None:
    """Map the domain's expected exceptions to messages and exit codes."""
    if isinstance(error, CliError):
        return error
    if isinstance(error, LogNotInitialisedError | KeyFileError | LogError | TokenSecretError):
        return CliError(str(error), EXIT_UNAVAILABLE)
    if isinstance(error, ClientError | ProofRequestError | CheckpointError):
        return CliError(str(error), EXIT_USAGE)
    if isinstance(error, sqlalchemy_exc.OperationalError | sqlalchemy_exc.InterfaceError):
        cause = error.orig if error.orig is not None else error
        return CliError(f"database error: {cause}", EXIT_UNAVAILABLE)
    return None


class _Group(TyperGroup):
    """Runs the command tree with Click's standalone handling off, so that usage errors
    and the domain's expected errors print as one `error:` line instead of a panel or a
    traceback. Anything else is a bug and keeps Typer's traceback."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(
                args, prog_name, complete_var, standalone_mode, windows_expand_args, **extra
            )
        try:
            result = super().main(
                args, prog_name, complete_var, False, windows_expand_args, **extra
            )
        except typer.Abort:
            _fail_line("aborted")
            sys.exit(EXIT_USAGE)
        except typer.TyperException as error:  # Click's exceptions (vendored by Typer)
            if type(error).__name__ == "NoArgsIsHelpError":
                # A group called without a subcommand: its help is the answer. Typer's
                # Rich formatter has printed it already and left the message empty.
                if error.format_message().strip():
                    typer.echo(error.format_message(), err=True)
                sys.exit(EXIT_USAGE)
            message = error.format_message()
            context = getattr(error, "ctx", None)
            if context is not None:
                message += f" (see `{context.command_path} --help`)"
            _fail_line(message)
            sys.exit(error.exit_code)
        except Exception as error:
            explained = _explain(error)
            if explained is None:
                raise
            _fail_line(explained.message)
            sys.exit(explained.exit_code)
        # Without standalone mode, Click returns the code of an explicit exit (--help,
        # typer.Exit) and the command's return value (None) otherwise.
        sys.exit(result if isinstance(result, int) else EXIT_OK)


# ------------------------------------------------------------------------- the app


def _version(value: bool) -> None:
    if value:
        typer.echo(f"carbonledger {metadata.version('carbonledger')}")
        raise typer.Exit(EXIT_OK)


app = typer.Typer(
    name="carbonledger",
    cls=_Group,
    rich_markup_mode="markdown",  # reflows docstring paragraphs in --help
    no_args_is_help=True,
    add_completion=False,
    # Locals can hold database URLs with passwords and client secrets.
    pretty_exceptions_show_locals=False,
)
log_app = typer.Typer(
    help="Checkpoints and proofs of the log, and their offline verification.",
    no_args_is_help=True,
)
admin_app = typer.Typer(help="Administration: API clients.", no_args_is_help=True)
meter_app = typer.Typer(
    help="Meters (device side): signing keys and a simulated Modbus meter.", no_args_is_help=True
)
app.add_typer(log_app, name="log")
app.add_typer(admin_app, name="admin")
app.add_typer(meter_app, name="meter")
# Commands that live in their own modules (they import api.cli.main lazily, not at load time).
meter_app.command("simulate")(meter_simulate_command)
app.add_typer(gateway_app, name="gateway")
app.add_typer(readings_app, name="readings")
app.add_typer(chain_app, name="chain")
app.add_typer(anchor_app, name="anchor")
app.add_typer(report_app, name="report")
app.add_typer(audit_app, name="audit")
# `carbonledger verify BUNDLE.json`: a command, not a group.
app.command("verify")(verify_command)


@dataclass(frozen=True)
class _GlobalOptions:
    data_dir: Path | None


@app.callback()
def _global_options(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            metavar="DIR",
            help="Registry directory (overrides CARBONLEDGER_DATA_DIR; default ./var).",
            show_default=False,
            file_okay=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Show the version and exit.", callback=_version, is_eager=True
        ),
    ] = False,
) -> None:
    """An append-only, anchored registry for energy and carbon claims.

    Settings come from CARBONLEDGER_* environment variables (see the README).
    """
    # Settings are read lazily: the verify commands must work with no settings at all.
    ctx.obj = _GlobalOptions(data_dir=data_dir)


def _settings(ctx: typer.Context) -> ApiSettings:
    options = ctx.obj if isinstance(ctx.obj, _GlobalOptions) else _GlobalOptions(None)
    overrides: dict[str, Any] = {}
    if options.data_dir is not None:
        overrides["data_dir"] = options.data_dir
    try:
        return ApiSettings(**overrides)
    except ValidationError as error:
        first = error.errors()[0]
        name = "CARBONLEDGER_" + "_".join(str(part) for part in first["loc"]).upper()
        raise CliError(f"invalid setting {name}: {first['msg']}", EXIT_USAGE) from error


def _redacted_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


# ------------------------------------------------------------- opening the registry


def _not_initialised(where: str) -> CliError:
    return CliError(
        f"the registry is not initialised ({where}); run `carbonledger init` "
        "or point --data-dir / CARBONLEDGER_DATABASE_URL at an initialised one",
        EXIT_UNAVAILABLE,
    )


def _connect(settings: ApiSettings, *, allow_outdated_schema: bool = False) -> Database:
    """A database that holds an initialised registry at this version's schema.

    Only `init` and `serve` migrate: other commands must not create or alter anything,
    least of all when pointed at the wrong directory or database by mistake.
    """
    # Imported here: Alembic takes a third of the CLI's start-up time, and the verify
    # commands, which a verifier runs most often, never touch a database.
    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415
    from alembic.script import ScriptDirectory  # noqa: PLC0415

    from ledger.storage.migrate import alembic_config  # noqa: PLC0415

    url = settings.resolved_database_url()
    parsed = make_url(url)
    # Connecting to SQLite would create an empty database file (and its directory).
    if (
        parsed.get_backend_name() == "sqlite"
        and parsed.database not in (None, "", ":memory:")
        and not Path(str(parsed.database)).is_file()
    ):
        raise _not_initialised(f"no database file at {parsed.database}")
    database = Database(url)
    try:
        with database.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except (sqlalchemy_exc.OperationalError, sqlalchemy_exc.InterfaceError) as error:
        database.dispose()
        cause = error.orig if error.orig is not None else error
        raise CliError(
            f"cannot reach the database at {_redacted_url(url)}: {cause}", EXIT_UNAVAILABLE
        ) from error
    if current is None:
        database.dispose()
        raise _not_initialised(f"no schema in {_redacted_url(url)}")
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if current != head and not allow_outdated_schema:
        database.dispose()
        raise CliError(
            f"the database schema is at revision {current} but this version of "
            f"carbonledger uses {head}; run `carbonledger init` to migrate it",
            EXIT_UNAVAILABLE,
        )
    return database


@contextmanager
def _open_log(settings: ApiSettings) -> Iterator[Log]:
    """The log alone: proofs need no signing key, so a host without one can serve them."""
    database = _connect(settings)
    try:
        yield Log(database)
    finally:
        database.dispose()


@contextmanager
def _open_registry(settings: ApiSettings) -> Iterator[Registry]:
    from ledger.registry import open_registry  # noqa: PLC0415 - pulls in Alembic, see _connect

    _connect(settings).dispose()
    registry = open_registry(settings, migrate=False)
    try:
        yield registry
    finally:
        registry.close()


# ----------------------------------------------------------------- init and serve


JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON on stdout (for scripts) instead of text.")
]


@app.command()
def init(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Create the registry, or check and keep an existing one.

    Creates what is missing (data directory, database schema, log key with mode 0600,
    empty log, token secret) and never overwrites what exists, so it is safe to re-run.
    Prints the log's origin and the verifier key that checks its checkpoints.
    """
    from ledger.registry import initialise_registry  # noqa: PLC0415 - see _connect

    settings = _settings(ctx)
    key_file = settings.resolved_log_key_file()
    key_existed = key_file.exists()
    token_existed = settings.resolved_token_secret_file().exists()
    registry = initialise_registry(settings)
    try:
        token_path = ensure_token_secret(settings)
        head = registry.log.head()
        info = LogInfo(
            origin=head.origin,
            size=head.size,
            root_hash=head.root,
            verifier_key=registry.signer.verifier.encode(),
        )
    finally:
        registry.close()
    if json_output:
        _write_machine(info.model_dump_json(by_alias=True))
        return

    console = _stdout()
    console.print(Text("Registry ready.", style="bold green"))
    _field(console, "data dir", str(settings.data_dir.resolve()))
    _field(console, "database", _redacted_url(settings.resolved_database_url()))
    _field(console, "log key", str(key_file), "kept" if key_existed else "created, mode 0600")
    if token_path is None:
        _field(console, "token secret", "from CARBONLEDGER_TOKEN_SECRET")
    else:
        note = "kept" if token_existed else "created, mode 0600"
        _field(console, "token secret", str(token_path), note)
    _field(console, "origin", info.origin)
    _field(console, "tree size", str(info.size))
    _field(console, "root hash", base64.b64encode(info.root_hash).decode())
    _field(console, "verifier key", info.verifier_key)
    console.print(
        Text(
            "Publish the verifier key: anyone checks checkpoints with it "
            "(carbonledger log verify-inclusion --checkpoint NOTE --key KEY).",
            style="dim",
        )
    )


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None,
        typer.Option(
            metavar="HOST",
            help="Address to bind (default CARBONLEDGER_HOST or 127.0.0.1).",
            show_default=False,
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            metavar="PORT",
            help="Port to bind (default CARBONLEDGER_PORT or 8000).",
            min=1,
            max=65535,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the HTTP API.

    The database schema is migrated on start. Run `carbonledger init` once first.
    """
    settings = _settings(ctx)
    settings = settings.model_copy(
        update={"host": host or settings.host, "port": port or settings.port}
    )
    # Fail before binding, with a message that says what to do, rather than from inside
    # the server's start-up. The app migrates on start, so an older schema is fine here.
    _connect(settings, allow_outdated_schema=True).dispose()
    load_ed25519_key_file(settings.resolved_log_key_file())
    load_token_secret(settings)

    # Imported here: the web stack is slow to import and only `serve` needs it.
    from api.app import create_app  # noqa: PLC0415
    from api.server import run_server  # noqa: PLC0415

    run_server(create_app(settings), settings.host, settings.port)


# --------------------------------------------------------------------------- admin


_SCOPE_SEPARATORS = re.compile(r"[\s,]+")


def _collect_scopes(scopes: str | None, scope: Iterable[str]) -> list[str]:
    collected: list[str] = []
    for text in [scopes or "", *scope]:
        for item in _SCOPE_SEPARATORS.split(text):
            if item and item not in collected:
                collected.append(item)
    if not collected:
        raise CliError('give the client\'s scopes with --scopes "a b" or --scope a --scope b')
    unknown = [item for item in collected if item not in KNOWN_SCOPES]
    if unknown:
        raise CliError(
            f"unknown scope{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"known scopes: {', '.join(sorted(KNOWN_SCOPES))}"
        )
    return collected


@admin_app.command("create-client")
def create_client_command(
    ctx: typer.Context,
    org: Annotated[
        str,
        typer.Option(
            "--org", metavar="NAME", help="Organisation name (created if new).", show_default=False
        ),
    ],
    scopes: Annotated[
        str | None,
        typer.Option(
            "--scopes",
            metavar="SCOPES",
            help='Scopes, space- or comma-separated: "log:read admin".',
            show_default=False,
        ),
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope", metavar="SCOPE", help="One scope; repeat for more.", show_default=False
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Create an API client and print its id and secret.

    The secret is shown only this once: it is stored hashed and cannot be recovered.
    The organisation is created if it does not exist yet.
    """
    scope_list = _collect_scopes(scopes, scope or [])
    settings = _settings(ctx)
    database = _connect(settings)
    try:
        issued = create_client(database, org, scope_list)
    finally:
        database.dispose()
    if json_output:
        _write_machine(
            json.dumps(
                {
                    "clientId": issued.client_id,
                    "clientSecret": issued.client_secret,
                    "organisationId": issued.organisation_id,
                    "organisation": issued.organisation_name,
                    "scopes": sorted(issued.scopes),
                }
            )
        )
        return
    console = _stdout()
    console.print(Text(f"Client created for {issued.organisation_name}.", style="bold green"))
    _field(console, "client id", issued.client_id)
    _field(console, "client secret", issued.client_secret)
    _field(console, "scopes", " ".join(sorted(issued.scopes)))
    _stderr().print(
        Text(
            "Store the secret now: it is shown only once and cannot be recovered.",
            style="bold yellow",
        )
    )


# --------------------------------------------------------------------------- meter


@meter_app.command("keygen")
def meter_keygen_command(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            metavar="FILE",
            help="Where to write the PKCS#8 PEM private key (mode 0600, never overwritten).",
            show_default=False,
            dir_okay=False,
        ),
    ],
    alg: Annotated[
        str, typer.Option("--alg", metavar="ALG", help="Ed25519 or ES256 (ECDSA P-256).")
    ] = "Ed25519",
    json_output: JsonOption = False,
) -> None:
    """Create a meter signing key; print its public key (SPKI, base64) and key id.

    The private key stays on the device; register the public key with the registry
    (`POST /v1/meters/{id}/keys`).
    """
    # Deferred: only this command needs the device-side package.
    from meter_signing.keys import create_meter_key_file  # noqa: PLC0415

    if alg not in {"Ed25519", "ES256"}:
        raise CliError(f"unknown --alg {alg!r}; use Ed25519 or ES256", EXIT_USAGE)
    try:
        key = create_meter_key_file(out, "ES256" if alg == "ES256" else "Ed25519")
    except KeyFileError as error:
        raise CliError(str(error), EXIT_USAGE) from error
    if json_output:
        _write_machine(
            json.dumps({"alg": key.alg, "keyId": key.key_id, "publicKey": key.public_spki_b64})
        )
        return
    console = _stdout()
    console.print(Text(f"Meter key written to {out} (mode 0600).", style="bold green"))
    _field(console, "algorithm", key.alg)
    _field(console, "key id", key.key_id)
    _field(console, "public key", key.public_spki_b64)


# ----------------------------------------------------------- log: reading the log


@log_app.command("checkpoint")
def checkpoint_command(
    ctx: typer.Context,
    size: Annotated[
        int | None,
        typer.Option(
            metavar="SIZE",
            help="An earlier tree size (default: the current one).",
            min=0,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print the signed checkpoint note (C2SP tlog-checkpoint) of the log."""
    with _open_registry(_settings(ctx)) as registry:
        note = registry.log.checkpoint(registry.signer, size)
    _write_machine(note)


@log_app.command("prove")
def prove_command(
    ctx: typer.Context,
    index: Annotated[int, typer.Option(metavar="N", help="Leaf index.", min=0, show_default=False)],
    size: Annotated[
        int | None,
        typer.Option(
            metavar="SIZE",
            help="Tree size to prove against (default: the current size).",
            min=1,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print the inclusion proof of one leaf as JSON (the API's wire format)."""
    with _open_log(_settings(ctx)) as log:
        proof = log.inclusion_proof(index, size)
    _write_machine(InclusionProofBody.from_proof(proof).model_dump_json(by_alias=True))


@log_app.command("prove-consistency")
def prove_consistency_command(
    ctx: typer.Context,
    from_size: Annotated[
        int,
        typer.Option(
            "--from", metavar="SIZE", help="The older tree size.", min=1, show_default=False
        ),
    ],
    to_size: Annotated[
        int | None,
        typer.Option(
            "--to",
            metavar="SIZE",
            help="The newer tree size (default: the current size).",
            min=1,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print the consistency proof between two tree sizes as JSON (the API's wire format)."""
    with _open_log(_settings(ctx)) as log:
        proof = log.consistency_proof(from_size, to_size)
    _write_machine(ConsistencyProofBody.from_proof(proof).model_dump_json(by_alias=True))


# ----------------------------------------------------- log: offline verification


@dataclass(frozen=True)
class _Check:
    name: str
    passed: bool | None  # None: skipped because an earlier check it builds on failed
    detail: str


def _run_check(name: str, check: Callable[[], str]) -> _Check:
    """Run one check; VerificationError and CheckpointError mean it failed."""
    try:
        return _Check(name, True, check())
    except (VerificationError, CheckpointError) as error:
        return _Check(name, False, str(error))


def _report(checks: Sequence[_Check], *, anchored: bool, trust_options: str) -> None:
    console = _stdout()
    width = max(len(check.name) for check in checks)
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
        raise CliError(f"verification failed: {', '.join(failed)}", EXIT_VERIFICATION_FAILED)
    if not anchored:
        _stderr().print(
            Text(
                f"note: no trusted root was given ({trust_options}): this shows only that "
                "the proof agrees with the roots it carries.",
                style="yellow",
            )
        )


def _one_stdin(*sources: str | Path | None) -> None:
    if sum(str(source) == STDIN for source in sources if source is not None) > 1:
        raise CliError("only one input can be read from stdin (-); give the others as files")


def _source_name(source: str) -> str:
    return "stdin" if source == STDIN else source


def _read_bytes(source: str, limit: int, what: str) -> bytes:
    if source == STDIN:
        if sys.stdin is None or sys.stdin.isatty():
            raise CliError(
                f"expected {what} on stdin, but stdin is a terminal; pipe it in or give a file name"
            )
        data = sys.stdin.buffer.read(limit + 1)
    else:
        try:
            with Path(source).open("rb") as handle:
                data = handle.read(limit + 1)
        except OSError as error:
            raise CliError(
                f"cannot read {what} from {source}: {error.strerror or error}"
            ) from error
    if len(data) > limit:
        raise CliError(f"{_source_name(source)} is larger than {limit} bytes; is it {what}?")
    return data


def _parse_proof(
    data: bytes, model: type[_Model], source: str, what: str, other: tuple[str, str]
) -> _Model:
    try:
        return model.model_validate_json(data)
    except ValidationError as error:
        problems = error.errors()
        first = problems[0]
        location = ".".join(str(part) for part in first["loc"])
        message = f"{_source_name(source)} is not a valid {what}: "
        message += f"{location}: {first['msg']}" if location else first["msg"]
        if len(problems) > 1:
            message += f" (and {len(problems) - 1} more problems)"
        other_key, other_command = other
        try:
            looks_other = other_key in json.loads(data)
        except (ValueError, TypeError):
            looks_other = False
        if looks_other:
            message += f"; it looks like the other kind of proof: use `{other_command}`"
        raise CliError(message) from error


def _parse_root(value: str, option: str) -> bytes:
    """A 32-byte hash in standard base64 (as in proofs and checkpoints) or 0x-hex (as
    read from the anchor contract)."""
    try:
        if value.startswith("0x") and len(value) == 2 + 2 * HASH_SIZE:
            root = bytes.fromhex(value[2:])
        else:
            root = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as error:
        raise CliError(f"{option} must be a base64 or 0x-hex SHA-256 hash") from error
    if len(root) != HASH_SIZE:
        raise CliError(f"{option} is {len(root)} bytes; a SHA-256 hash is {HASH_SIZE}")
    return root


def _parse_verifier(key: str | None, needed_by: str) -> NoteVerifier:
    if key is None:
        raise CliError(f"{needed_by} needs --key with the log's verifier key (printed by init)")
    try:
        return NoteVerifier.parse(key)
    except CheckpointError as error:
        raise CliError(f"--key: {error}") from error


def _read_note(path: Path, option: str) -> str:
    data = _read_bytes(str(path), 1 << 20, "a checkpoint note")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CliError(f"{option} {path} is not UTF-8 text") from error


@dataclass(frozen=True)
class _Trusted:
    """A root the verifier trusts: given directly, or taken from a signed checkpoint."""

    source: str  # how the user gave it, for messages
    root: bytes | None  # None when its checkpoint failed to verify
    size: int | None  # known only from a checkpoint; a bare root does not say its size


def _trusted_root(
    root: str | None,
    checkpoint: Path | None,
    verifier: Callable[[], NoteVerifier],
    *,
    root_option: str,
    checkpoint_option: str,
    label: str,
    checks: list[_Check],
) -> _Trusted | None:
    if root is not None and checkpoint is not None:
        raise CliError(f"give {root_option} or {checkpoint_option}, not both")
    if root is not None:
        return _Trusted(root_option, _parse_root(root, root_option), None)
    if checkpoint is None:
        return None
    note = _read_note(checkpoint, checkpoint_option)
    trusted_key = verifier()
    opened: list[Checkpoint] = []

    def check_signature() -> str:
        opened.append(open_checkpoint(note, trusted_key))
        return f"{checkpoint} is signed by {trusted_key.name}, for size {opened[0].size}"

    checks.append(_run_check(label, check_signature))
    if not opened:
        return _Trusted(str(checkpoint), None, None)
    return _Trusted(str(checkpoint), opened[0].root_hash, opened[0].size)


def _compare_root(name: str, trusted: _Trusted, size: int, proof_root: bytes) -> _Check:
    if trusted.root is None:
        return _Check(name, None, "skipped: the checkpoint did not verify")
    if trusted.size is not None and trusted.size != size:
        return _Check(
            name,
            False,
            f"{trusted.source} is for size {trusted.size} but the proof is for size {size}; "
            f"use a checkpoint of size {size} (carbonledger log checkpoint --size {size})",
        )
    encoded = base64.b64encode(proof_root).decode()
    if trusted.root != proof_root:
        return _Check(
            name,
            False,
            f"the proof's root {encoded} differs from the root in {trusted.source} "
            f"({base64.b64encode(trusted.root).decode()})",
        )
    if trusted.size is None:
        # A proof verifies for several tree sizes under the same root (RFC 9162 paths
        # depend on the size only through their shape), so a bare root pins the leaf but
        # not the size the proof claims. A checkpoint pins both.
        return _Check(
            name,
            True,
            f"the proof's root is the one given with {trusted.source} "
            "(its tree size is not checked; --checkpoint checks it)",
        )
    return _Check(name, True, f"the proof's root is the one in {trusted.source} (size {size})")


ProofSource = Annotated[
    str,
    typer.Argument(metavar="FILE|-", help="Proof JSON file, or - for stdin.", show_default=False),
]
KeyOption = Annotated[
    str | None,
    typer.Option(
        "--key",
        metavar="KEY",
        help="The log's verifier key NAME+KEYID+BASE64 (printed by init), for --checkpoint.",
        show_default=False,
    ),
]


@log_app.command("verify-inclusion")
def verify_inclusion_command(
    source: ProofSource = STDIN,
    *,
    leaf_file: Annotated[
        Path | None,
        typer.Option(
            "--leaf-file",
            metavar="FILE",
            help="Raw leaf bytes; their RFC 9162 leaf hash must match.",
            show_default=False,
        ),
    ] = None,
    root: Annotated[
        str | None,
        typer.Option(
            "--root",
            metavar="HASH",
            help="Trusted root hash (base64 or 0x-hex) of the proof's size.",
            show_default=False,
        ),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            metavar="NOTE_FILE",
            help="Signed checkpoint note of the proof's size to take "
            "the trusted root from (needs --key).",
            show_default=False,
        ),
    ] = None,
    key: KeyOption = None,
) -> None:
    """Verify an inclusion proof offline; exit 1 if any check fails.

    Needs no database and no settings. Without --root or --checkpoint, it shows only
    that the proof agrees with the root it carries.
    """
    if key is not None and checkpoint is None:
        raise CliError("--key is used only with --checkpoint")
    _one_stdin(source, leaf_file, checkpoint)
    body = _parse_proof(
        _read_bytes(source, MAX_PROOF_BYTES, "an inclusion proof"),
        InclusionProofBody,
        source,
        "inclusion proof",
        ("from", "carbonledger log verify-consistency"),
    )
    leaf = None if leaf_file is None else _read_bytes(str(leaf_file), MAX_LEAF_BYTES, "a leaf")

    checks: list[_Check] = []
    if leaf is not None:

        def check_leaf() -> str:
            if leaf_hash(leaf) != body.leaf_hash:
                raise VerificationError(
                    f"the leaf hash of {leaf_file} is {leaf_hash(leaf).hex()}, "
                    f"the proof's is {body.leaf_hash.hex()}"
                )
            return f"{leaf_file} hashes to the proof's leaf hash"

        checks.append(_run_check("leaf", check_leaf))

    def check_inclusion() -> str:
        verify_inclusion(body.index, body.size, body.leaf_hash, body.proof, body.root_hash)
        return (
            f"leaf {body.index} is in the tree of size {body.size} with root "
            f"{base64.b64encode(body.root_hash).decode()}"
        )

    checks.append(_run_check("inclusion", check_inclusion))
    trusted = _trusted_root(
        root,
        checkpoint,
        partial(_parse_verifier, key, "--checkpoint"),
        root_option="--root",
        checkpoint_option="--checkpoint",
        label="checkpoint",
        checks=checks,
    )
    if trusted is not None:
        checks.append(_compare_root("trusted root", trusted, body.size, body.root_hash))
    _report(
        checks, anchored=trusted is not None, trust_options="--root, or --checkpoint with --key"
    )


@log_app.command("verify-consistency")
def verify_consistency_command(
    source: ProofSource = STDIN,
    *,
    old_root: Annotated[
        str | None,
        typer.Option(
            "--old-root",
            metavar="HASH",
            help="Trusted root (base64 or 0x-hex) at the proof's from size.",
            show_default=False,
        ),
    ] = None,
    new_root: Annotated[
        str | None,
        typer.Option(
            "--new-root",
            metavar="HASH",
            help="Trusted root (base64 or 0x-hex) at the proof's to size.",
            show_default=False,
        ),
    ] = None,
    old_checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--old-checkpoint",
            metavar="NOTE_FILE",
            help="Signed checkpoint of the from size (needs --key).",
            show_default=False,
        ),
    ] = None,
    new_checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--new-checkpoint",
            metavar="NOTE_FILE",
            help="Signed checkpoint of the to size (needs --key).",
            show_default=False,
        ),
    ] = None,
    key: KeyOption = None,
) -> None:
    """Verify a consistency proof offline; exit 1 if any check fails.

    Needs no database and no settings. Trusted roots for either end come from
    --old-root/--new-root or from signed checkpoints with --key.
    """
    if key is not None and old_checkpoint is None and new_checkpoint is None:
        raise CliError("--key is used only with --old-checkpoint or --new-checkpoint")
    _one_stdin(source, old_checkpoint, new_checkpoint)
    body = _parse_proof(
        _read_bytes(source, MAX_PROOF_BYTES, "a consistency proof"),
        ConsistencyProofBody,
        source,
        "consistency proof",
        ("index", "carbonledger log verify-inclusion"),
    )

    def check_consistency() -> str:
        verify_consistency(
            body.from_size, body.to_size, body.proof, body.old_root_hash, body.new_root_hash
        )
        return f"the tree of size {body.to_size} extends the tree of size {body.from_size}"

    checks = [_run_check("consistency", check_consistency)]
    # Parsed once, and only if a checkpoint needs it.
    verifier = functools.cache(partial(_parse_verifier, key, "--old-checkpoint/--new-checkpoint"))
    anchored = False
    for end, size, proof_root, trusted_root, checkpoint in (
        ("old", body.from_size, body.old_root_hash, old_root, old_checkpoint),
        ("new", body.to_size, body.new_root_hash, new_root, new_checkpoint),
    ):
        trusted = _trusted_root(
            trusted_root,
            checkpoint,
            verifier,
            root_option=f"--{end}-root",
            checkpoint_option=f"--{end}-checkpoint",
            label=f"{end} checkpoint",
            checks=checks,
        )
        if trusted is not None:
            anchored = True
            checks.append(_compare_root(f"trusted {end} root", trusted, size, proof_root))
    _report(
        checks,
        anchored=anchored,
        trust_options="--old-root/--new-root, or --old-checkpoint/--new-checkpoint with --key",
    )


def main() -> NoReturn:
    """Console-script entry point (`carbonledger`)."""
    app()
    # Click always exits; this line only documents that for the type checker.
    raise SystemExit(EXIT_OK)  # pragma: no cover


if __name__ == "__main__":  # `python -m api.cli.main …`, e.g. from a checkout without the script
    main()
