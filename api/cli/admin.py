"""`carbonledger admin create-client`: organisations' API clients (direct database access)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Annotated

import typer

from api.cli.common import (
    JsonOption,
    api_settings,
    command_group,
    connect,
    fail,
    print_field,
    print_headline,
    print_note,
    stdout_console,
    write_machine,
)

admin_app = command_group("Administration: API clients.")

SCOPE_SEPARATORS = re.compile(r"[\s,]+")


def collect_scopes(scopes: str | None, scope: Iterable[str]) -> list[str]:
    from api.security import KNOWN_SCOPES

    collected: list[str] = []
    for text in [scopes or "", *scope]:
        for item in SCOPE_SEPARATORS.split(text):
            if item and item not in collected:
                collected.append(item)
    if not collected:
        fail('give the client\'s scopes with --scopes "a b" or --scope a --scope b')
    unknown = [item for item in collected if item not in KNOWN_SCOPES]
    if unknown:
        fail(
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
    from ledger.access.clients import create_client

    scope_list = collect_scopes(scopes, scope or [])
    database = connect(api_settings(ctx))
    try:
        issued = create_client(database, org, scope_list)
    finally:
        database.dispose()
    if json_output:
        write_machine(
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
    console = stdout_console()
    print_headline(console, f"Client created for {issued.organisation_name}.")
    print_field(console, "client id", issued.client_id)
    print_field(console, "client secret", issued.client_secret)
    print_field(console, "scopes", " ".join(sorted(issued.scopes)))
    print_note("Store the secret now: it is shown only once and cannot be recovered.")


client_app = command_group("API clients: list, disable, rotate.")
admin_app.add_typer(client_app, name="client")

ClientIdArgument = Annotated[str, typer.Argument(metavar="CLIENT_ID", show_default=False)]


@client_app.command("list")
def list_clients_command(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """List every API client: id, organisation, scopes, created, disabled."""
    from ledger.access.clients import list_clients

    database = connect(api_settings(ctx))
    try:
        clients = list_clients(database)
    finally:
        database.dispose()
    rows = [
        {
            "clientId": client.client_id,
            "organisation": client.organisation_name,
            "organisationId": client.organisation_id,
            "scopes": sorted(client.scopes),
            "createdAt": client.created_at.isoformat(),
            "disabledAt": client.disabled_at.isoformat() if client.disabled_at else None,
        }
        for client in clients
    ]
    if json_output:
        write_machine(json.dumps(rows))
        return
    console = stdout_console()
    for client in clients:
        state = f"disabled {client.disabled_at.isoformat()}" if client.disabled_at else "enabled"
        scopes = " ".join(sorted(client.scopes))
        console.print(
            f"{client.client_id}  {client.organisation_name}  {scopes}  {state}",
            markup=False,
            highlight=False,
        )


@client_app.command("disable")
def disable_client_command(
    ctx: typer.Context, client_id: ClientIdArgument, json_output: JsonOption = False
) -> None:
    """Disable a client for good: no new tokens; its tokens are refused within
    CARBONLEDGER_CLIENT_CHECK_SECONDS (default 5 s) by a running service."""
    from ledger.access.clients import ClientError, disable_client

    database = connect(api_settings(ctx))
    try:
        record = disable_client(database, client_id)
    except ClientError as error:
        fail(str(error))
    finally:
        database.dispose()
    assert record.disabled_at is not None
    if json_output:
        write_machine(
            json.dumps({"clientId": record.client_id, "disabledAt": record.disabled_at.isoformat()})
        )
        return
    print_headline(stdout_console(), f"Client {record.client_id} is disabled.")


@client_app.command("rotate")
def rotate_client_command(
    ctx: typer.Context, client_id: ClientIdArgument, json_output: JsonOption = False
) -> None:
    """Give a client a new secret (shown once); the old secret and its tokens stop working."""
    from ledger.access.clients import ClientError, rotate_client_secret

    database = connect(api_settings(ctx))
    try:
        issued = rotate_client_secret(database, client_id)
    except ClientError as error:
        fail(str(error))
    finally:
        database.dispose()
    if json_output:
        write_machine(
            json.dumps({"clientId": issued.client_id, "clientSecret": issued.client_secret})
        )
        return
    console = stdout_console()
    print_headline(console, f"New secret for {issued.client_id}.")
    print_field(console, "client secret", issued.client_secret)
    print_note("Store the secret now: it is shown only once and cannot be recovered.")
