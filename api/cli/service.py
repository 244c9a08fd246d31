"""`carbonledger init` and `carbonledger serve`: set up a registry and run its HTTP API.

The only two commands that create or migrate anything (docs/decisions.md, "CLI
conventions"); every other command refuses an uninitialised or outdated database.
"""

from __future__ import annotations

import base64
from typing import Annotated

import typer

from api.cli.common import (
    JsonOption,
    api_settings,
    connect,
    print_field,
    print_headline,
    redacted_url,
    stdout_console,
    write_machine,
)


def init_command(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Create the registry, or check and keep an existing one.

    Creates what is missing (data directory, database schema, log key with mode 0600,
    empty log, token secret) and never overwrites what exists, so it is safe to re-run.
    Prints the log's origin and the verifier key that checks its checkpoints.
    """
    from api.schemas.log import LogInfo
    from api.security import ensure_token_secret
    from ledger.registry import initialise_registry

    settings = api_settings(ctx)
    key_file = settings.resolved_log_key_file()
    key_existed = key_file.exists()
    token_existed = settings.resolved_token_secret_file().exists()
    registry = initialise_registry(settings)
    try:
        token_path = ensure_token_secret(settings)
        info = LogInfo.from_registry(registry)
    finally:
        registry.close()
    if json_output:
        write_machine(info.model_dump_json(by_alias=True))
        return

    console = stdout_console()
    print_headline(console, "Registry ready.")
    print_field(console, "data dir", str(settings.data_dir.resolve()))
    print_field(console, "database", redacted_url(settings.resolved_database_url()))
    print_field(console, "log key", str(key_file), "kept" if key_existed else "created, mode 0600")
    if token_path is None:
        print_field(console, "token secret", "from CARBONLEDGER_TOKEN_SECRET")
    else:
        note = "kept" if token_existed else "created, mode 0600"
        print_field(console, "token secret", str(token_path), note)
    print_field(console, "origin", info.origin)
    print_field(console, "tree size", str(info.size))
    print_field(console, "root hash", base64.b64encode(info.root_hash).decode())
    print_field(console, "verifier key", info.verifier_key)
    print_headline(
        console,
        "Publish the verifier key: anyone checks checkpoints with it "
        "(carbonledger log verify-inclusion --checkpoint NOTE --key KEY).",
        style="dim",
    )


def serve_command(
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
    from api.security import load_token_secret
    from ledger.keyfiles import load_ed25519_key_file

    settings = api_settings(ctx)
    settings = settings.model_copy(
        update={"host": host or settings.host, "port": port or settings.port}
    )
    # Fail before binding, with a message that says what to do, rather than from inside
    # the server's start-up. The app migrates on start, so an older schema is fine here.
    connect(settings, allow_outdated_schema=True).dispose()
    load_ed25519_key_file(settings.resolved_log_key_file())
    load_token_secret(settings)

    from api.app import create_app
    from api.server import run_server

    run_server(create_app(settings), settings.host, settings.port)
