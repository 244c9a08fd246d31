"""Granular certificates: listing, the credential, split, transfer, retire, withdraw, expire,
and the public proof bundle.

Holders act on certificates in their organisation's accounts (another organisation's is
403 `not-owner`, an unknown id 404). The registry issuer (`issuer` scope) withdraws any
certificate and runs the expiry sweep; with `certificates:read` it may also read and list
any organisation's certificates. Each change is one transaction of rows and signed log
statements in `ledger.certificates.lifecycle`; a refused request writes nothing. A refusal by a
lifecycle rule is 409 `state-conflict` with the rule's slug in `rule`.

`GET /v1/certificates/{id}/bundle` needs no token: certificate ids are random UUIDs, so
knowing one is the capability a holder hands to its verifier.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from sqlalchemy import select

from api.deps import RegistryDep, require_scopes
from api.problems import (
    BUNDLE_REQUEST_INVALID,
    CERTIFICATE_REQUEST_INVALID,
    FORBIDDEN,
    NOT_ANCHORED,
    NOT_FOUND,
    NOT_OWNER,
    NOT_READY,
    RETIREMENT_VINTAGE,
    STATE_CONFLICT,
    UNAUTHORIZED,
    VALIDATION_ERROR,
    problem_responses,
)
from api.routers.devices import request_seconds
from api.schemas.certificates import (
    CertificateBody,
    CertificateDetail,
    CertificatePage,
    ExpiryBody,
    LifecycleBody,
    RetireRequest,
    SplitBody,
    SplitRequest,
    TransferRequest,
    WithdrawBody,
    WithdrawRequest,
)
from api.security import (
    SCOPE_CERTIFICATES_READ,
    SCOPE_CERTIFICATES_WRITE,
    SCOPE_ISSUER,
    Principal,
)
from attestation.bundles.format import BUNDLE_MEDIA_TYPE, bundle_bytes
from attestation.certificates.bundle import build_certificate_bundle
from ledger.certificates.devices import DEVICE_ID_PATTERN, MAX_PAGE, get_account
from ledger.certificates.lifecycle import (
    CertificateFilter,
    LifecycleResult,
    RetirementRequest,
    expire_due,
    get_certificate,
    issued_credential,
    list_certificates,
    retire_certificate,
    split_certificate,
    transfer_certificate,
    withdraw_certificate,
)
from ledger.certificates.models import Certificate
from ledger.certificates.rules import CertificateStatus
from ledger.meters.entries import EnergySource
from ledger.registry import Registry
from ledger.storage.base import utc_now

CERTIFICATES_PATH = "/v1/certificates"
CERTIFICATE_ID_PATTERN = r"^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"

router = APIRouter(
    prefix=CERTIFICATES_PATH,
    tags=["certificates"],
    responses=problem_responses(UNAUTHORIZED, FORBIDDEN, VALIDATION_ERROR),
)
bundle_router = APIRouter(
    prefix=CERTIFICATES_PATH,
    tags=["certificates"],
    responses=problem_responses(
        NOT_FOUND, NOT_ANCHORED, BUNDLE_REQUEST_INVALID, NOT_READY, VALIDATION_ERROR
    ),
)

CertificateIdPath = Annotated[
    str, Path(pattern=CERTIFICATE_ID_PATTERN, description="`urn:uuid:<uuid4>`.")
]
_CHANGE_PROBLEMS = problem_responses(
    NOT_FOUND, NOT_OWNER, STATE_CONFLICT, CERTIFICATE_REQUEST_INVALID
)


def expire_due_certificates(registry: Registry) -> list[str]:
    """One expiry sweep now; the ids it expired.

    Looks for a due certificate first, without the writer lock, so an idle registry costs
    one small read (LIMIT 1), and the issuer key (declared in the log on first use) is only
    touched when there is something to expire: a sweep of nothing writes nothing.
    """
    now = int(utc_now().timestamp())
    due = select(Certificate.id).where(
        Certificate.status == CertificateStatus.ACTIVE.value, Certificate.expires_at <= now
    )
    with registry.database.read() as session:
        if session.scalar(due.limit(1)) is None:
            return []
    return expire_due(registry.log, registry.issuer(), now=now)


def _existing(registry: Registry, certificate_id: str, organisation_id: str | None) -> None:
    """404 / 403 before the issuer key is used: a certificate implies a declared issuer, so
    a refused request never declares it (a log entry) as a side effect."""
    get_certificate(registry.database, certificate_id, organisation_id)


def _visible_to(principal: Principal) -> str | None:
    """The holder organisation the caller may read; None (any) for the registry issuer."""
    return None if SCOPE_ISSUER in principal.scopes else principal.organisation_id


def _lifecycle(result: LifecycleResult) -> LifecycleBody:
    return LifecycleBody(
        certificate=CertificateBody.from_record(result.certificate),
        remainder=(
            CertificateBody.from_record(result.remainder) if result.remainder is not None else None
        ),
    )


@router.get(
    "",
    summary="Certificates in the caller's accounts, oldest issuance first, filtered, paginated",
    description=(
        "Filters combine: `account` (one of the caller's), `device`, the production period "
        "`from` <= production start < `to`, `status` and `energySource`. Pages are keyset "
        "pages by the `certificate.issued/1` log index: pass `nextAfter` as `after`. With "
        "the `issuer` scope as well, certificates of every organisation are listed."
    ),
    responses=problem_responses(NOT_FOUND, NOT_OWNER, CERTIFICATE_REQUEST_INVALID),
)
def read_certificates(
    *,
    registry: RegistryDep,
    principal: Annotated[Principal, require_scopes(SCOPE_CERTIFICATES_READ)],
    account: Annotated[str | None, Query(min_length=1, max_length=36)] = None,
    device: Annotated[str | None, Query(pattern=DEVICE_ID_PATTERN.pattern)] = None,
    from_time: Annotated[datetime | None, Query(alias="from")] = None,
    to_time: Annotated[datetime | None, Query(alias="to")] = None,
    certificate_status: Annotated[CertificateStatus | None, Query(alias="status")] = None,
    energy_source: Annotated[EnergySource | None, Query(alias="energySource")] = None,
    after: Annotated[
        int | None, Query(ge=0, lt=1 << 62, description="Cursor: the last log index seen.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> CertificatePage:
    organisation = _visible_to(principal)
    if account is not None:
        get_account(registry.database, account, organisation)  # 404 / 403 rather than []
    filters = CertificateFilter(
        account_id=account,
        device_id=device,
        produced_from=request_seconds(from_time, "from") if from_time is not None else None,
        produced_to=request_seconds(to_time, "to") if to_time is not None else None,
        status=certificate_status,
        energy_source=energy_source.value if energy_source is not None else None,
    )
    page, more = list_certificates(
        registry.database, organisation, filters, after_index=after, limit=limit
    )
    return CertificatePage(
        certificates=[CertificateBody.from_record(record) for record in page],
        next_after=page[-1].log_index if more and page else None,
    )


@router.post(
    "/expire",
    summary="Expire every active certificate past its validity now (registry issuer)",
    description=(
        "One sweep (`certificate.expired/1` each), at most 10,000 certificates; the service "
        "also sweeps every `CARBONLEDGER_EXPIRY_SWEEP_SECONDS`."
    ),
)
def expire(
    registry: RegistryDep,
    principal: Annotated[Principal, require_scopes(SCOPE_ISSUER)],
) -> ExpiryBody:
    del principal  # the scope is the whole check: the issuer acts for the registry
    return ExpiryBody(expired=expire_due_certificates(registry))


@router.get(
    "/{certificate_id}",
    summary="A certificate held by the caller's organisation, with its signed credential",
    responses=problem_responses(NOT_FOUND, NOT_OWNER),
)
def read_certificate(
    registry: RegistryDep,
    certificate_id: CertificateIdPath,
    principal: Annotated[Principal, require_scopes(SCOPE_CERTIFICATES_READ)],
) -> CertificateDetail:
    record = get_certificate(registry.database, certificate_id, _visible_to(principal))
    credential = issued_credential(registry.database, certificate_id)
    return CertificateDetail.from_record_and_credential(record, credential)


@router.post(
    "/{certificate_id}/split",
    summary="Split an active certificate into parts with their own credentials",
    description=(
        "2 to 64 parts that add up exactly to the certificate's volume, in serial order; "
        "the parts stay in the same account, the original then holds nothing (`split`)."
    ),
    responses=_CHANGE_PROBLEMS,
)
def split(
    registry: RegistryDep,
    certificate_id: CertificateIdPath,
    body: SplitRequest,
    principal: Annotated[Principal, require_scopes(SCOPE_CERTIFICATES_WRITE)],
) -> SplitBody:
    _existing(registry, certificate_id, principal.organisation_id)
    children = split_certificate(
        registry.log,
        registry.issuer(),
        organisation_id=principal.organisation_id,
        certificate_id=certificate_id,
        volumes=body.volumes_wh,
    )
    return SplitBody(
        parent=certificate_id,
        children=[CertificateBody.from_record(child) for child in children],
    )


@router.post(
    "/{certificate_id}/transfer",
    summary="Transfer a certificate, or its first `volumeWh` Wh, to any account",
    description=(
        "A partial transfer splits first: the transferred part is `certificate`, what stays "
        "is `remainder`. The destination is an account id of any organisation."
    ),
    responses=_CHANGE_PROBLEMS,
)
def transfer(
    registry: RegistryDep,
    certificate_id: CertificateIdPath,
    body: TransferRequest,
    principal: Annotated[Principal, require_scopes(SCOPE_CERTIFICATES_WRITE)],
) -> LifecycleBody:
    _existing(registry, certificate_id, principal.organisation_id)
    result = transfer_certificate(
        registry.log,
        registry.issuer(),
        organisation_id=principal.organisation_id,
        certificate_id=certificate_id,
        to_account=body.to_account,
        volume_wh=body.volume_wh,
    )
    return _lifecycle(result)


@router.post(
    "/{certificate_id}/retire",
    summary="Retire (cancel) a certificate, or its first `volumeWh` Wh, for a beneficiary",
    description=(
        "Final: a retired certificate never moves, splits or retires again. The beneficiary "
        "(an organisation id) defaults to the caller's organisation. The reporting period "
        "must contain the certificate's production hour (422 `retirement-vintage`)."
    ),
    responses=problem_responses(
        NOT_FOUND, NOT_OWNER, STATE_CONFLICT, CERTIFICATE_REQUEST_INVALID, RETIREMENT_VINTAGE
    ),
)
def retire(
    registry: RegistryDep,
    certificate_id: CertificateIdPath,
    body: RetireRequest,
    principal: Annotated[Principal, require_scopes(SCOPE_CERTIFICATES_WRITE)],
) -> LifecycleBody:
    request = RetirementRequest(
        beneficiary_id=body.beneficiary or principal.organisation_id,
        purpose=body.purpose,
        period_start=request_seconds(body.reporting_period.from_time, "reportingPeriod.from"),
        period_end=request_seconds(body.reporting_period.to_time, "reportingPeriod.to"),
        province=body.consumption_location.province,
        grid_region=body.consumption_location.grid_region,
    )
    _existing(registry, certificate_id, principal.organisation_id)
    result = retire_certificate(
        registry.log,
        registry.issuer(),
        organisation_id=principal.organisation_id,
        certificate_id=certificate_id,
        request=request,
        volume_wh=body.volume_wh,
    )
    return _lifecycle(result)


@router.post(
    "/{certificate_id}/withdraw",
    summary="Withdraw a certificate of any holder for faulty meter data (registry issuer)",
    description=(
        "A split certificate's live parts are withdrawn with it. A withdrawn certificate "
        "fails verification with the reason given here."
    ),
    responses=problem_responses(NOT_FOUND, STATE_CONFLICT, CERTIFICATE_REQUEST_INVALID),
)
def withdraw(
    registry: RegistryDep,
    certificate_id: CertificateIdPath,
    body: WithdrawRequest,
    principal: Annotated[Principal, require_scopes(SCOPE_ISSUER)],
) -> WithdrawBody:
    del principal  # the scope is the whole check: the issuer acts for the registry
    _existing(registry, certificate_id, None)
    withdrawn = withdraw_certificate(
        registry.log, registry.issuer(), certificate_id=certificate_id, reason=body.reason
    )
    return WithdrawBody(reason=body.reason, withdrawn=withdrawn)


_BUNDLE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": (
            "A proof bundle (DESIGN §4.5) of the credential, its lifecycle statements and "
            "evidence readings: check it with `carbonledger verify`."
        ),
        "content": {BUNDLE_MEDIA_TYPE: {"schema": {"type": "object"}}},
    }
}


@bundle_router.get(
    "/{certificate_id}/bundle",
    summary="Proof bundle of a certificate (public: the id is the capability)",
    response_class=Response,
    responses=_BUNDLE_RESPONSE,
)
def certificate_bundle(registry: RegistryDep, certificate_id: CertificateIdPath) -> Response:
    bundle = build_certificate_bundle(registry, certificate_id)
    name = certificate_id.removeprefix("urn:uuid:")
    return Response(
        bundle_bytes(bundle),
        media_type=BUNDLE_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="certificate-{name}.json"'},
    )
