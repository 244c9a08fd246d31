"""Devices, accounts, per-device-hour counters and certificates."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ledger.access.models import Organisation
from ledger.meters.models import Meter
from ledger.storage.base import Base


class Device(Base):
    """A generation device (production facility): `device.registered/1`, `device.approved/1`."""

    __tablename__ = "device"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    organisation_id: Mapped[str] = mapped_column(
        ForeignKey(Organisation.id), nullable=False, index=True
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

    meter_id: Mapped[str] = mapped_column(ForeignKey(Meter.id), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey(Device.id), nullable=False, index=True)


class Account(Base):
    """A registry account of an organisation (`account.opened/1`); certificates live in one."""

    __tablename__ = "account"
    __table_args__ = (UniqueConstraint("organisation_id", "name", name="uq_account_name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organisation_id: Mapped[str] = mapped_column(
        ForeignKey(Organisation.id), nullable=False, index=True
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

    device_id: Mapped[str] = mapped_column(ForeignKey(Device.id), primary_key=True)
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
    device_id: Mapped[str] = mapped_column(ForeignKey(Device.id), nullable=False)
    hour_start: Mapped[int] = mapped_column(BigInteger, nullable=False)
    serial_start: Mapped[int] = mapped_column(BigInteger, nullable=False)
    serial_end: Mapped[int] = mapped_column(BigInteger, nullable=False)
    account_id: Mapped[str] = mapped_column(ForeignKey(Account.id), nullable=False)
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

    certificate_id: Mapped[str] = mapped_column(ForeignKey(Certificate.id), primary_key=True)
    beneficiary_id: Mapped[str] = mapped_column(
        ForeignKey(Organisation.id), nullable=False, index=True
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

    certificate_id: Mapped[str] = mapped_column(ForeignKey(Certificate.id), primary_key=True)
    log_index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
