"""The schema revision constant the CLI checks databases against (ledger/storage/revision.py)."""

from __future__ import annotations

from alembic.script import ScriptDirectory
from sqlalchemy import text

from ledger.registry import Registry
from ledger.storage.db import Database
from ledger.storage.migrate import alembic_config
from ledger.storage.revision import SCHEMA_REVISION, current_revision, schema_head


def test_the_constant_is_the_newest_migration() -> None:
    """Fails when a migration is added without updating SCHEMA_REVISION."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head == SCHEMA_REVISION


def test_an_initialised_database_is_at_the_constant(registry: Registry) -> None:
    with registry.database.engine.connect() as connection:
        assert current_revision(connection) == SCHEMA_REVISION
    assert schema_head(SCHEMA_REVISION) == SCHEMA_REVISION


def test_an_empty_database_has_no_revision(database_url: str) -> None:
    database = Database(database_url)
    try:
        with database.engine.connect() as connection:
            assert current_revision(connection) is None
            # Alembic leaves the table empty after a downgrade to base: no schema either.
            connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32))"))
            assert current_revision(connection) is None
            connection.rollback()
    finally:
        database.dispose()


def test_another_revision_is_compared_with_alembics_head() -> None:
    """A database at an older revision is told the real head, whatever the constant says."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert schema_head("0001") == head
    assert schema_head(None) == head
