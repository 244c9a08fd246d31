"""The meter registry: meters, their keys, key revocation, and equivocation evidence.

Every route is scoped to the caller's organisation: another organisation's meter is 403
`not-owner`, an unknown one 404. Path functions are plain `def` (database calls run in
FastAPI's threadpool).
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from api.deps import RegistryDep, require_scopes
from api.problems import (
    FORBIDDEN,
    KEY_ALREADY_REVOKED,
    KEY_EXISTS,
    METER_EXISTS,
    METER_REQUEST_INVALID,
    NOT_FOUND,
    NOT_OWNER,
    UNAUTHORIZED,
    VALIDATION_ERROR,
    ProblemError,
    problem_responses,
)
from api.schemas.meters import (
    EvidenceBody,
    EvidencePage,
    KeyCreate,
    KeyRevoke,
    MeterBody,
    MeterCreate,
    MeterKeyBody,
)
from api.security import (
    SCOPE_ADMIN,
    SCOPE_AUDIT_READ,
    SCOPE_METERS_READ,
    SCOPE_METERS_WRITE,
    Principal,
)
from ledger.meters.ingest import list_evidence
from ledger.meters.readings import METER_ID_PATTERN
from ledger.meters.registration import (
    KeyAlreadyRevokedError,
    KeyExistsError,
    KeyNotFoundError,
    MeterError,
    MeterExistsError,
    MeterNotFoundError,
    MeterNotOwnedError,
    MeterRecord,
    MeterSpec,
    get_meter,
    owned_meter,
    register_key,
    register_meter,
    revoke_key,
)
from ledger.registry import Registry

router = APIRouter(
    prefix="/v1/meters",
    tags=["meters"],
    responses=problem_responses(UNAUTHORIZED, FORBIDDEN, NOT_OWNER, VALIDATION_ERROR),
)

MeterIdPath = Annotated[str, Path(pattern=METER_ID_PATTERN.pattern)]
KeyIdPath = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]


def meter_problem(exc: MeterError) -> ProblemError:
    """The problem document for a registry error (most specific class first)."""
    if isinstance(exc, MeterNotOwnedError):
        return ProblemError(NOT_OWNER, str(exc))
    if isinstance(exc, MeterNotFoundError | KeyNotFoundError):
        return ProblemError(NOT_FOUND, str(exc))
    if isinstance(exc, MeterExistsError):
        return ProblemError(METER_EXISTS, str(exc))
    if isinstance(exc, KeyExistsError):
        return ProblemError(KEY_EXISTS, str(exc))
    if isinstance(exc, KeyAlreadyRevokedError):
        return ProblemError(KEY_ALREADY_REVOKED, str(exc))
    return ProblemError(METER_REQUEST_INVALID, str(exc))


def visible_meter(registry: Registry, meter_id: str, principal: Principal) -> MeterRecord:
    try:
        return owned_meter(registry.database, meter_id, principal.organisation_id)
    except MeterError as exc:
        raise meter_problem(exc) from exc


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Register a meter of the caller's organisation (a `meter.registered/1` leaf)",
    responses=problem_responses(METER_EXISTS, METER_REQUEST_INVALID),
)
def create_meter(
    registry: RegistryDep,
    body: MeterCreate,
    principal: Annotated[Principal, require_scopes(SCOPE_METERS_WRITE)],
) -> MeterBody:
    spec = MeterSpec(
        meter_id=body.id,
        role=body.role,
        province=body.location.province,
        grid_region=body.location.grid_region,
        energy_source=body.energy_source,
        capacity_w=body.capacity_w,
    )
    try:
        meter = register_meter(registry.log, principal.organisation_id, spec)
    except MeterError as exc:
        raise meter_problem(exc) from exc
    return MeterBody.from_record(meter)


@router.get(
    "/{meter_id}",
    summary="A meter, its keys and their revocations",
    responses=problem_responses(NOT_FOUND),
)
def read_meter(
    registry: RegistryDep,
    meter_id: MeterIdPath,
    principal: Annotated[Principal, require_scopes(SCOPE_METERS_READ)],
) -> MeterBody:
    return MeterBody.from_record(visible_meter(registry, meter_id, principal))


@router.post(
    "/{meter_id}/keys",
    status_code=status.HTTP_201_CREATED,
    summary="Register a meter public key (a `meter.key/1` leaf); the algorithm follows from it",
    responses=problem_responses(NOT_FOUND, KEY_EXISTS, METER_REQUEST_INVALID),
)
def add_key(
    registry: RegistryDep,
    meter_id: MeterIdPath,
    body: KeyCreate,
    principal: Annotated[Principal, require_scopes(SCOPE_METERS_WRITE)],
) -> MeterKeyBody:
    try:
        key = register_key(
            registry.log,
            meter_id,
            body.public_key,
            organisation_id=principal.organisation_id,
            valid_from=body.valid_from,
        )
    except MeterError as exc:
        raise meter_problem(exc) from exc
    return MeterKeyBody.from_record(key)


@router.post(
    "/{meter_id}/keys/{key_id}/revoke",
    summary="Revoke a meter key from a time on (a `meter.key-revoked/1` leaf)",
    responses=problem_responses(NOT_FOUND, KEY_ALREADY_REVOKED, METER_REQUEST_INVALID),
)
def revoke(
    registry: RegistryDep,
    meter_id: MeterIdPath,
    key_id: KeyIdPath,
    principal: Annotated[Principal, require_scopes(SCOPE_METERS_WRITE)],
    body: KeyRevoke | None = None,
) -> MeterKeyBody:
    try:
        key = revoke_key(
            registry.log,
            meter_id,
            key_id,
            organisation_id=principal.organisation_id,
            revoked_from=body.revoked_from if body is not None else None,
        )
    except MeterError as exc:
        raise meter_problem(exc) from exc
    return MeterKeyBody.from_record(key)


@router.get(
    "/{meter_id}/evidence",
    summary="Equivocation evidence: signed envelopes that contradict accepted readings",
    description=(
        "Needs `audit:read`. Limited to the caller's organisation, unless the token also "
        "holds `admin` (auditors and regulators of the whole registry)."
    ),
    responses=problem_responses(NOT_FOUND),
)
def evidence(
    registry: RegistryDep,
    meter_id: MeterIdPath,
    principal: Annotated[Principal, require_scopes(SCOPE_AUDIT_READ)],
    after: Annotated[int | None, Query(ge=0, lt=1 << 62)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EvidencePage:
    if SCOPE_ADMIN in principal.scopes:
        try:
            get_meter(registry.database, meter_id)
        except MeterError as exc:
            raise meter_problem(exc) from exc
    else:
        visible_meter(registry, meter_id, principal)
    page, more = list_evidence(registry.database, meter_id, after_id=after, limit=limit)
    return EvidencePage(
        evidence=[
            EvidenceBody(
                id=item.id,
                seq=item.seq,
                key_id=item.key_id,
                conflicts_with=item.conflicts_with,
                received_at=item.received_at,
                envelope=json.loads(item.envelope),
                envelope_bytes=EvidenceBody.encode(item.envelope),
            )
            for item in page
        ],
        next_after=page[-1].id if more and page else None,
    )
