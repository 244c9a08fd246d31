"""Generation devices: registration by the owner, approval by the registry issuer, issuance.

Reads and writes are scoped to the caller's organisation (another organisation's device is
403 `not-owner`, an unknown one 404), except for tokens holding `issuer`: the registry
issuer approves any organisation's device and may list and read them all to find the
pending ones. Ledger errors become problems through the handler in `api.problems`.
Path functions are plain `def` (database calls run in FastAPI's threadpool).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from api.anchor_wait import AnchoringDep, anchor_wait_of
from api.deps import RegistryDep, require_scopes
from api.problems import (
    CERTIFICATE_REQUEST_INVALID,
    FORBIDDEN,
    NOT_FOUND,
    NOT_OWNER,
    STATE_CONFLICT,
    UNAUTHORIZED,
    VALIDATION_ERROR,
    problem_responses,
)
from api.schemas.devices import DeviceBody, DeviceCreate, DevicePage, IssuanceBody, IssuanceRequest
from api.security import SCOPE_DEVICES_READ, SCOPE_DEVICES_WRITE, SCOPE_ISSUER, Principal
from attestation.anchoring.anchor import latest_anchor_record
from ledger.certificates.devices import (
    DEVICE_ID_PATTERN,
    MAX_PAGE,
    DeviceSpec,
    DeviceStatus,
    approve_device,
    get_device,
    list_devices,
    register_device,
)
from ledger.certificates.issuance import issue_certificates
from ledger.certificates.rules import CertificateRequestError, StateConflictError
from ledger.meters.registration import MeterError, to_epoch

router = APIRouter(
    prefix="/v1/devices",
    tags=["devices"],
    responses=problem_responses(UNAUTHORIZED, FORBIDDEN, NOT_OWNER, VALIDATION_ERROR),
)

DeviceIdPath = Annotated[str, Path(pattern=DEVICE_ID_PATTERN.pattern)]


def _visible_to(principal: Principal) -> str | None:
    """The organisation whose devices the caller sees; None (all) for the registry issuer."""
    return None if SCOPE_ISSUER in principal.scopes else principal.organisation_id


def request_seconds(moment: datetime, name: str) -> int:
    """Whole UTC seconds of a request time, or 400 `certificate-request-invalid`."""
    try:
        return to_epoch(moment)
    except MeterError as exc:
        raise CertificateRequestError(f"`{name}`: {exc}") from exc


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Register a generation device of the caller's organisation (`device.registered/1`)",
    description=(
        "The device is `pending` until the registry issuer approves it. Its meters must be "
        "the organisation's generation meters in the device's grid region, each measuring "
        "no other device."
    ),
    responses=problem_responses(CERTIFICATE_REQUEST_INVALID, STATE_CONFLICT, NOT_FOUND),
)
def create_device(
    registry: RegistryDep,
    body: DeviceCreate,
    principal: Annotated[Principal, require_scopes(SCOPE_DEVICES_WRITE)],
) -> DeviceBody:
    spec = DeviceSpec(
        device_id=body.id,
        name=body.name,
        energy_source=body.energy_source,
        technology=body.technology,
        capacity_w=body.capacity_w,
        commissioning_date=body.commissioning_date,
        province=body.location.province,
        grid_region=body.location.grid_region,
        meters=tuple(body.meters),
    )
    return DeviceBody.from_record(register_device(registry.log, principal.organisation_id, spec))


@router.get(
    "",
    summary="The caller's devices (all devices for the registry issuer), by id, paginated",
)
def read_devices(
    registry: RegistryDep,
    principal: Annotated[Principal, require_scopes(SCOPE_DEVICES_READ)],
    device_status: Annotated[DeviceStatus | None, Query(alias="status")] = None,
    after: Annotated[
        str | None,
        Query(pattern=DEVICE_ID_PATTERN.pattern, description="Cursor: the last id already seen."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> DevicePage:
    page, more = list_devices(
        registry.database, _visible_to(principal), status=device_status, after=after, limit=limit
    )
    return DevicePage(
        devices=[DeviceBody.from_record(device) for device in page],
        next_after=page[-1].device_id if more and page else None,
    )


@router.get("/{device_id}", summary="A device", responses=problem_responses(NOT_FOUND))
def read_device(
    registry: RegistryDep,
    device_id: DeviceIdPath,
    principal: Annotated[Principal, require_scopes(SCOPE_DEVICES_READ)],
) -> DeviceBody:
    return DeviceBody.from_record(get_device(registry.database, device_id, _visible_to(principal)))


@router.post(
    "/{device_id}/approve",
    summary="Approve a device of any organisation (registry issuer; `device.approved/1`)",
    responses=problem_responses(NOT_FOUND, STATE_CONFLICT),
)
def approve(
    registry: RegistryDep,
    device_id: DeviceIdPath,
    principal: Annotated[Principal, require_scopes(SCOPE_ISSUER)],
) -> DeviceBody:
    del principal  # the scope is the whole check: the issuer acts for the registry
    # 404 before the issuer key is used, so a refused request never declares it (a leaf).
    device = get_device(registry.database, device_id, None)
    if device.status is DeviceStatus.APPROVED:
        raise StateConflictError(f"device {device_id!r} is already approved")
    return DeviceBody.from_record(approve_device(registry.log, registry.issuer(), device_id))


@router.post(
    "/{device_id}/issuance",
    status_code=status.HTTP_201_CREATED,
    summary="Issue certificates for the device's anchored production in [from, to)",
    description=(
        "One certificate per completed device-hour with production not issued before, into "
        "one of the caller's accounts. Only readings below the newest recorded anchor's size "
        "count (`anchoredSize`; 0 when nothing is anchored yet), and hours touched by a "
        "reading flagged implausible are skipped. `from` and `to` fall on whole UTC hours; "
        "at most 8,784 hours (a leap year) per request. Repeating a request issues only "
        "what was newly anchored since. When readings of the period are not anchored yet, "
        "`waitingForAnchor` says what they would add and, when this service runs the "
        "anchoring scheduler, when the next anchor is due (`nextAnchorDueAt`, "
        "`retryAfterSeconds`)."
    ),
    responses=problem_responses(NOT_FOUND, STATE_CONFLICT, CERTIFICATE_REQUEST_INVALID),
)
def issue(
    registry: RegistryDep,
    device_id: DeviceIdPath,
    body: IssuanceRequest,
    principal: Annotated[Principal, require_scopes(SCOPE_DEVICES_WRITE)],
    anchoring: AnchoringDep,
) -> IssuanceBody:
    start = request_seconds(body.from_time, "from")
    end = request_seconds(body.to_time, "to")
    # Checked before the issuer key is used: an approved device implies a declared issuer,
    # so a refused request never declares it (a log entry) as a side effect.
    device = get_device(registry.database, device_id, principal.organisation_id)
    if device.status is not DeviceStatus.APPROVED:
        raise StateConflictError(f"device {device_id!r} is not approved by the issuer yet")
    anchor = latest_anchor_record(registry.database)
    result = issue_certificates(
        registry.log,
        registry.issuer(),
        organisation_id=principal.organisation_id,
        device_id=device_id,
        account_id=body.account,
        start=start,
        end=end,
        anchored_size=anchor.size if anchor is not None else 0,
        validity_months=registry.settings.certificate_validity_months,
    )
    # Asked after issuing: the outlook of the anchor that the unanchored readings wait for.
    return IssuanceBody.from_result(result, anchor_wait_of(anchoring))
