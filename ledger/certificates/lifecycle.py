"""Certificate lifecycle: split, transfer, retire, expire, withdraw, and the reads.

Each change is checked against `ledger.certificates.rules` under the log's writer lock,
then committed as rows plus a signed statement (docs/certificates.md) in one transaction;
a refused request writes nothing. Splits re-issue: every child gets its own credential
(`certificate.issued/1` with `splitFrom`), so any certificate a holder has is a credential
it can show. Invariants asserted here and enforced by the schema: a retirement row per
certificate at most (primary key), live serial ranges never overlap (migration 0004).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from ledger.access.models import Organisation
from ledger.certificates import rules
from ledger.certificates.devices import MAX_PAGE, load_account
from ledger.certificates.entries import (
    EXPIRED_KIND,
    ISSUED_KIND,
    RETIRED_KIND,
    SPLIT_KIND,
    TRANSFERRED_KIND,
    WITHDRAWN_KIND,
)
from ledger.certificates.issuance import issued_leaf
from ledger.certificates.models import Account, Certificate, CertificateEvent, CertificateRetirement
from ledger.certificates.rules import (
    HOUR,
    CertificateRequestError,
    CertificateState,
    CertificateStatus,
    NotOwnedError,
    RecordNotFoundError,
    RetirementPurpose,
    gec_text,
    serial_text,
)
from ledger.credentials.data_integrity import ProofOptions, sign_credential_jcs, sign_statement
from ledger.credentials.issuer import IssuerIdentity
from ledger.log.models import LogEntry
from ledger.log.store import Log, LogTransaction
from ledger.meters.entries import PROVINCE_PATTERN, GridRegion
from ledger.storage.base import utc_now
from ledger.storage.db import Database
from ledger.times import format_utc

MAX_REASON_CHARS = 1_000
MAX_EXPIRIES_PER_SWEEP = 10_000
"""Bounds one sweep's transaction; the next sweep picks up the rest."""
MAX_WITHDRAWN_PER_REQUEST = 10_000


@dataclass(frozen=True, slots=True)
class Retirement:
    beneficiary_id: str
    purpose: RetirementPurpose
    period_start: int
    period_end: int
    province: str
    grid_region: GridRegion
    retired_at: int
    log_index: int


@dataclass(frozen=True, slots=True)
class CertificateRecord:
    certificate_id: str
    device_id: str
    hour_start: int
    serial_start: int
    serial_end: int
    account_id: str
    holder_id: str
    status: CertificateStatus
    parent_id: str | None
    energy_source: str
    grid_region: str
    issued_at: int
    expires_at: int
    log_index: int
    status_reason: str | None
    retirement: Retirement | None

    @property
    def volume_wh(self) -> int:
        return self.serial_end - self.serial_start

    @property
    def gec_equivalent(self) -> str:
        return gec_text(self.volume_wh)

    @property
    def serial(self) -> str:
        return serial_text(self.device_id, self.hour_start, self.serial_start, self.serial_end)


def _record(session: Session, row: Certificate) -> CertificateRecord:
    holder = session.scalar(select(Account.organisation_id).where(Account.id == row.account_id))
    assert holder is not None
    retired = session.get(CertificateRetirement, row.id)
    retirement = (
        Retirement(
            retired.beneficiary_id,
            RetirementPurpose(retired.purpose),
            retired.period_start,
            retired.period_end,
            retired.province,
            GridRegion(retired.grid_region),
            retired.retired_at,
            retired.log_index,
        )
        if retired is not None
        else None
    )
    return CertificateRecord(
        certificate_id=row.id,
        device_id=row.device_id,
        hour_start=row.hour_start,
        serial_start=row.serial_start,
        serial_end=row.serial_end,
        account_id=row.account_id,
        holder_id=holder,
        status=CertificateStatus(row.status),
        parent_id=row.parent_id,
        energy_source=row.energy_source,
        grid_region=row.grid_region,
        issued_at=row.issued_at,
        expires_at=row.expires_at,
        log_index=row.log_index,
        status_reason=row.status_reason,
        retirement=retirement,
    )


def _state(row: Certificate) -> CertificateState:
    return CertificateState(
        certificate=row.id,
        device=row.device_id,
        hour_start=row.hour_start,
        serial_start=row.serial_start,
        serial_end=row.serial_end,
        account=row.account_id,
        valid_until=row.expires_at,
        status=CertificateStatus(row.status),
        parent=row.parent_id,
        reason=row.status_reason,
    )


def _now(now: int | None) -> int:
    return int(utc_now().timestamp()) if now is None else now


def _held_row(session: Session, certificate_id: str, organisation_id: str | None) -> Certificate:
    row = session.get(Certificate, certificate_id)
    if row is None:
        raise RecordNotFoundError(f"no certificate {certificate_id!r}")
    if organisation_id is not None:
        holder = session.scalar(select(Account.organisation_id).where(Account.id == row.account_id))
        if holder != organisation_id:
            raise NotOwnedError(f"certificate {certificate_id!r} is held by another organisation")
    return row


# -------------------------------------------------------------------------------- reads


def get_certificate(
    database: Database, certificate_id: str, organisation_id: str | None
) -> CertificateRecord:
    """The certificate, if `organisation_id` (None: anyone) holds it."""
    with database.read() as session:
        return _record(session, _held_row(session, certificate_id, organisation_id))


@dataclass(frozen=True, slots=True)
class CertificateFilter:
    account_id: str | None = None
    device_id: str | None = None
    produced_from: int | None = None
    produced_to: int | None = None
    status: CertificateStatus | None = None
    energy_source: str | None = None


def list_certificates(
    database: Database,
    organisation_id: str | None,
    filters: CertificateFilter,
    *,
    after_index: int | None = None,
    limit: int = 100,
) -> tuple[list[CertificateRecord], bool]:
    """Certificates held by the organisation's accounts, oldest issuance first (keyset page)."""
    assert 1 <= limit <= MAX_PAGE
    query = select(Certificate).join(Account, Account.id == Certificate.account_id)
    if organisation_id is not None:
        query = query.where(Account.organisation_id == organisation_id)
    if filters.account_id is not None:
        query = query.where(Certificate.account_id == filters.account_id)
    if filters.device_id is not None:
        query = query.where(Certificate.device_id == filters.device_id)
    if filters.produced_from is not None:
        query = query.where(Certificate.hour_start >= filters.produced_from)
    if filters.produced_to is not None:
        query = query.where(Certificate.hour_start < filters.produced_to)
    if filters.status is not None:
        query = query.where(Certificate.status == filters.status.value)
    if filters.energy_source is not None:
        query = query.where(Certificate.energy_source == filters.energy_source)
    if after_index is not None:
        query = query.where(Certificate.log_index > after_index)
    query = query.order_by(Certificate.log_index).limit(limit + 1)
    with database.read() as session:
        rows = list(session.scalars(query))
        records = [_record(session, row) for row in rows[:limit]]
    return records, len(rows) > limit


def certificate_entry_indices(database: Database, certificate_id: str) -> list[int]:
    """Log indices of every entry that concerns the certificate, its ancestors' included."""
    indices: set[int] = set()
    with database.read() as session:
        current: str | None = certificate_id
        while current is not None:
            indices.update(
                session.scalars(
                    select(CertificateEvent.log_index).where(
                        CertificateEvent.certificate_id == current
                    )
                )
            )
            row = session.get(Certificate, current)
            if row is None:
                raise RecordNotFoundError(f"no certificate {certificate_id!r}")
            current = row.parent_id
    return sorted(indices)


def issued_credential(database: Database, certificate_id: str) -> dict[str, Any]:
    """The certificate's signed credential, exactly as committed to the log."""
    with database.read() as session:
        row = session.get(Certificate, certificate_id)
        if row is None:
            raise RecordNotFoundError(f"no certificate {certificate_id!r}")
        return _credential_at(session, row.log_index)


def _credential_at(session: Session, index: int) -> dict[str, Any]:
    data = session.scalar(select(LogEntry.data).where(LogEntry.idx == index))
    assert data is not None, "a certificate row always has its leaf"
    entry = json.loads(data)
    assert entry["kind"] == ISSUED_KIND
    credential: dict[str, Any] = entry["credential"]
    return credential


# ------------------------------------------------------------------------------ writes


def _statement(
    tx: LogTransaction, issuer: IssuerIdentity, entry: dict[str, Any], certificates: Sequence[str]
) -> int:
    index = tx.append(sign_statement(entry, issuer.private_key, issuer.did))
    tx.session.execute(
        insert(CertificateEvent),
        [
            {"certificate_id": cid, "log_index": index, "kind": entry["kind"]}
            for cid in certificates
        ],
    )
    return index


def _split_in(
    tx: LogTransaction, issuer: IssuerIdentity, row: Certificate, volumes: Sequence[int], at: int
) -> list[Certificate]:
    """Split `row` (checked by the rules) into children with their own credentials."""
    session = tx.session
    state = _state(row)
    # The state first: a retired certificate is "retired", whatever volumes were asked.
    rules.require_movable(state, at, "split")
    ranges = rules.split_ranges(state, list(volumes))
    children = [(f"urn:uuid:{uuid.uuid4()}", start, end) for start, end in ranges]
    parent_state, child_states = rules.split(
        state, children=children, account=row.account_id, at=at
    )
    assert parent_state.status is CertificateStatus.SPLIT
    assert sum(child.volume_wh for child in child_states) == state.volume_wh
    split_index = _statement(
        tx,
        issuer,
        {
            "kind": SPLIT_KIND,
            "certificate": row.id,
            "account": row.account_id,
            "children": [
                {"certificate": cid, "serialStart": start, "serialEnd": end}
                for cid, start, end in children
            ],
            "at": format_utc(at),
        },
        [row.id],
    )
    # The parent gives up its Wh before the children take them (the overlap guard).
    row.status = CertificateStatus.SPLIT.value
    session.flush()
    parent_credential = _credential_at(session, row.log_index)
    created: list[Certificate] = []
    for cid, start, end in children:
        subject = dict(parent_credential["credentialSubject"])
        subject.update(
            serialStart=start,
            serialEnd=end,
            volumeWh=end - start,
            serial=serial_text(row.device_id, row.hour_start, start, end),
            gecEquivalent=gec_text(end - start),
            splitFrom=row.id,
        )
        unsigned = {key: value for key, value in parent_credential.items() if key not in ("proof",)}
        unsigned.update(id=cid, validFrom=format_utc(at), credentialSubject=subject)
        _, credential_jcs = sign_credential_jcs(
            unsigned, issuer.private_key, ProofOptions(format_utc(at), issuer.verification_method)
        )
        index = tx.append_canonical(issued_leaf(credential_jcs, account=row.account_id))
        child = Certificate(
            id=cid,
            device_id=row.device_id,
            hour_start=row.hour_start,
            serial_start=start,
            serial_end=end,
            account_id=row.account_id,
            status=CertificateStatus.ACTIVE.value,
            parent_id=row.id,
            energy_source=row.energy_source,
            grid_region=row.grid_region,
            issued_at=at,
            expires_at=row.expires_at,
            log_index=index,
        )
        session.add(child)
        session.flush()
        session.add_all(
            [
                CertificateEvent(certificate_id=cid, log_index=split_index, kind=SPLIT_KIND),
                CertificateEvent(certificate_id=cid, log_index=index, kind=ISSUED_KIND),
            ]
        )
        created.append(child)
    return created


def split_certificate(
    log: Log,
    issuer: IssuerIdentity,
    *,
    organisation_id: str,
    certificate_id: str,
    volumes: Sequence[int],
    now: int | None = None,
) -> list[CertificateRecord]:
    at = _now(now)
    with log.write() as tx:
        row = _held_row(tx.session, certificate_id, organisation_id)
        children = _split_in(tx, issuer, row, volumes, at)
        tx.session.flush()
        return [_record(tx.session, child) for child in children]


def _part(
    tx: LogTransaction, issuer: IssuerIdentity, row: Certificate, volume_wh: int | None, at: int
) -> Certificate:
    """The whole certificate, or (split first) a child holding its first `volume_wh` Wh."""
    total = row.serial_end - row.serial_start
    if volume_wh is None or volume_wh == total:
        return row
    if not 0 < volume_wh < total:
        raise CertificateRequestError(
            f"volumeWh must be between 1 and the certificate's {total} Wh"
        )
    first, _ = _split_in(tx, issuer, row, [volume_wh, total - volume_wh], at)
    return first


@dataclass(frozen=True, slots=True)
class LifecycleResult:
    certificate: CertificateRecord
    """The certificate the action applied to (a split child for a partial volume)."""
    remainder: CertificateRecord | None
    """What a partial action left with the original holder."""


def transfer_certificate(
    log: Log,
    issuer: IssuerIdentity,
    *,
    organisation_id: str,
    certificate_id: str,
    to_account: str,
    volume_wh: int | None = None,
    now: int | None = None,
) -> LifecycleResult:
    at = _now(now)
    with log.write() as tx:
        session = tx.session
        row = _held_row(session, certificate_id, organisation_id)
        destination = load_account(session, to_account, None)
        rules.transfer(_state(row), from_account=row.account_id, to_account=to_account, at=at)
        moved = _part(tx, issuer, row, volume_wh, at)
        source = moved.account_id
        rules.transfer(_state(moved), from_account=source, to_account=to_account, at=at)
        _statement(
            tx,
            issuer,
            {
                "kind": TRANSFERRED_KIND,
                "certificate": moved.id,
                "from": source,
                "to": to_account,
                "toOrganisation": destination.organisation_id,
                "at": format_utc(at),
            },
            [moved.id],
        )
        moved.account_id = to_account
        session.flush()
        return _result(session, moved, row)


def _result(session: Session, acted: Certificate, original: Certificate) -> LifecycleResult:
    remainder = None
    if acted.id != original.id:
        rest = session.scalars(
            select(Certificate).where(
                Certificate.parent_id == original.id, Certificate.id != acted.id
            )
        ).one()
        remainder = _record(session, rest)
    return LifecycleResult(_record(session, acted), remainder)


@dataclass(frozen=True, slots=True)
class RetirementRequest:
    beneficiary_id: str
    purpose: RetirementPurpose
    period_start: int
    period_end: int
    province: str
    grid_region: GridRegion

    def validate(self) -> None:
        if self.period_end <= self.period_start:
            raise CertificateRequestError("the reporting period must end after it starts")
        if self.period_end - self.period_start > 5 * 366 * 86_400:
            raise CertificateRequestError("a reporting period is at most five years")
        if not PROVINCE_PATTERN.fullmatch(self.province):
            raise CertificateRequestError(
                "consumption province must be an ISO 3166-2 code such as CN-JS"
            )


def retire_certificate(
    log: Log,
    issuer: IssuerIdentity,
    *,
    organisation_id: str,
    certificate_id: str,
    request: RetirementRequest,
    volume_wh: int | None = None,
    now: int | None = None,
) -> LifecycleResult:
    request.validate()
    at = _now(now)
    with log.write() as tx:
        session = tx.session
        row = _held_row(session, certificate_id, organisation_id)
        if session.get(Organisation, request.beneficiary_id) is None:
            raise CertificateRequestError(
                f"beneficiary {request.beneficiary_id!r} is not an organisation"
            )
        rules.retire(_state(row), account=row.account_id, beneficiary=request.beneficiary_id, at=at)
        rules.require_vintage(
            _state(row), period_start=request.period_start, period_end=request.period_end
        )
        target = _part(tx, issuer, row, volume_wh, at)
        state = rules.retire(
            _state(target), account=target.account_id, beneficiary=request.beneficiary_id, at=at
        )
        index = _statement(
            tx,
            issuer,
            {
                "kind": RETIRED_KIND,
                "certificate": target.id,
                "account": target.account_id,
                "beneficiary": request.beneficiary_id,
                "purpose": request.purpose.value,
                "reportingPeriodStart": format_utc(request.period_start),
                "reportingPeriodEnd": format_utc(request.period_end),
                "consumptionProvince": request.province,
                "consumptionGridRegion": request.grid_region.value,
                "at": format_utc(at),
            },
            [target.id],
        )
        target.status = state.status.value
        session.add(
            CertificateRetirement(
                certificate_id=target.id,
                beneficiary_id=request.beneficiary_id,
                purpose=request.purpose.value,
                period_start=request.period_start,
                period_end=request.period_end,
                province=request.province,
                grid_region=request.grid_region.value,
                retired_at=at,
                log_index=index,
            )
        )
        session.flush()
        return _result(session, target, row)


def expire_due(log: Log, issuer: IssuerIdentity, *, now: int | None = None) -> list[str]:
    """Append `certificate.expired/1` for active certificates past their validity."""
    at = _now(now)
    with log.write() as tx:
        rows = list(
            tx.session.scalars(
                select(Certificate)
                .where(
                    Certificate.status == CertificateStatus.ACTIVE.value,
                    Certificate.expires_at <= at,
                )
                .order_by(Certificate.log_index)
                .limit(MAX_EXPIRIES_PER_SWEEP)
            )
        )
        for row in rows:
            state = rules.expire(_state(row), at=at)
            _statement(
                tx,
                issuer,
                {"kind": EXPIRED_KIND, "certificate": row.id, "at": format_utc(at)},
                [row.id],
            )
            row.status = state.status.value
        tx.session.flush()
        return [row.id for row in rows]


def withdraw_certificate(
    log: Log,
    issuer: IssuerIdentity,
    *,
    certificate_id: str,
    reason: str,
    now: int | None = None,
) -> list[str]:
    """Withdraw a certificate (a split one: every live descendant) for faulty meter data."""
    if not reason.strip() or len(reason) > MAX_REASON_CHARS:
        raise CertificateRequestError(f"a withdrawal reason is 1-{MAX_REASON_CHARS} characters")
    at = _now(now)
    with log.write() as tx:
        session = tx.session
        root = _held_row(session, certificate_id, None)
        targets: list[Certificate] = []
        pending = [root]
        while pending:
            row = pending.pop()
            if row.status == CertificateStatus.SPLIT.value:
                pending.extend(
                    session.scalars(select(Certificate).where(Certificate.parent_id == row.id))
                )
            elif row.status != CertificateStatus.WITHDRAWN.value:
                targets.append(row)
            if len(targets) > MAX_WITHDRAWN_PER_REQUEST:
                raise CertificateRequestError("too many certificates to withdraw in one request")
        if not targets:
            raise rules.RuleViolationError("withdraw", f"{certificate_id} is already withdrawn")
        for row in sorted(targets, key=lambda item: item.log_index):
            state = rules.withdraw(_state(row), reason=reason, at=at)
            _statement(
                tx,
                issuer,
                {
                    "kind": WITHDRAWN_KIND,
                    "certificate": row.id,
                    "reason": reason,
                    "at": format_utc(at),
                },
                [row.id],
            )
            row.status = state.status.value
            row.status_reason = reason
        session.flush()
        return [row.id for row in targets]


def hour_of(record: CertificateRecord) -> tuple[int, int]:
    return record.hour_start, record.hour_start + HOUR
