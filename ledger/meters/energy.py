"""Reading a meter's accepted readings back, and its energy per clock interval.

Energy rule (DESIGN §4.3; README "Interval energy"):

- Two consecutive accepted readings at times a < b define a segment (a, b] whose energy is
  the difference of their cumulative registers (import and export separately).
- Intervals are aligned to UTC: 15 minutes, hours and days start at multiples of 900,
  3,600 and 86,400 seconds since the Unix epoch; interval k covers (start_k, start_k + len].
- A segment that lies within one interval counts there in full. A segment that spans
  several intervals is split pro rata by time: an interval overlapping it for o of its
  L = b - a seconds gets floor(delta x o / L) Wh.
- Rounding remainders are dropped, never carried to a neighbour: no interval ever shows
  more than its pro-rata share, so energy is never over-stated. Per segment the loss is
  below one Wh per interval it touches beyond the first (at most n - 1 Wh over n
  intervals), and the sum over all intervals never exceeds the register difference.
- Energy before a meter's first reading is unknown and counts nowhere; `coveredSeconds`
  says how much of an interval lies inside some segment, so a partly covered interval is
  recognisable. `implausible` marks intervals that hold energy of a segment flagged
  implausible at ingestion (those never count for issuance).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from ledger.log.canonical import parse_entry
from ledger.log.models import LogEntry
from ledger.meters.entries import OCMF_READING_KIND
from ledger.meters.models import Reading
from ledger.storage.db import Database

INTERVALS: dict[str, int] = {"15min": 900, "hour": 3600, "day": 86400}
MAX_INTERVALS = 10_000
"""Per energy request: e.g. 104 days in 15-minute intervals, 27 years in days."""
MAX_READINGS_PAGE = 1_000


class EnergyQueryError(ValueError):
    """The requested range cannot be answered as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class Segment:
    start: int
    end: int
    import_wh: int
    export_wh: int
    implausible: bool


@dataclass(frozen=True, slots=True)
class IntervalEnergy:
    start: int
    end: int
    import_wh: int
    export_wh: int
    covered_seconds: int
    implausible: bool


@dataclass(frozen=True, slots=True)
class StoredReading:
    seq: int
    time: int
    log_index: int
    key_id: str
    implausible: bool
    envelope: dict[str, Any]


def check_range(start: int, end: int, step: int) -> int:
    """Validate an energy request; returns the number of intervals."""
    if end <= start:
        raise EnergyQueryError("`to` must be after `from`")
    if start % step or end % step:
        raise EnergyQueryError(f"`from` and `to` must fall on {step}-second UTC boundaries")
    count = (end - start) // step
    if count > MAX_INTERVALS:
        raise EnergyQueryError(f"at most {MAX_INTERVALS} intervals per request; asked {count}")
    return count


def split_energy(
    segments: Iterable[Segment], start: int, end: int, step: int
) -> list[IntervalEnergy]:
    """Energy per interval of `step` seconds in (start, end]; the rule is in the docstring."""
    count = check_range(start, end, step)
    imports = [0] * count
    exports = [0] * count
    covered = [0] * count
    flagged = [False] * count
    for segment in segments:
        length = segment.end - segment.start
        assert length > 0, "reading times strictly increase"
        low, high = max(segment.start, start), min(segment.end, end)
        if low >= high:
            continue
        for k in range((low - start) // step, (high - 1 - start) // step + 1):
            bucket_start = start + k * step
            overlap = min(high, bucket_start + step) - max(low, bucket_start)
            assert 0 < overlap <= step
            # Rounded down: an interval never gets more than its pro-rata share.
            imports[k] += segment.import_wh * overlap // length
            exports[k] += segment.export_wh * overlap // length
            covered[k] += overlap
            flagged[k] = flagged[k] or segment.implausible
    return [
        IntervalEnergy(
            start=start + k * step,
            end=start + (k + 1) * step,
            import_wh=imports[k],
            export_wh=exports[k],
            covered_seconds=covered[k],
            implausible=flagged[k],
        )
        for k in range(count)
    ]


def _segments(rows: Iterable[Any]) -> Iterator[Segment]:
    previous = None
    for row in rows:
        if previous is not None:
            # Registers never decrease (ingestion rule), so the differences are >= 0.
            assert row.time > previous.time and row.import_wh >= previous.import_wh
            assert row.export_wh >= previous.export_wh
            yield Segment(
                previous.time,
                row.time,
                row.import_wh - previous.import_wh,
                row.export_wh - previous.export_wh,
                row.implausible,
            )
        previous = row


def meter_energy(
    database: Database, meter_id: str, start: int, end: int, step: int
) -> list[IntervalEnergy]:
    """Interval energy of one meter from its accepted readings."""
    check_range(start, end, step)
    columns = (Reading.time, Reading.import_wh, Reading.export_wh, Reading.implausible)
    of_meter = Reading.meter_id == meter_id
    with database.read() as session:
        before = session.execute(
            select(*columns)
            .where(of_meter, Reading.time <= start)
            .order_by(Reading.time.desc())
            .limit(1)
        ).all()
        inside = session.execute(
            select(*columns)
            .where(of_meter, Reading.time > start, Reading.time < end)
            .order_by(Reading.time)
        ).all()
        after = session.execute(
            select(*columns).where(of_meter, Reading.time >= end).order_by(Reading.time).limit(1)
        ).all()
    return split_energy(_segments([*before, *inside, *after]), start, end, step)


def meter_readings(
    database: Database,
    meter_id: str,
    *,
    start: int | None,
    end: int | None,
    after_seq: int | None,
    limit: int,
) -> tuple[list[StoredReading], bool]:
    """Accepted readings with start <= time < end, in seq order after `after_seq`.

    Returns the page and whether more follow. The envelope comes from the log leaf itself,
    so what is shown is exactly what was hashed.
    """
    assert 1 <= limit <= MAX_READINGS_PAGE
    query = (
        select(
            Reading.seq,
            Reading.time,
            Reading.log_index,
            Reading.key_id,
            Reading.implausible,
            LogEntry.data,
        )
        .join(LogEntry, LogEntry.idx == Reading.log_index)
        .where(Reading.meter_id == meter_id)
    )
    if start is not None:
        query = query.where(Reading.time >= start)
    if end is not None:
        query = query.where(Reading.time < end)
    if after_seq is not None:
        query = query.where(Reading.seq > after_seq)
    with database.read() as session:
        rows = session.execute(query.order_by(Reading.seq).limit(limit + 1)).all()
    page = []
    for row in rows[:limit]:
        leaf = parse_entry(row.data)
        # An OCMF reading's "envelope" is its record, verbatim (decision 31).
        envelope = (
            {"ocmf": leaf["ocmf"]}
            if leaf["kind"] == OCMF_READING_KIND
            else {"payload": leaf["payload"], "alg": leaf["alg"], "sig": leaf["sig"]}
        )
        page.append(
            StoredReading(row.seq, row.time, row.log_index, row.key_id, row.implausible, envelope)
        )
    return page, len(rows) > limit
