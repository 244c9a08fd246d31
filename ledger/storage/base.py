"""The declarative base every feature's tables share, and the column types they share.

Each feature keeps its tables beside its code (`ledger/<feature>/models.py`); a table that
references another feature's table names it through the imported column, so importing a
model always brings the tables its foreign keys need. `ledger.storage.schema` imports them
all (the migrations' metadata). HTTP schemas live apart, in `api.schemas`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, Integer
from sqlalchemy.orm import DeclarativeBase

# SQLite treats only "INTEGER PRIMARY KEY" as the rowid alias; a BIGINT key would add
# a second B-tree to every append.
LogIndex = BigInteger().with_variant(Integer(), "sqlite")


def utc_now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass
