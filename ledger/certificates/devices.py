"""Generation devices (production facilities) and registry accounts.

A device belongs to an organisation and is measured by one or more of its generation
meters; it is registered by its owner (`device.registered/1`) and counts for issuance only
once the registry's issuer approved it (`device.approved/1`, a signed statement). Accounts
(`account.opened/1`) are where an organisation's certificates live.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ledger.access.models import Organisation
from ledger.certificates.entries import (
    ACCOUNT_OPENED_KIND,
    DEVICE_APPROVED_KIND,
    DEVICE_REGISTERED_KIND,
)
from ledger.certificates.models import Account, Device, DeviceMeter
from ledger.certificates.rules import (
    CertificateRequestError,
    NotOwnedError,
    RecordNotFoundError,
    StateConflictError,
)
from ledger.credentials.data_integrity import sign_statement
from ledger.credentials.issuer import IssuerIdentity
from ledger.log.store import Log
from ledger.meters.entries import (
    MAX_CAPACITY_W,
    PROVINCE_PATTERN,
    EnergySource,
    GridRegion,
    MeterRole,
)
from ledger.meters.models import Meter
from ledger.storage.base import utc_now
from ledger.storage.db import Database
from ledger.times import format_utc

DEVICE_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
MAX_METERS_PER_DEVICE = 32
MAX_NAME_CHARS = 200
MAX_PAGE = 500
MAX_ACCOUNTS_LISTED = MAX_PAGE
"""Accounts per organisation: all of them fit one listing."""
RENEWABLE_SOURCES = frozenset(
    {
        EnergySource.SOLAR,
        EnergySource.WIND,
        EnergySource.HYDRO,
        EnergySource.BIOMASS,
        EnergySource.GEOTHERMAL,
    }
)
"""What China's GEC covers (NDRC/NEA notice 1044 of 2023; ocean energy has no source value yet)."""


class DeviceStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    device_id: str
    name: str
    energy_source: EnergySource
    technology: str
    capacity_w: int
    commissioning_date: date
    province: str
    grid_region: GridRegion
    meters: tuple[str, ...]

    def validate(self) -> None:
        if not DEVICE_ID_PATTERN.fullmatch(self.device_id):
            raise CertificateRequestError(
                "device id must be 1-64 characters of A-Z a-z 0-9 . _ : -"
            )
        if not self.name.strip() or len(self.name) > MAX_NAME_CHARS:
            raise CertificateRequestError(f"name must be 1-{MAX_NAME_CHARS} characters")
        if not self.technology.strip() or len(self.technology) > 64:
            raise CertificateRequestError("technology must be 1-64 characters")
        if self.energy_source not in RENEWABLE_SOURCES:
            raise CertificateRequestError(
                "certificates are issued for renewable sources only: "
                + ", ".join(sorted(RENEWABLE_SOURCES))
            )
        if not 0 < self.capacity_w <= MAX_CAPACITY_W:
            raise CertificateRequestError(f"capacityW must be between 1 and {MAX_CAPACITY_W}")
        if not PROVINCE_PATTERN.fullmatch(self.province):
            raise CertificateRequestError("province must be an ISO 3166-2 code such as CN-JS")
        if not 1 <= len(self.meters) <= MAX_METERS_PER_DEVICE:
            raise CertificateRequestError(f"a device has 1-{MAX_METERS_PER_DEVICE} meters")
        if len(set(self.meters)) != len(self.meters):
            raise CertificateRequestError("meters are listed once each")


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    device_id: str
    organisation_id: str
    name: str
    energy_source: EnergySource
    technology: str
    capacity_w: int
    commissioning_date: str
    province: str
    grid_region: GridRegion
    status: DeviceStatus
    meters: tuple[str, ...]
    registered_at: int
    log_index: int
    approved_at: int | None
    approved_log_index: int | None

    @classmethod
    def from_row(cls, row: Device, meters: list[str]) -> DeviceRecord:
        return cls(
            device_id=row.id,
            organisation_id=row.organisation_id,
            name=row.name,
            energy_source=EnergySource(row.energy_source),
            technology=row.technology,
            capacity_w=row.capacity_w,
            commissioning_date=row.commissioning_date,
            province=row.province,
            grid_region=GridRegion(row.grid_region),
            status=DeviceStatus(row.status),
            meters=tuple(sorted(meters)),
            registered_at=row.registered_at,
            log_index=row.log_index,
            approved_at=row.approved_at,
            approved_log_index=row.approved_log_index,
        )


@dataclass(frozen=True, slots=True)
class AccountRecord:
    account_id: str
    organisation_id: str
    name: str
    opened_at: int
    log_index: int

    @classmethod
    def from_row(cls, row: Account) -> AccountRecord:
        return cls(row.id, row.organisation_id, row.name, row.opened_at, row.log_index)


def _now() -> int:
    return int(utc_now().timestamp())


def _device_meters(session: Session, device_id: str) -> list[str]:
    return list(
        session.scalars(select(DeviceMeter.meter_id).where(DeviceMeter.device_id == device_id))
    )


def load_device(session: Session, device_id: str, organisation_id: str | None) -> DeviceRecord:
    """The device; NotFound when unknown, NotOwned when `organisation_id` is set and differs."""
    row = session.get(Device, device_id)
    if row is None:
        raise RecordNotFoundError(f"no device {device_id!r} is registered")
    if organisation_id is not None and row.organisation_id != organisation_id:
        raise NotOwnedError(f"device {device_id!r} belongs to another organisation")
    return DeviceRecord.from_row(row, _device_meters(session, device_id))


def get_device(database: Database, device_id: str, organisation_id: str | None) -> DeviceRecord:
    with database.read() as session:
        return load_device(session, device_id, organisation_id)


def list_devices(
    database: Database,
    organisation_id: str | None,
    *,
    status: DeviceStatus | None = None,
    after: str | None = None,
    limit: int = 100,
) -> tuple[list[DeviceRecord], bool]:
    assert 1 <= limit <= MAX_PAGE
    query = select(Device).order_by(Device.id).limit(limit + 1)
    if organisation_id is not None:
        query = query.where(Device.organisation_id == organisation_id)
    if status is not None:
        query = query.where(Device.status == status.value)
    if after is not None:
        query = query.where(Device.id > after)
    with database.read() as session:
        rows = list(session.scalars(query))
        records = [DeviceRecord.from_row(row, _device_meters(session, row.id)) for row in rows]
    return records[:limit], len(records) > limit


def register_device(log: Log, organisation_id: str, spec: DeviceSpec) -> DeviceRecord:
    """Register a device with its generation meters; it waits for the issuer's approval."""
    spec.validate()
    now = _now()
    with log.write() as tx:
        session = tx.session
        if session.get(Organisation, organisation_id) is None:
            raise RecordNotFoundError(f"organisation {organisation_id!r} does not exist")
        if session.get(Device, spec.device_id) is not None:
            raise StateConflictError(f"device {spec.device_id!r} is already registered")
        for meter_id in spec.meters:
            meter = session.get(Meter, meter_id)
            if meter is None:
                raise CertificateRequestError(f"no meter {meter_id!r} is registered")
            if meter.organisation_id != organisation_id:
                raise NotOwnedError(f"meter {meter_id!r} belongs to another organisation")
            if meter.role == MeterRole.CONSUMPTION.value:
                raise CertificateRequestError(
                    f"meter {meter_id!r} is a consumption meter; a device needs generation meters"
                )
            if meter.grid_region != spec.grid_region.value:
                raise CertificateRequestError(
                    f"meter {meter_id!r} is in grid region {meter.grid_region}, "
                    f"the device in {spec.grid_region.value}"
                )
            if session.get(DeviceMeter, meter_id) is not None:
                raise StateConflictError(f"meter {meter_id!r} already measures another device")
        meters = sorted(spec.meters)
        entry: dict[str, Any] = {
            "kind": DEVICE_REGISTERED_KIND,
            "device": spec.device_id,
            "organisation": organisation_id,
            "name": spec.name,
            "energySource": spec.energy_source.value,
            "technology": spec.technology,
            "capacityW": spec.capacity_w,
            "commissioningDate": spec.commissioning_date.isoformat(),
            "province": spec.province,
            "gridRegion": spec.grid_region.value,
            "meters": meters,
            "registeredAt": format_utc(now),
        }
        index = tx.append(entry)
        row = Device(
            id=spec.device_id,
            organisation_id=organisation_id,
            name=spec.name,
            energy_source=spec.energy_source.value,
            technology=spec.technology,
            capacity_w=spec.capacity_w,
            commissioning_date=spec.commissioning_date.isoformat(),
            province=spec.province,
            grid_region=spec.grid_region.value,
            status=DeviceStatus.PENDING.value,
            registered_at=now,
            log_index=index,
        )
        session.add(row)
        session.add_all(DeviceMeter(meter_id=meter, device_id=spec.device_id) for meter in meters)
        session.flush()
        return DeviceRecord.from_row(row, meters)


def approve_device(log: Log, issuer: IssuerIdentity, device_id: str) -> DeviceRecord:
    """The issuer's approval: from now on the device's production may be issued."""
    now = _now()
    with log.write() as tx:
        row = tx.session.get(Device, device_id)
        if row is None:
            raise RecordNotFoundError(f"no device {device_id!r} is registered")
        if row.status == DeviceStatus.APPROVED.value:
            raise StateConflictError(f"device {device_id!r} is already approved")
        statement = sign_statement(
            {"kind": DEVICE_APPROVED_KIND, "device": device_id, "at": format_utc(now)},
            issuer.private_key,
            issuer.did,
        )
        row.approved_log_index = tx.append(statement)
        row.approved_at = now
        row.status = DeviceStatus.APPROVED.value
        tx.session.flush()
        return DeviceRecord.from_row(row, _device_meters(tx.session, device_id))


# ---------------------------------------------------------------------------- accounts


def open_account(log: Log, organisation_id: str, name: str) -> AccountRecord:
    if not name.strip() or len(name) > MAX_NAME_CHARS:
        raise CertificateRequestError(f"an account name is 1-{MAX_NAME_CHARS} characters")
    now = _now()
    account_id = str(uuid.uuid4())
    with log.write() as tx:
        session = tx.session
        if session.get(Organisation, organisation_id) is None:
            raise RecordNotFoundError(f"organisation {organisation_id!r} does not exist")
        clash = session.scalar(
            select(Account.id).where(
                Account.organisation_id == organisation_id, Account.name == name
            )
        )
        if clash is not None:
            raise StateConflictError(f"the organisation already has an account named {name!r}")
        held = session.scalar(
            select(func.count())
            .select_from(Account)
            .where(Account.organisation_id == organisation_id)
        )
        if held is not None and held >= MAX_ACCOUNTS_LISTED:
            raise StateConflictError(
                f"an organisation holds at most {MAX_ACCOUNTS_LISTED} accounts"
            )
        index = tx.append(
            {
                "kind": ACCOUNT_OPENED_KIND,
                "account": account_id,
                "organisation": organisation_id,
                "name": name,
                "openedAt": format_utc(now),
            }
        )
        row = Account(
            id=account_id,
            organisation_id=organisation_id,
            name=name,
            opened_at=now,
            log_index=index,
        )
        session.add(row)
        session.flush()
        return AccountRecord.from_row(row)


def load_account(session: Session, account_id: str, organisation_id: str | None) -> AccountRecord:
    row = session.get(Account, account_id)
    if row is None:
        raise RecordNotFoundError(f"no account {account_id!r}")
    if organisation_id is not None and row.organisation_id != organisation_id:
        raise NotOwnedError(f"account {account_id!r} belongs to another organisation")
    return AccountRecord.from_row(row)


def get_account(database: Database, account_id: str, organisation_id: str | None) -> AccountRecord:
    with database.read() as session:
        return load_account(session, account_id, organisation_id)


def list_accounts(database: Database, organisation_id: str) -> list[AccountRecord]:
    """The organisation's accounts by name, at most `MAX_ACCOUNTS_LISTED` of them."""
    with database.read() as session:
        rows = session.scalars(
            select(Account)
            .where(Account.organisation_id == organisation_id)
            .order_by(Account.name)
            .limit(MAX_ACCOUNTS_LISTED)
        )
        return [AccountRecord.from_row(row) for row in rows]
