"""Alembic environment: uses the connection handed over by `ledger.storage.migrate`,
or `CARBONLEDGER_DATABASE_URL` / the default SQLite file when run from the alembic CLI."""

from __future__ import annotations

from alembic import context

from ledger.settings import LedgerSettings
from ledger.storage.db import Database
from ledger.storage.schema import metadata

target_metadata = metadata
connection = context.config.attributes.get("connection")

if connection is not None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    database = Database(LedgerSettings().resolved_database_url())
    with database.write_connection() as own_connection:
        context.configure(
            connection=own_connection, target_metadata=target_metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()
