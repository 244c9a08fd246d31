"""Run Alembic migrations programmatically (on `carbonledger init` and on service start)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from ledger.storage.db import Database

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Arbitrary constant: concurrent service starts on PostgreSQL migrate one at a time.
_MIGRATION_LOCK_KEY = 0x6361726C


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade(database: Database) -> None:
    config = alembic_config()
    with database.write_connection() as connection, connection.begin():
        if database.dialect == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
