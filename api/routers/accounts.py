"""Registry accounts of the caller's organisation, where its certificates live.

An account of another organisation is 403 `not-owner` here, though its id is what others
transfer certificates to. The holdings summary is one aggregate query per account.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status
from sqlalchemy import func, select

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
from api.schemas.accounts import (
    AccountBody,
    AccountCreate,
    AccountDetail,
    AccountList,
    Holdings,
    StatusCounts,
)
from api.security import SCOPE_CERTIFICATES_READ, SCOPE_CERTIFICATES_WRITE, Principal
from ledger.certificates.devices import get_account, list_accounts, open_account
from ledger.certificates.models import Certificate
from ledger.certificates.rules import CertificateStatus, gec_text
from ledger.storage.db import Database

router = APIRouter(
    prefix="/v1/accounts",
    tags=["accounts"],
    responses=problem_responses(UNAUTHORIZED, FORBIDDEN, VALIDATION_ERROR),
)

AccountIdPath = Annotated[str, Path(min_length=1, max_length=36)]


def holdings(database: Database, account_id: str) -> Holdings:
    """Wh and certificate counts by status; a split certificate's Wh are its parts'."""
    volume = func.sum(Certificate.serial_end - Certificate.serial_start)
    query = (
        select(Certificate.status, func.count(), volume)
        .where(Certificate.account_id == account_id)
        .group_by(Certificate.status)
    )
    with database.read() as session:
        rows = session.execute(query).all()
    counts = {str(row[0]): int(row[1]) for row in rows}
    wh = {str(row[0]): int(row[2] or 0) for row in rows}
    active = wh.get(CertificateStatus.ACTIVE.value, 0)
    retired = wh.get(CertificateStatus.RETIRED.value, 0)
    return Holdings(
        active_wh=active,
        active_gec=gec_text(active),
        retired_wh=retired,
        retired_gec=gec_text(retired),
        certificates=StatusCounts(**{status: counts.get(status, 0) for status in _STATUSES}),
    )


_STATUSES = tuple(item.value for item in CertificateStatus)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Open an account of the caller's organisation (`account.opened/1`)",
    responses=problem_responses(STATE_CONFLICT, CERTIFICATE_REQUEST_INVALID),
)
def create_account(
    registry: RegistryDep,
    body: AccountCreate,
    principal: Annotated[Principal, require_scopes(SCOPE_CERTIFICATES_WRITE)],
) -> AccountBody:
    return AccountBody.from_record(open_account(registry.log, principal.organisation_id, body.name))


@router.get("", summary="The caller's accounts, by name")
def read_accounts(
    registry: RegistryDep,
    principal: Annotated[Principal, require_scopes(SCOPE_CERTIFICATES_READ)],
) -> AccountList:
    accounts = list_accounts(registry.database, principal.organisation_id)
    return AccountList(accounts=[AccountBody.from_record(account) for account in accounts])


@router.get(
    "/{account_id}",
    summary="An account with its holdings: active and retired Wh and GEC, counts by status",
    responses=problem_responses(NOT_FOUND, NOT_OWNER),
)
def read_account(
    registry: RegistryDep,
    account_id: AccountIdPath,
    principal: Annotated[Principal, require_scopes(SCOPE_CERTIFICATES_READ)],
) -> AccountDetail:
    account = get_account(registry.database, account_id, principal.organisation_id)
    summary = holdings(registry.database, account.account_id)
    return AccountDetail(**AccountBody.from_record(account).model_dump(), holdings=summary)
