"""The log's tables: the head, the leaves, and the stored tree nodes (tiles)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    LargeBinary,
    SmallInteger,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from ledger.storage.base import Base, LogIndex


class LogHead(Base):
    """The single row holding the log's current size and root; its row lock serialises writers."""

    __tablename__ = "log_head"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    origin: Mapped[str] = mapped_column(String(255), nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    root: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class LogEntry(Base):
    """One leaf: the canonical JSON bytes exactly as hashed."""

    __tablename__ = "log_entry"

    idx: Mapped[int] = mapped_column(LogIndex, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class LogTile(Base):
    """Up to 256 consecutive node hashes of one tree level, concatenated.

    The key packs (level, tile index) into one integer, `level << 56 | index` (see
    `ledger.log.store.tile_key`), so a proof's tiles are one `IN` lookup on the rowid
    B-tree; SQLite cannot use a composite key for a row-value `IN`. Complete nodes
    never change, so a tile only ever grows; the last tile of a level is rewritten
    as it fills.
    """

    __tablename__ = "log_tile"

    id: Mapped[int] = mapped_column(LogIndex, primary_key=True, autoincrement=False)
    hashes: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
