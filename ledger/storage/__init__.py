"""SQLAlchemy models, engine set-up and Alembic migrations."""

from ledger.storage.db import Database

__all__ = ["Database"]
