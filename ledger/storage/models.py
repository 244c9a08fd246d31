"""ORM models. Schemas for the HTTP API live apart from these, in `api.schemas`."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
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


# ----------------------------------------------------------------- meters and readings


class Meter(Base):
    """A registered meter; its registration is also the `meter.registered/1` leaf at `log_index`.

    The `last_*` columns cache the meter's newest accepted reading, so ingestion reads one
    row per meter per batch instead of searching `reading`. They change only under the log's
    writer lock, in the same transaction as the reading rows they summarise.
    """

    __tablename__ = "meter"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    organisation_id: Mapped[str] = mapped_column(
        ForeignKey("organisation.id"), nullable=False, index=True
    )
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    province: Mapped[str] = mapped_column(String(16), nullable=False)
    grid_region: Mapped[str] = mapped_column(String(16), nullable=False)
    energy_source: Mapped[str | None] = mapped_column(String(16), nullable=True)
    capacity_w: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    log_index: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_import_wh: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_export_wh: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class MeterKey(Base):
    """A meter's public key (`meter.key/1`), and its revocation (`meter.key-revoked/1`) if any.

    Key ids are unique across meters: a verifier's bundle maps key id → key (DESIGN §4.5).
    Times are seconds since the epoch (UTC), like reading times.
    """

    __tablename__ = "meter_key"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    meter_id: Mapped[str] = mapped_column(ForeignKey("meter.id"), nullable=False, index=True)
    alg: Mapped[str] = mapped_column(String(16), nullable=False)
    public_key: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    valid_from: Mapped[int] = mapped_column(BigInteger, nullable=False)
    log_index: Mapped[int] = mapped_column(BigInteger, nullable=False)
    revoked_from: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    revoked_log_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Reading(Base):
    """An accepted reading; its `reading/1` leaf (the full envelope) is at `log_index`."""

    __tablename__ = "reading"
    # Range reads (`from`/`to`) go by time; seq and time rise together, but time is asked for.
    __table_args__ = (Index("ix_reading_meter_time", "meter_id", "time", unique=True),)

    meter_id: Mapped[str] = mapped_column(ForeignKey("meter.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    import_wh: Mapped[int] = mapped_column(BigInteger, nullable=False)
    export_wh: Mapped[int] = mapped_column(BigInteger, nullable=False)
    key_id: Mapped[str] = mapped_column(String(32), nullable=False)
    payload_sha256: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    implausible: Mapped[bool] = mapped_column(Boolean, nullable=False)
    log_index: Mapped[int] = mapped_column(BigInteger, nullable=False, unique=True)


class ReadingEvidence(Base):
    """A validly signed envelope that contradicts an accepted reading (equivocation).

    Kept outside the log: it was refused, so it is not a registry fact; it is evidence
    that the meter (or its key) is faulty or compromised, for auditors.
    """

    __tablename__ = "reading_evidence"

    id: Mapped[int] = mapped_column(LogIndex, primary_key=True, autoincrement=True)
    meter_id: Mapped[str] = mapped_column(ForeignKey("meter.id"), nullable=False, index=True)
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    envelope: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    key_id: Mapped[str] = mapped_column(String(32), nullable=False)
    conflicts_with: Mapped[int] = mapped_column(BigInteger, nullable=False)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
