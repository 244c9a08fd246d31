"""Which schema revision a database is at, and which one this version of carbonledger runs on.

Read with one query on the `alembic_version` table instead of through Alembic: every CLI
command that opens a registry checks the revision, and importing Alembic for it would cost
a sixth of a second each time. `SCHEMA_REVISION` names the newest migration, and
tests/ledger/test_schema_revision.py holds it equal to Alembic's head of the migration
scripts, so adding a migration without updating it fails the suite. A database at any other
revision is compared with Alembic's head itself (the slow path, rare by construction).
"""

from __future__ import annotations

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

SCHEMA_REVISION = "0005"
"""The newest migration in `ledger/storage/migrations/versions/`."""
VERSION_TABLE = "alembic_version"


def current_revision(connection: Connection) -> str | None:
    """The database's schema revision; None when it has no schema (never initialised)."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    found = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()  # noqa: S608 - a constant
    # One row after any number of linear upgrades; Alembic leaves the table empty only
    # after a downgrade to base, which is "no schema" too.
    assert len(found) <= 1, f"{VERSION_TABLE} holds {len(found)} revisions; migrations branched"
    return str(found[0]) if found else None


def schema_head(current: str | None = None) -> str:
    """The revision this code runs on: the constant when the database is at it, else
    Alembic's head of the migration scripts, so that a message naming it is exact."""
    if current == SCHEMA_REVISION:
        return SCHEMA_REVISION
    from alembic.script import ScriptDirectory  # noqa: PLC0415 - the slow path only

    from ledger.storage.migrate import alembic_config  # noqa: PLC0415

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the migration scripts have a head"
    return head
