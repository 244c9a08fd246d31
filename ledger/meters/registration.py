"""The meter registry: meters, their public keys and key revocations.

Every change here is a log leaf committed with its row (DESIGN §2, §6):

- `meter.registered/1` (a meter is registered): meter, organisation, role, province,
  gridRegion, energySource and capacityW (when given), registeredAt;
- `meter.key/1` (a key is registered): meter, keyId, alg, publicKey (base64 SPKI DER),
  organisation, validFrom;
- `meter.key-revoked/1` (a key is revoked): meter, keyId, organisation, revokedFrom.

A verifier therefore learns from the log alone which key may sign for which meter and
when, and the role and capacity that decide whether a reading counts (`implausible`).
Meter ids are global (they are the `meter` field of signed payloads); key ids are global
(`ledger.meters.readings.key_id`, so a proof bundle can map key id → key).

Times are stored as integer seconds since the Unix epoch (UTC), the resolution of
reading times (DESIGN §4.1).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.access.models import Organisation
from ledger.log.store import Log
from ledger.meters.entries import (
    MAX_CAPACITY_W,
    MAX_PUBLIC_KEY_BYTES,
    METER_KEY_KIND,
    METER_KEY_REVOKED_KIND,
    METER_REGISTERED_KIND,
    PROVINCE_PATTERN,
    EnergySource,
    GridRegion,
    MeterRole,
)
from ledger.meters.models import Meter, MeterKey
from ledger.meters.readings import (
    METER_ID_PATTERN,
    ReadingFormatError,
    format_time,
    key_id,
    load_meter_public_key,
)
from ledger.storage.base import utc_now
from ledger.storage.db import Database
from ledger.times import UtcTimeError, epoch_of, format_utc


class MeterError(ValueError):
    """A registry request is invalid; the message says why."""


class MeterNotFoundError(MeterError, LookupError):
    pass


class MeterNotOwnedError(MeterError, PermissionError):
    """The meter exists but belongs to another organisation."""


class MeterExistsError(MeterError):
    pass


class KeyExistsError(MeterError):
    pass


class KeyNotFoundError(MeterError, LookupError):
    pass


class KeyAlreadyRevokedError(MeterError):
    pass


@dataclass(frozen=True, slots=True)
class MeterSpec:
    """What a client states when registering a meter."""

    meter_id: str
    role: MeterRole
    province: str
    grid_region: GridRegion
    energy_source: EnergySource | None = None
    capacity_w: int | None = None

    def validate(self) -> None:
        if not METER_ID_PATTERN.fullmatch(self.meter_id):
            raise MeterError("meter id must be 1-128 characters of A-Z a-z 0-9 . _ : -")
        if not PROVINCE_PATTERN.fullmatch(self.province):
            raise MeterError("province must be an ISO 3166-2 code such as CN-JS")
        if self.capacity_w is not None and not 0 < self.capacity_w <= MAX_CAPACITY_W:
            raise MeterError(f"capacityW must be between 1 and {MAX_CAPACITY_W}")
        # Issuance later depends on what a generator can produce; without capacity and
        # source no plausibility check and no green claim would be possible.
        if self.role is MeterRole.GENERATION and (
            self.capacity_w is None or self.energy_source is None
        ):
            raise MeterError("a generation meter needs energySource and capacityW")


@dataclass(frozen=True, slots=True)
class MeterKeyRecord:
    key_id: str
    meter_id: str
    alg: str
    public_key: bytes
    valid_from: int
    log_index: int
    revoked_from: int | None
    revoked_log_index: int | None

    def active_at(self, moment: int) -> bool:
        """Whether a reading signed at `moment` (epoch seconds) may use this key."""
        return self.valid_from <= moment and (
            self.revoked_from is None or moment < self.revoked_from
        )

    @classmethod
    def from_row(cls, row: MeterKey) -> MeterKeyRecord:
        return cls(
            key_id=row.key_id,
            meter_id=row.meter_id,
            alg=row.alg,
            public_key=row.public_key,
            valid_from=row.valid_from,
            log_index=row.log_index,
            revoked_from=row.revoked_from,
            revoked_log_index=row.revoked_log_index,
        )


@dataclass(frozen=True, slots=True)
class MeterRecord:
    meter_id: str
    organisation_id: str
    role: MeterRole
    province: str
    grid_region: GridRegion
    energy_source: EnergySource | None
    capacity_w: int | None
    registered_at: datetime
    log_index: int
    keys: tuple[MeterKeyRecord, ...]

    @classmethod
    def from_row(cls, row: Meter, keys: list[MeterKey]) -> MeterRecord:
        return cls(
            meter_id=row.id,
            organisation_id=row.organisation_id,
            role=MeterRole(row.role),
            province=row.province,
            grid_region=GridRegion(row.grid_region),
            energy_source=EnergySource(row.energy_source) if row.energy_source else None,
            capacity_w=row.capacity_w,
            registered_at=_as_utc(row.registered_at),
            log_index=row.log_index,
            keys=tuple(MeterKeyRecord.from_row(key) for key in keys),
        )


# ------------------------------------------------------------------------- time helpers


def to_epoch(moment: datetime) -> int:
    """Whole UTC seconds of a request time (`ledger.times.epoch_of`) as a `MeterError`."""
    try:
        return epoch_of(moment)
    except UtcTimeError as exc:
        raise MeterError(str(exc)) from None


def _now_seconds() -> int:
    return int(utc_now().timestamp())


def _as_utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes for timezone-aware columns; they were written as UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# ------------------------------------------------------------------------------ reads


def get_meter(database: Database, meter_id: str) -> MeterRecord:
    with database.read() as session:
        return _load_meter(session, meter_id)


def owned_meter(database: Database, meter_id: str, organisation_id: str) -> MeterRecord:
    """The meter, if it belongs to `organisation_id`; unknown → NotFound, other → NotOwned."""
    meter = get_meter(database, meter_id)
    _require_owner(meter.organisation_id, organisation_id, meter_id)
    return meter


def _load_meter(session: Session, meter_id: str) -> MeterRecord:
    row = session.get(Meter, meter_id)
    if row is None:
        raise MeterNotFoundError(f"no meter {meter_id!r} is registered")
    keys = list(
        session.execute(
            select(MeterKey).where(MeterKey.meter_id == meter_id).order_by(MeterKey.log_index)
        ).scalars()
    )
    return MeterRecord.from_row(row, keys)


def _require_owner(owner: str, organisation_id: str | None, meter_id: str) -> None:
    if organisation_id is not None and owner != organisation_id:
        raise MeterNotOwnedError(f"meter {meter_id!r} belongs to another organisation")


# ----------------------------------------------------------------------------- writes


def register_meter(log: Log, organisation_id: str, spec: MeterSpec) -> MeterRecord:
    """Register a meter for an organisation: a `meter` row and its `meter.registered/1` leaf."""
    spec.validate()
    registered_at = utc_now().replace(microsecond=0)
    with log.write() as tx:
        session = tx.session
        if session.get(Organisation, organisation_id) is None:
            raise MeterError(f"organisation {organisation_id!r} does not exist")
        if session.get(Meter, spec.meter_id) is not None:
            raise MeterExistsError(f"meter {spec.meter_id!r} is already registered")
        entry: dict[str, Any] = {
            "kind": METER_REGISTERED_KIND,
            "meter": spec.meter_id,
            "organisation": organisation_id,
            "role": spec.role.value,
            "province": spec.province,
            "gridRegion": spec.grid_region.value,
            "registeredAt": format_time(registered_at),
        }
        # Absent rather than null: a consumption meter has no source, not an unknown one.
        if spec.energy_source is not None:
            entry["energySource"] = spec.energy_source.value
        if spec.capacity_w is not None:
            entry["capacityW"] = spec.capacity_w
        index = tx.append(entry)
        row = Meter(
            id=spec.meter_id,
            organisation_id=organisation_id,
            role=spec.role.value,
            province=spec.province,
            grid_region=spec.grid_region.value,
            energy_source=spec.energy_source.value if spec.energy_source else None,
            capacity_w=spec.capacity_w,
            registered_at=registered_at,
            log_index=index,
        )
        session.add(row)
        session.flush()
        return MeterRecord.from_row(row, [])


def register_key(
    log: Log,
    meter_id: str,
    public_key_der: bytes,
    *,
    organisation_id: str | None,
    valid_from: datetime | None = None,
) -> MeterKeyRecord:
    """Register a meter public key (SPKI DER; the algorithm follows from it): `meter.key/1`.

    `valid_from` may lie in the past, so historical readings can be imported with the key
    that signed them; it defaults to now. `organisation_id` None skips the ownership check
    (operator tools only).
    """
    if len(public_key_der) > MAX_PUBLIC_KEY_BYTES:
        raise MeterError(f"a public key is at most {MAX_PUBLIC_KEY_BYTES} bytes of DER")
    try:
        alg, _ = load_meter_public_key(public_key_der)
    except ReadingFormatError as exc:
        raise MeterError(str(exc)) from exc
    start = to_epoch(valid_from) if valid_from is not None else _now_seconds()
    kid = key_id(public_key_der)
    with log.write() as tx:
        session = tx.session
        meter = session.get(Meter, meter_id)
        if meter is None:
            raise MeterNotFoundError(f"no meter {meter_id!r} is registered")
        _require_owner(meter.organisation_id, organisation_id, meter_id)
        existing = session.get(MeterKey, kid)
        if existing is not None:
            where = "this meter" if existing.meter_id == meter_id else "another meter"
            raise KeyExistsError(f"key {kid} is already registered for {where}")
        index = tx.append(
            {
                "kind": METER_KEY_KIND,
                "meter": meter_id,
                "keyId": kid,
                "alg": alg,
                "publicKey": base64.b64encode(public_key_der).decode(),
                "organisation": meter.organisation_id,
                "validFrom": format_utc(start),
            }
        )
        row = MeterKey(
            key_id=kid,
            meter_id=meter_id,
            alg=alg,
            public_key=public_key_der,
            valid_from=start,
            log_index=index,
        )
        session.add(row)
        session.flush()
        return MeterKeyRecord.from_row(row)


def revoke_key(
    log: Log,
    meter_id: str,
    kid: str,
    *,
    organisation_id: str | None,
    revoked_from: datetime | None = None,
) -> MeterKeyRecord:
    """Revoke a key from `revoked_from` (default now): `meter.key-revoked/1`.

    Readings whose payload time is at or after that moment are refused with this key from
    now on. The time may lie in the past (a compromise found late); readings already in the
    log stay there (append-only), and the revocation leaf tells every verifier which of
    them to distrust. A key is revoked once; revocation cannot be undone or moved.
    """
    effective = to_epoch(revoked_from) if revoked_from is not None else _now_seconds()
    with log.write() as tx:
        session = tx.session
        meter = session.get(Meter, meter_id)
        if meter is None:
            raise MeterNotFoundError(f"no meter {meter_id!r} is registered")
        _require_owner(meter.organisation_id, organisation_id, meter_id)
        row = session.get(MeterKey, kid)
        if row is None or row.meter_id != meter_id:
            raise KeyNotFoundError(f"meter {meter_id!r} has no key {kid!r}")
        if row.revoked_from is not None:
            raise KeyAlreadyRevokedError(
                f"key {kid} was revoked from {format_utc(row.revoked_from)}"
            )
        if effective < row.valid_from:
            raise MeterError(
                f"the revocation time lies before the key's validFrom {format_utc(row.valid_from)}"
            )
        index = tx.append(
            {
                "kind": METER_KEY_REVOKED_KIND,
                "meter": meter_id,
                "keyId": kid,
                "organisation": meter.organisation_id,
                "revokedFrom": format_utc(effective),
            }
        )
        row.revoked_from = effective
        row.revoked_log_index = index
        session.flush()
        return MeterKeyRecord.from_row(row)
