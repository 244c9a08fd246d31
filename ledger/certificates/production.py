"""What a device produced per clock hour, from its meters' readings (pure).

The rule issuance applies (`ledger.certificates.issuance`), and that the offline verifier
(`attestation.certificates.check`) and the audit replay apply again to the same readings;
pure, so that they need no storage layer to do so. Each meter's consecutive readings form
segments whose exported energy is split over clock hours by
`ledger.meters.intervals.split_energy`; an hour touched by a segment flagged implausible
counts for nothing; the readings bounding an hour's counted segments are its evidence.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import NamedTuple

from ledger.certificates.rules import HOUR
from ledger.meters.intervals import Segment, split_energy


class ReadingPoint(NamedTuple):
    """One accepted reading as issuance sees it (a tuple: a year of a meter is ~35,000)."""

    meter: str
    index: int  # type: ignore[assignment]  # shadows tuple.index, never used here
    leaf_hash: bytes
    time: int
    export_wh: int
    implausible: bool


@dataclass(frozen=True, slots=True)
class HourProduction:
    hour_start: int
    metered_wh: int
    evidence: tuple[ReadingPoint, ...]
    """In log order; per meter a run of consecutive readings."""


@dataclass(frozen=True, slots=True)
class ProductionScan:
    hours: dict[int, HourProduction]
    flagged_hours: frozenset[int]


def hourly_production(
    points_by_meter: Mapping[str, Sequence[ReadingPoint]], start: int, end: int
) -> ProductionScan:
    """Production per hour in (start, end] from each meter's readings in time order (pure)."""
    assert start % HOUR == 0 and end % HOUR == 0 and end > start
    totals: dict[int, int] = defaultdict(int)
    evidence: dict[int, dict[int, ReadingPoint]] = defaultdict(dict)
    flagged: set[int] = set()
    for points in points_by_meter.values():
        counted: list[Segment] = []
        for before, after in pairwise(points):
            assert after.time > before.time, "readings of a meter are in time order"
            low, high = max(before.time, start), min(after.time, end)
            if low >= high:
                continue
            hours = range(low - low % HOUR, high, HOUR)
            if after.implausible:
                flagged.update(hours)
                continue
            segment = Segment(before.time, after.time, 0, after.export_wh - before.export_wh, False)
            counted.append(segment)
            for hour in hours:
                evidence[hour][before.index] = before
                evidence[hour][after.index] = after
        if counted:
            for interval in split_energy(counted, start, end, HOUR):
                if interval.export_wh:
                    totals[interval.start] += interval.export_wh
    # One meter's points were added in log order already; several meters need a merge.
    merge = len(points_by_meter) > 1
    production = {
        hour: HourProduction(
            hour,
            wh,
            tuple(evidence[hour][index] for index in sorted(evidence[hour]))
            if merge
            else tuple(evidence[hour].values()),
        )
        for hour, wh in totals.items()
        if hour not in flagged
    }
    return ProductionScan(production, frozenset(flagged))
