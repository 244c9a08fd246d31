"""ORM models. Schemas for the HTTP API live apart from these, in `api.schemas`."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
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
    `ledger.log.store.tile_key`), so a proof's tiles are one `IN` lookup on the rowid
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


# ------------------------------------------------- devices, accounts and certificates


class IssuerKey(Base):
    """The registry's credential-issuing key (`issuer.key/1` at `log_index`); one row per key."""

    __tablename__ = "issuer_key"

    did: Mapped[str] = mapped_column(String(128), primary_key=True)
    log_index: Mapped[int] = mapped_column(BigInteger, nullable=False, unique=True)
    valid_from: Mapped[int] = mapped_column(BigInteger, nullable=False)


class Device(Base):
    """A generation device (production facility): `device.registered/1`, `device.approved/1`."""

    __tablename__ = "device"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    organisation_id: Mapped[str] = mapped_column(
        ForeignKey("organisation.id"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    energy_source: Mapped[str] = mapped_column(String(16), nullable=False)
    technology: Mapped[str] = mapped_column(String(64), nullable=False)
    capacity_w: Mapped[int] = mapped_column(BigInteger, nullable=False)
    commissioning_date: Mapped[str] = mapped_column(String(10), nullable=False)
    province: Mapped[str] = mapped_column(String(16), nullable=False)
    grid_region: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    registered_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    log_index: Mapped[int] = mapped_column(BigInteger, nullable=False, unique=True)
    approved_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    approved_log_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class DeviceMeter(Base):
    """A generation meter of a device; a meter measures at most one device."""

    __tablename__ = "device_meter"

    meter_id: Mapped[str] = mapped_column(ForeignKey("meter.id"), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("device.id"), nullable=False, index=True)


class Account(Base):
    """A registry account of an organisation (`account.opened/1`); certificates live in one."""

    __tablename__ = "account"
    __table_args__ = (UniqueConstraint("organisation_id", "name", name="uq_account_name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organisation_id: Mapped[str] = mapped_column(
        ForeignKey("organisation.id"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    opened_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    log_index: Mapped[int] = mapped_column(BigInteger, nullable=False, unique=True)


class DeviceHour(Base):
    """Per device-hour: metered production (anchored, plausible readings) and what was issued.

    The CHECK is the no-over-issuance invariant in the database itself; serial offsets
    [0, issued_wh) of the hour are taken, and the next issuance starts at issued_wh.
    """

    __tablename__ = "device_hour"
    __table_args__ = (
        CheckConstraint(
            "issued_wh >= 0 AND issued_wh <= metered_wh", name="device_hour_issued_within_metered"
        ),
    )

    device_id: Mapped[str] = mapped_column(ForeignKey("device.id"), primary_key=True)
    hour_start: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    metered_wh: Mapped[int] = mapped_column(BigInteger, nullable=False)
    issued_wh: Mapped[int] = mapped_column(BigInteger, nullable=False)


class Certificate(Base):
    """A granular certificate: the Wh serials [serial_start, serial_end) of one device-hour.

    `status`: active | split | retired | expired | withdrawn. A split certificate holds no
    Wh any more (its children do); every other status keeps its range. Live ranges (status
    other than split) never overlap within a device-hour: a trigger (SQLite) or an exclusion
    constraint (PostgreSQL) refuses the row that would (migration 0004).
    """

    __tablename__ = "certificate"
    __table_args__ = (
        CheckConstraint(
            "serial_start >= 0 AND serial_end > serial_start", name="certificate_range"
        ),
        Index("ix_certificate_device_hour", "device_id", "hour_start"),
        Index("ix_certificate_account_status", "account_id", "status"),
        Index("ix_certificate_status_expires", "status", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("device.id"), nullable=False)
    hour_start: Mapped[int] = mapped_column(BigInteger, nullable=False)
    serial_start: Mapped[int] = mapped_column(BigInteger, nullable=False)
    serial_end: Mapped[int] = mapped_column(BigInteger, nullable=False)
    account_id: Mapped[str] = mapped_column(ForeignKey("account.id"), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    parent_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    energy_source: Mapped[str] = mapped_column(String(16), nullable=False)
    grid_region: Mapped[str] = mapped_column(String(16), nullable=False)
    issued_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    expires_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    log_index: Mapped[int] = mapped_column(BigInteger, nullable=False, unique=True)
    """The `certificate.issued/1` entry holding the certificate's credential."""
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class CertificateRetirement(Base):
    """The one retirement of a certificate; the primary key makes a second one impossible."""

    __tablename__ = "certificate_retirement"

    certificate_id: Mapped[str] = mapped_column(ForeignKey("certificate.id"), primary_key=True)
    beneficiary_id: Mapped[str] = mapped_column(
        ForeignKey("organisation.id"), nullable=False, index=True
    )
    purpose: Mapped[str] = mapped_column(String(32), nullable=False)
    period_start: Mapped[int] = mapped_column(BigInteger, nullable=False)
    period_end: Mapped[int] = mapped_column(BigInteger, nullable=False)
    province: Mapped[str] = mapped_column(String(16), nullable=False)
    grid_region: Mapped[str] = mapped_column(String(16), nullable=False)
    retired_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    log_index: Mapped[int] = mapped_column(BigInteger, nullable=False, unique=True)


class CertificateEvent(Base):
    """Which log entries concern which certificate (for bundles and history)."""

    __tablename__ = "certificate_event"

    certificate_id: Mapped[str] = mapped_column(ForeignKey("certificate.id"), primary_key=True)
    log_index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
