"""Reports: 24/7 (hourly) matching of consumption against retired certificates, with Scope 2.

A report is of the caller's organisation unless `organisation` names another one, which needs
the `admin` scope as well. The grid factors come from `CARBONLEDGER_GRID_FACTORS_FILE` or the
packaged MEE/NBS table (`ledger.factors.grid`). The path function is a plain `def`: it reads the
database and computes in FastAPI's threadpool.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import RegistryDep, require_scopes
from api.problems import (
    FORBIDDEN,
    NOT_FOUND,
    NOT_READY,
    RANGE_INVALID,
    UNAUTHORIZED,
    VALIDATION_ERROR,
    ProblemError,
    problem_responses,
)
from api.schemas.reports import MatchingReportBody
from api.security import SCOPE_ADMIN, SCOPE_REPORTS_READ, Principal
from ledger.certificates.matching import (
    MAX_HOURS,
    MatchingRequestError,
    UnknownOrganisationError,
    matching_report,
)
from ledger.factors.grid import FactorTableError, configured_factor_table
from ledger.meters.registration import MeterError, to_epoch

router = APIRouter(
    prefix="/v1/reports",
    tags=["reports"],
    responses=problem_responses(UNAUTHORIZED, FORBIDDEN, VALIDATION_ERROR),
)

_log = logging.getLogger(__name__)
MAX_ORGANISATION_ID_LENGTH = 36


def _seconds(moment: datetime, name: str) -> int:
    try:
        return to_epoch(moment)
    except MeterError as exc:
        raise ProblemError(RANGE_INVALID, f"`{name}`: {exc}") from exc


@router.get(
    "/matching",
    summary="Hourly (24/7) matching of consumption with retired certificates, and Scope 2",
    description=(
        "Consumption (`importWh` of the organisation's consumption and bidirectional meters) "
        "is matched hour by hour against certificates retired for the organisation whose "
        "production hour is that hour; with `sameRegion=true` only within the same grid "
        "region. Reports the hourly CFE score, the annual volume match for comparison, "
        "location-based emissions (consumption x regional grid factor of its year) and "
        "market-based emissions (unmatched consumption x the national factor excluding "
        "market-traded non-fossil power), GEC equivalents (1 GEC = 1 MWh) and which factors "
        f"were applied. `from` and `to` fall on whole UTC hours, at most {MAX_HOURS} hours "
        "apart. A report of another organisation needs the `admin` scope too."
    ),
    responses=problem_responses(NOT_FOUND, RANGE_INVALID, NOT_READY),
)
def matching(
    *,
    registry: RegistryDep,
    principal: Annotated[Principal, require_scopes(SCOPE_REPORTS_READ)],
    from_time: Annotated[datetime, Query(alias="from")],
    to_time: Annotated[datetime, Query(alias="to")],
    same_region: Annotated[
        bool,
        Query(
            alias="sameRegion",
            description="Match only consumption and certificates of the same grid region.",
        ),
    ] = False,
    organisation: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=MAX_ORGANISATION_ID_LENGTH,
            description="Organisation id (default: the caller's; another needs `admin`).",
        ),
    ] = None,
    hourly: Annotated[
        bool, Query(description="Include the hour-by-hour rows (up to 8,784 of them).")
    ] = False,
) -> MatchingReportBody:
    organisation_id = organisation or principal.organisation_id
    if organisation_id != principal.organisation_id and SCOPE_ADMIN not in principal.scopes:
        raise ProblemError(
            FORBIDDEN,
            f"a report of another organisation needs the scope {SCOPE_ADMIN}",
            extensions={"error": "insufficient_scope"},
        )
    start, end = _seconds(from_time, "from"), _seconds(to_time, "to")
    try:
        factors = configured_factor_table()
    except FactorTableError as exc:
        # The operator's configuration is at fault, not the request; the path stays in the log.
        _log.error("grid factor table unusable: %s", exc)
        raise ProblemError(
            NOT_READY, "the grid emission factor table is not usable; see the server log"
        ) from exc
    try:
        report = matching_report(
            registry.database,
            organisation_id,
            start,
            end,
            same_region=same_region,
            factors=factors,
        )
    except UnknownOrganisationError as exc:
        raise ProblemError(NOT_FOUND, str(exc)) from exc
    except MatchingRequestError as exc:
        raise ProblemError(RANGE_INVALID, str(exc)) from exc
    return MatchingReportBody.from_report(report, include_hours=hourly)
