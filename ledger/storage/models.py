"""ORM models. Schemas for the HTTP API live apart from these, in `api.schemas`."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite treats only "INTEGER PRIMARY KEY" as the rowid alias; a BIGINT key would add
# a second B-tree to every append.
LogIndex = BigInteger().with_variant(Integer(), "sqlite")


def utc_now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


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
    `ledger.log.tile_key`), so a proof's tiles are one `IN` lookup on the rowid
    B-tree; SQLite cannot use a composite key for a row-value `IN`. Complete nodes
    never change, so a tile only ever grows; the last tile of a level is rewritten
    as it fills.
    """

    __tablename__ = "log_tile"

    id: Mapped[int] = mapped_column(LogIndex, primary_key=True, autoincrement=False)
    hashes: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class Organisation(Base):
    __tablename__ = "organisation"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utc_now
    )


class ApiClient(Base):
    """An OAuth2 client-credentials client; the secret is stored only as its SHA-256."""

    __tablename__ = "api_client"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    organisation_id: Mapped[str] = mapped_column(
        ForeignKey("organisation.id"), nullable=False, index=True
    )
    secret_sha256: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    scopes: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utc_now
    )
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
