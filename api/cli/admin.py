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
