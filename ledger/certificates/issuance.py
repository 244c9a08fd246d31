"""Issuance: anchored, plausible generation readings → one certificate per device-hour.

Where a leaf becomes a certificate (docs/certificates.md, "Production"):

1. `ledger.certificates.production.hourly_production` — pure: each meter's consecutive
   readings form segments whose exported energy is split over clock hours by
   `ledger.meters.intervals.split_energy` (pro rata, rounded down). An hour touched by a
   segment flagged implausible is not issued at all; the readings bounding the counted
   segments of an hour are its evidence.
2. `issue_certificates` — reads the readings below the anchored size the caller names (the
   anchoring side owns that number; `ledger` never imports it), builds and signs one
   credential per device-hour whose metered production exceeds what was issued, and
   commits, under the log's writer lock, the `device_hour` counters, the certificate rows
   and their `certificate.issued/1` leaves in one transaction.
3. `UnanchoredProduction` — what the same request would issue once the readings above the
   anchored size are anchored too, so the caller learns that waiting helps (and the API,
   which knows the anchoring schedule, says for how long).

Invariant (also a CHECK on `device_hour`): per device-hour, issued ≤ metered, and every
new certificate takes the serial offsets [issued, metered), so ranges never overlap.
Concurrent requests are serialised by the writer lock; credentials are signed before the
lock from a first read of the counters and re-signed under it for any hour that moved.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from ledger.certificates.devices import DeviceRecord, DeviceStatus, load_account, load_device
from ledger.certificates.entries import (
    CREDENTIAL_CONTEXT,
    CREDENTIAL_TYPE,
    ISSUED_KIND,
    MAX_EVIDENCE_READINGS,
)
from ledger.certificates.models import Certificate, CertificateEvent, DeviceHour, DeviceMeter
from ledger.certificates.production import (
    HourProduction,
    ReadingPoint,
    hourly_production,
)
from ledger.certificates.rules import (
    HOUR,
    CertificateRequestError,
    CertificateStatus,
    StateConflictError,
    add_months,
    gec_text,
    serial_text,
)
from ledger.credentials.data_integrity import ProofOptions, sign_credential_jcs
from ledger.credentials.issuer import IssuerIdentity
from ledger.log.canonical import MAX_CANONICAL_BYTES, canonical_json
from ledger.log.store import Log, LogTransaction, stored_leaf_hashes
from ledger.meters.models import Reading
from ledger.storage.base import utc_now
from ledger.times import format_utc

MAX_ISSUANCE_HOURS = 8_784
"""One leap year of hours per request (the benchmark issues one year in one call)."""


def _load_points(
    session: Session, meters: Iterable[str], start: int, end: int, anchored_size: int
) -> dict[str, list[ReadingPoint]]:
    """Each meter's readings that bound segments overlapping (start, end], below the anchor."""
    rows_by_meter = {}
    columns = (Reading.time, Reading.export_wh, Reading.implausible, Reading.log_index)
    for meter in meters:
        base = select(*columns).where(Reading.meter_id == meter, Reading.log_index < anchored_size)
        before = session.execute(
            base.where(Reading.time <= start).order_by(Reading.time.desc()).limit(1)
        ).all()
        inside = session.execute(
            base.where(Reading.time > start, Reading.time < end).order_by(Reading.time)
        ).all()
        after = session.execute(
            base.where(Reading.time >= end).order_by(Reading.time).limit(1)
        ).all()
        rows_by_meter[meter] = [*before, *inside, *after]
    hashes = stored_leaf_hashes(
        session, (row.log_index for rows in rows_by_meter.values() for row in rows)
    )
    return {
        meter: [
            ReadingPoint(
                meter,
                row.log_index,
                hashes[row.log_index],
                row.time,
                row.export_wh,
                row.implausible,
            )
            for row in rows
        ]
        for meter, rows in rows_by_meter.items()
    }


# ---------------------------------------------------------------------------- issuing


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    certificate_id: str
    hour_start: int
    serial_start: int
    serial_end: int
    log_index: int

    @property
    def volume_wh(self) -> int:
        return self.serial_end - self.serial_start


@dataclass(frozen=True, slots=True)
class UnanchoredProduction:
    """Production of the request's hours in readings the anchored size does not cover yet.

    Readings of a meter are appended in time order, so readings above the anchored size
    only ever extend its segments at the end: once anchored, they add energy to the
    completed hours counted here and never take any away.
    """

    log_size: int
    """The log's size when issuance looked (the readings counted lie below it)."""
    readings: int
    """Readings of the device's meters, bounding its hours in the period, not anchored yet."""
    hours: frozenset[int]
    """Completed hours (starts) that would issue more once those readings are anchored."""
    wh: int
    """How much more those hours would issue."""


@dataclass(frozen=True, slots=True)
class IssuanceResult:
    device_id: str
    account_id: str
    anchored_size: int
    issued: tuple[IssuedCertificate, ...]
    hours_requested: int
    hours_not_over: int
    hours_flagged: int
    hours_waiting_for_anchor: int
    """Hours not issued now whose production is in readings not anchored yet."""
    hours_without_new_production: int
    unanchored: UnanchoredProduction | None
    """None when every reading the request could use is anchored."""

    @property
    def issued_wh(self) -> int:
        return sum(item.volume_wh for item in self.issued)


@dataclass(slots=True)
class _Draft:
    certificate_id: str
    hour: HourProduction
    serial_start: int
    leaf: bytes = field(repr=False)


def credential_subject(
    device: DeviceRecord,
    hour_start: int,
    serial_start: int,
    serial_end: int,
    split_from: str | None = None,
) -> dict[str, Any]:
    volume = serial_end - serial_start
    subject: dict[str, Any] = {
        "id": f"urn:carbonledger:device:{device.device_id}",
        "type": "EnergyProductionCertificate",
        "device": device.device_id,
        "producer": device.organisation_id,
        "energySource": device.energy_source.value,
        "technology": device.technology,
        "capacityW": device.capacity_w,
        "province": device.province,
        "gridRegion": device.grid_region.value,
        "productionStart": format_utc(hour_start),
        "productionEnd": format_utc(hour_start + HOUR),
        "serialStart": serial_start,
        "serialEnd": serial_end,
        "volumeWh": volume,
        "serial": serial_text(device.device_id, hour_start, serial_start, serial_end),
        "gecEquivalent": gec_text(volume),
    }
    if split_from is not None:
        subject["splitFrom"] = split_from
    return subject


def build_credential(
    issuer: IssuerIdentity,
    *,
    certificate_id: str,
    subject: Mapping[str, Any],
    evidence: Sequence[Mapping[str, Any]],
    issued_at: int,
    valid_until: int,
) -> bytes:
    """The signed credential of one certificate (docs/certificates.md), as JCS bytes."""
    issued_text = format_utc(issued_at)
    unsigned = {
        "@context": list(CREDENTIAL_CONTEXT),
        "id": certificate_id,
        "type": list(CREDENTIAL_TYPE),
        "issuer": issuer.did,
        "validFrom": issued_text,
        "validUntil": format_utc(valid_until),
        "credentialSubject": dict(subject),
        "evidence": [dict(item) for item in evidence],
    }
    # Every member name is fixed here and every number a bounded integer.
    _, encoded = sign_credential_jcs(
        unsigned,
        issuer.private_key,
        ProofOptions(issued_text, issuer.verification_method),
        built_from_checked_fields=True,
    )
    return encoded


def evidence_of(origin: str, hour: HourProduction) -> list[dict[str, Any]]:
    return [
        {
            "type": ["MeteredProduction"],
            "log": origin,
            "meteredWh": hour.metered_wh,
            "readings": [
                {"index": point.index, "leafHash": point.leaf_hash.hex()} for point in hour.evidence
            ],
        }
    ]


_ISSUED_SUFFIX = b',"kind":"' + ISSUED_KIND.encode() + b'"}'


def issued_leaf(credential_jcs: bytes, *, account: str, anchored_size: int | None = None) -> bytes:
    """The `certificate.issued/1` leaf around a credential's JCS bytes.

    `account` is where the certificate starts its life; `anchored_size` (issuance only, not
    split children) is the log size whose readings production was computed from, so an
    auditor recomputes exactly what the service could see. JCS orders the members
    "account" < "anchoredSize" < "credential" < "kind", so the leaf is spliced together
    and the credential is not canonicalised a second time (thousands per request).
    """
    parts = [b'{"account":', canonical_json(account)]
    if anchored_size is not None:
        assert anchored_size >= 0
        parts += [b',"anchoredSize":', str(anchored_size).encode()]
    parts += [b',"credential":', credential_jcs, _ISSUED_SUFFIX]
    leaf = b"".join(parts)
    if len(leaf) > MAX_CANONICAL_BYTES:
        raise CertificateRequestError(
            f"the credential is {len(leaf)} bytes as a log entry; "
            f"the limit is {MAX_CANONICAL_BYTES}"
        )
    return leaf


def issue_certificates(
    log: Log,
    issuer: IssuerIdentity,
    *,
    organisation_id: str,
    device_id: str,
    account_id: str,
    start: int,
    end: int,
    anchored_size: int,
    validity_months: int,
    now: int | None = None,
) -> IssuanceResult:
    """Issue every not-yet-issued Wh of the device's completed hours in [start, end)."""
    if start % HOUR or end % HOUR:
        raise CertificateRequestError("`from` and `to` must fall on whole UTC hours")
    if end <= start:
        raise CertificateRequestError("`to` must be after `from`")
    if (end - start) // HOUR > MAX_ISSUANCE_HOURS:
        raise CertificateRequestError(f"one request covers at most {MAX_ISSUANCE_HOURS} hours")
    moment = int(utc_now().timestamp()) if now is None else now
    origin = log.head().origin
    with log.database.read() as session:
        device = load_device(session, device_id, organisation_id)
        if device.status is not DeviceStatus.APPROVED:
            raise StateConflictError(f"device {device_id!r} is not approved by the issuer yet")
        load_account(session, account_id, organisation_id)
        points = _load_points(session, device.meters, start, end, anchored_size)
        counters = _counters(session, device_id, start, end)
    scan = hourly_production(points, start, end)
    over = {hour: production for hour, production in scan.hours.items() if hour + HOUR <= moment}

    def draft(hour: HourProduction, issued_wh: int) -> _Draft | None:
        if hour.metered_wh <= issued_wh:
            return None
        if len(hour.evidence) > MAX_EVIDENCE_READINGS:
            raise CertificateRequestError(
                f"hour {format_utc(hour.hour_start)} rests on {len(hour.evidence)} readings; "
                f"a certificate names at most {MAX_EVIDENCE_READINGS}"
            )
        certificate_id = f"urn:uuid:{uuid.uuid4()}"
        credential_jcs = build_credential(
            issuer,
            certificate_id=certificate_id,
            subject=credential_subject(device, hour.hour_start, issued_wh, hour.metered_wh),
            evidence=evidence_of(origin, hour),
            issued_at=moment,
            valid_until=add_months(hour.hour_start + HOUR, validity_months),
        )
        leaf = issued_leaf(credential_jcs, account=account_id, anchored_size=anchored_size)
        return _Draft(certificate_id, hour, issued_wh, leaf)

    drafts = {
        hour: draft(production, counters.get(hour, (0, 0))[1]) for hour, production in over.items()
    }

    with log.write() as tx:
        session = tx.session
        current = _counters(session, device_id, start, end)
        for hour, production in over.items():
            if current.get(hour) != counters.get(hour):  # another issuance got there first
                drafts[hour] = draft(production, current.get(hour, (0, 0))[1])
        ready = [item for item in drafts.values() if item is not None]
        ready.sort(key=lambda item: item.hour.hour_start)
        issued = _commit(
            tx,
            device=device,
            account_id=account_id,
            ready=ready,
            current=current,
            moment=moment,
            validity_months=validity_months,
        )

    issued_after = {hour: counts[1] for hour, counts in current.items()}
    issued_after.update((item.hour_start, item.serial_end) for item in issued)
    unanchored = unanchored_production(
        log,
        device.meters,
        start=start,
        end=end,
        anchored_size=anchored_size,
        issued_wh=issued_after,
        now=moment,
    )
    requested = (end - start) // HOUR
    not_over = sum(1 for hour in range(start, end, HOUR) if hour + HOUR > moment)
    flagged_over = [hour for hour in scan.flagged_hours if hour + HOUR <= moment]
    issued_hours = {item.hour_start for item in issued}
    waiting = len(unanchored.hours - issued_hours) if unanchored is not None else 0
    return IssuanceResult(
        device_id=device_id,
        account_id=account_id,
        anchored_size=anchored_size,
        issued=tuple(issued),
        hours_requested=requested,
        hours_not_over=not_over,
        hours_flagged=len(flagged_over),
        hours_waiting_for_anchor=waiting,
        hours_without_new_production=(
            requested - not_over - len(flagged_over) - len(issued) - waiting
        ),
        unanchored=unanchored,
    )


def unanchored_production(
    log: Log,
    meters: Sequence[str],
    *,
    start: int,
    end: int,
    anchored_size: int,
    issued_wh: Mapping[int, int],
    now: int,
) -> UnanchoredProduction | None:
    """What issuance of [start, end) would add once the whole log is anchored.

    `issued_wh` is what each hour has issued so far. None when no reading of the meters
    above `anchored_size` bounds an hour of the period (the common case after an anchor:
    one indexed probe, and the period's readings are not read a second time).
    """
    log_size = log.head().size
    if log_size <= anchored_size:
        return None
    with log.database.read() as session:
        # Per meter, readings append in time order: if any relevant reading is above the
        # anchored size, one after `start` is.
        probe = (
            select(Reading.log_index)
            .where(
                Reading.meter_id.in_(meters),
                Reading.time > start,
                Reading.log_index >= anchored_size,
                Reading.log_index < log_size,
            )
            .limit(1)
        )
        if session.execute(probe).first() is None:
            return None
        points = _load_points(session, meters, start, end, log_size)
    readings = sum(1 for run in points.values() for point in run if point.index >= anchored_size)
    if not readings:
        return None
    more = {
        hour: production.metered_wh - issued_wh.get(hour, 0)
        for hour, production in hourly_production(points, start, end).hours.items()
        if hour + HOUR <= now and production.metered_wh > issued_wh.get(hour, 0)
    }
    return UnanchoredProduction(log_size, readings, frozenset(more), sum(more.values()))


def _commit(
    tx: LogTransaction,
    *,
    device: DeviceRecord,
    account_id: str,
    ready: Sequence[_Draft],
    current: Mapping[int, tuple[int, int]],
    moment: int,
    validity_months: int,
) -> list[IssuedCertificate]:
    """Append the drafts' leaves and write their counters, rows and events (writer lock held)."""
    indices = tx.extend_canonical([item.leaf for item in ready])
    new_counters: list[dict[str, Any]] = []
    changed_counters: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    issued: list[IssuedCertificate] = []
    for item, index in zip(ready, indices, strict=True):
        production = item.hour
        hour = production.hour_start
        old_metered, old_issued = current.get(hour, (0, 0))
        # Readings only ever append and the anchored size only grows.
        assert production.metered_wh >= old_metered, "metered production never shrinks"
        assert item.serial_start == old_issued < production.metered_wh
        counter = {
            "device_id": device.device_id,
            "hour_start": hour,
            "metered_wh": production.metered_wh,
            "issued_wh": production.metered_wh,
        }
        (changed_counters if hour in current else new_counters).append(counter)
        rows.append(
            {
                "id": item.certificate_id,
                "device_id": device.device_id,
                "hour_start": hour,
                "serial_start": item.serial_start,
                "serial_end": production.metered_wh,
                "account_id": account_id,
                "status": CertificateStatus.ACTIVE.value,
                "parent_id": None,
                "energy_source": device.energy_source.value,
                "grid_region": device.grid_region.value,
                "issued_at": moment,
                "expires_at": add_months(hour + HOUR, validity_months),
                "log_index": index,
                "status_reason": None,
            }
        )
        events.append(
            {"certificate_id": item.certificate_id, "log_index": index, "kind": ISSUED_KIND}
        )
        issued.append(
            IssuedCertificate(
                item.certificate_id, hour, item.serial_start, production.metered_wh, index
            )
        )
    session = tx.session
    if new_counters:
        session.execute(insert(DeviceHour), new_counters)
    if changed_counters:
        session.execute(update(DeviceHour), changed_counters)
    if rows:
        session.execute(insert(Certificate), rows)
        session.execute(insert(CertificateEvent), events)
    return issued


def _counters(session: Session, device_id: str, start: int, end: int) -> dict[int, tuple[int, int]]:
    rows = session.execute(
        select(DeviceHour.hour_start, DeviceHour.metered_wh, DeviceHour.issued_wh).where(
            DeviceHour.device_id == device_id,
            DeviceHour.hour_start >= start,
            DeviceHour.hour_start < end,
        )
    ).all()
    return {row.hour_start: (row.metered_wh, row.issued_wh) for row in rows}


def device_of_meter(session: Session, meter_id: str) -> str | None:
    return session.scalar(select(DeviceMeter.device_id).where(DeviceMeter.meter_id == meter_id))
