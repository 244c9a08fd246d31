"""The interval-energy rule (pure): a meter's energy per clock interval from its readings.

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

Pure so that the offline verifier and the audit replay apply the very rule the registry
applies, without its storage layer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

INTERVALS: dict[str, int] = {"15min": 900, "hour": 3600, "day": 86400}
MAX_INTERVALS = 10_000
"""Per energy request: e.g. 104 days in 15-minute intervals, 27 years in days."""


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
