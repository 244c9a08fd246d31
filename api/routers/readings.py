"""Signed readings: batch ingestion, and per meter the accepted readings and interval energy."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from api.deps import IngestQueueDep, RegistryDep, require_scopes
from api.ingest_queue import QueueClosedError, QueueFullError
from api.problems import (
    BATCH_TOO_LARGE,
    FORBIDDEN,
    INGEST_BUSY,
    NOT_FOUND,
    NOT_OWNER,
    PAYLOAD_TOO_LARGE,
    RANGE_INVALID,
    UNAUTHORIZED,
    VALIDATION_ERROR,
    ProblemError,
    problem_responses,
)
from api.routers.meters import MeterIdPath, meter_problem, visible_meter
from api.schemas.readings import (
    BatchOutcome,
    EnergyBody,
    IntervalBody,
    ItemOutcome,
    ReadingBatch,
    ReadingPage,
    StoredReadingBody,
)
from api.security import SCOPE_READINGS_READ, SCOPE_READINGS_WRITE, Principal
from ledger.meters.energy import MAX_READINGS_PAGE, meter_energy, meter_readings
from ledger.meters.ingest import BatchTooLargeError, IngestPolicy
from ledger.meters.intervals import INTERVALS, EnergyQueryError
from ledger.meters.registration import MeterError, to_epoch
from ledger.times import format_utc

router = APIRouter(
    tags=["readings"], responses=problem_responses(UNAUTHORIZED, FORBIDDEN, VALIDATION_ERROR)
)

READINGS_PATH = "/v1/readings"
INGEST_RETRY_AFTER_SECONDS = 1
"""The queue drains in milliseconds; a second is long enough to find room."""


@router.post(
    READINGS_PATH,
    summary="Submit a batch of signed readings; each item is accepted, duplicate or rejected",
    description=(
        "Every item gets its own outcome, in request order; the response is 200 whatever the "
        "outcomes. Accepted readings and their `reading/1` leaves commit together; concurrent "
        "requests share one transaction (group commit) and each is answered once it is "
        "durable; 503 `ingest-busy` with Retry-After when too many readings wait. "
        "Limits: `CARBONLEDGER_MAX_READINGS_PER_BATCH` items "
        "(default 5,000; 413 `batch-too-large` above) and "
        "`CARBONLEDGER_MAX_READINGS_REQUEST_BYTES` of body (default 8 MiB; 413 "
        "`payload-too-large`)."
    ),
    responses=problem_responses(BATCH_TOO_LARGE, PAYLOAD_TOO_LARGE, INGEST_BUSY),
)
async def submit_readings(
    registry: RegistryDep,
    queue: IngestQueueDep,
    body: ReadingBatch,
    principal: Annotated[Principal, require_scopes(SCOPE_READINGS_WRITE)],
) -> BatchOutcome:
    # Group commit (api.ingest_queue): answered once the transaction holding these items
    # is durable, sharing it with whatever other requests were waiting.
    settings = registry.settings
    policy = IngestPolicy(
        max_items=settings.max_readings_per_batch,
        future_skew_seconds=settings.reading_future_skew_seconds,
    )
    try:
        future = queue.submit(body.readings, principal.organisation_id, policy)
    except BatchTooLargeError as exc:
        raise ProblemError(BATCH_TOO_LARGE, str(exc)) from exc
    except (QueueFullError, QueueClosedError) as exc:
        raise ProblemError(
            INGEST_BUSY, str(exc), headers={"Retry-After": str(INGEST_RETRY_AFTER_SECONDS)}
        ) from exc
    result = await asyncio.wrap_future(future)
    return BatchOutcome(
        accepted=result.count("accepted"),
        duplicate=result.count("duplicate"),
        rejected=result.count("rejected"),
        results=[ItemOutcome.from_result(item) for item in result.items],
    )


def _seconds(moment: datetime | None, name: str) -> int | None:
    if moment is None:
        return None
    try:
        return to_epoch(moment)
    except MeterError as exc:
        raise ProblemError(RANGE_INVALID, f"`{name}`: {exc}") from exc


@router.get(
    "/v1/meters/{meter_id}/readings",
    tags=["meters"],
    summary="Accepted readings of a meter with from <= time < to, in seq order, paginated",
    responses=problem_responses(NOT_FOUND, NOT_OWNER, RANGE_INVALID),
)
def list_readings(
    *,
    registry: RegistryDep,
    meter_id: MeterIdPath,
    principal: Annotated[Principal, require_scopes(SCOPE_READINGS_READ)],
    from_time: Annotated[datetime | None, Query(alias="from")] = None,
    to_time: Annotated[datetime | None, Query(alias="to")] = None,
    after: Annotated[
        int | None, Query(ge=0, lt=1 << 63, description="Cursor: the last seq already seen.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_READINGS_PAGE)] = 100,
) -> ReadingPage:
    visible_meter(registry, meter_id, principal)
    page, more = meter_readings(
        registry.database,
        meter_id,
        start=_seconds(from_time, "from"),
        end=_seconds(to_time, "to"),
        after_seq=after,
        limit=limit,
    )
    return ReadingPage(
        readings=[
            StoredReadingBody(
                seq=reading.seq,
                time=format_utc(reading.time),
                log_index=reading.log_index,
                key_id=reading.key_id,
                implausible=reading.implausible,
                envelope=reading.envelope,
            )
            for reading in page
        ],
        next_after=page[-1].seq if more and page else None,
    )


@router.get(
    "/v1/meters/{meter_id}/energy",
    tags=["meters"],
    summary="Energy per UTC-aligned interval in Wh, split pro rata and rounded down",
    description=(
        "Energy between two consecutive readings is their register difference; a span that "
        "crosses interval boundaries is split in proportion to time and each part rounded "
        "down to whole Wh (remainders are dropped, never carried). `from` and `to` must lie "
        "on interval boundaries; at most 10,000 intervals per request."
    ),
    responses=problem_responses(NOT_FOUND, NOT_OWNER, RANGE_INVALID),
)
def energy(
    *,
    registry: RegistryDep,
    meter_id: MeterIdPath,
    principal: Annotated[Principal, require_scopes(SCOPE_READINGS_READ)],
    from_time: Annotated[datetime, Query(alias="from")],
    to_time: Annotated[datetime, Query(alias="to")],
    interval: Literal["15min", "hour", "day"] = "hour",
) -> EnergyBody:
    visible_meter(registry, meter_id, principal)
    start, end = _seconds(from_time, "from"), _seconds(to_time, "to")
    assert start is not None and end is not None
    try:
        intervals = meter_energy(registry.database, meter_id, start, end, INTERVALS[interval])
    except EnergyQueryError as exc:
        raise ProblemError(RANGE_INVALID, str(exc)) from exc
    except MeterError as exc:
        raise meter_problem(exc) from exc
    return EnergyBody(
        meter=meter_id,
        interval=interval,
        intervals=[
            IntervalBody(
                start=format_utc(item.start),
                end=format_utc(item.end),
                import_wh=item.import_wh,
                export_wh=item.export_wh,
                covered_seconds=item.covered_seconds,
                implausible=item.implausible,
            )
            for item in intervals
        ],
    )
