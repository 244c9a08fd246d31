"""Reading a meter's accepted readings back, and its energy per clock interval.

The interval-energy rule itself is pure and lives in `ledger.meters.intervals`; this module
reads the readings it applies to.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from ledger.log.canonical import parse_entry
from ledger.log.models import LogEntry
from ledger.meters.entries import OCMF_READING_KINDS
from ledger.meters.intervals import IntervalEnergy, Segment, check_range, split_energy
from ledger.meters.models import Reading
from ledger.storage.db import Database

MAX_READINGS_PAGE = 1_000


@dataclass(frozen=True, slots=True)
class StoredReading:
    seq: int
    time: int
    log_index: int
    key_id: str
    implausible: bool
    envelope: dict[str, Any]


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
            if leaf["kind"] in OCMF_READING_KINDS
            else {"payload": leaf["payload"], "alg": leaf["alg"], "sig": leaf["sig"]}
        )
        page.append(
            StoredReading(row.seq, row.time, row.log_index, row.key_id, row.implausible, envelope)
        )
    return page, len(rows) > limit
