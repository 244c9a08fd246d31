"""Meters, their keys, accepted readings and equivocation evidence."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from ledger.access.models import Organisation
from ledger.storage.base import Base, LogIndex


class Meter(Base):
    """A registered meter; its registration is also the `meter.registered/1` leaf at `log_index`.

    The `last_*` columns cache the meter's newest accepted reading, so ingestion reads one
    row per meter per batch instead of searching `reading`. They change only under the log's
    writer lock, in the same transaction as the reading rows they summarise.
    """

    __tablename__ = "meter"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    organisation_id: Mapped[str] = mapped_column(
        ForeignKey(Organisation.id), nullable=False, index=True
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
    meter_id: Mapped[str] = mapped_column(ForeignKey(Meter.id), nullable=False, index=True)
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

    meter_id: Mapped[str] = mapped_column(ForeignKey(Meter.id), primary_key=True)
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
    meter_id: Mapped[str] = mapped_column(ForeignKey(Meter.id), nullable=False, index=True)
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    envelope: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    key_id: Mapped[str] = mapped_column(String(32), nullable=False)
    conflicts_with: Mapped[int] = mapped_column(BigInteger, nullable=False)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


# ------------------------------------------------- devices, accounts and certificates
