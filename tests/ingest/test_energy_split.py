"""The interval-energy rule of `ledger.meters.energy` (pure), by example and by property."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.meters.intervals import MAX_INTERVALS, EnergyQueryError, Segment, split_energy

HOUR = 3600


def test_a_segment_inside_one_interval_counts_there_in_full() -> None:
    result = split_energy([Segment(100, 3000, 7, 3, False)], 0, 2 * HOUR, HOUR)
    assert [(i.import_wh, i.export_wh, i.covered_seconds) for i in result] == [
        (7, 3, 2900),
        (0, 0, 0),
    ]


def test_a_spanning_segment_is_split_pro_rata_and_rounded_down() -> None:
    # 10 Wh over 3 hours, starting half an hour in: shares 10*1800/10800, 10*3600/10800, ...
    segment = Segment(1800, 1800 + 3 * HOUR, 10, 0, False)
    result = split_energy([segment], 0, 4 * HOUR, HOUR)
    assert [i.import_wh for i in result] == [1, 3, 3, 1]  # 1.67, 3.33, 3.33, 1.67 rounded down
    assert sum(i.import_wh for i in result) == 8  # 2 Wh of remainders are dropped, not carried


def test_boundaries_belong_to_the_interval_they_end() -> None:
    # (0, 3600] lies wholly in the first hour; nothing leaks into the second.
    result = split_energy([Segment(0, HOUR, 5, 0, True)], 0, 2 * HOUR, HOUR)
    assert [(i.import_wh, i.implausible) for i in result] == [(5, True), (0, False)]


@pytest.mark.parametrize(
    ("start", "end", "step", "message"),
    [
        (HOUR, HOUR, HOUR, "after"),
        (1, HOUR + 1, HOUR, "boundaries"),
        (0, (MAX_INTERVALS + 1) * 900, 900, "at most"),
    ],
)
def test_bad_ranges(start: int, end: int, step: int, message: str) -> None:
    with pytest.raises(EnergyQueryError, match=message):
        split_energy([], start, end, step)


@st.composite
def readings(draw: st.DrawFn) -> list[Segment]:
    count = draw(st.integers(min_value=1, max_value=20))
    time = draw(st.integers(min_value=-2 * HOUR, max_value=2 * HOUR))
    segments = []
    for _ in range(count):
        length = draw(st.integers(min_value=1, max_value=3 * HOUR))
        energy = draw(st.integers(min_value=0, max_value=10**9))
        segments.append(Segment(time, time + length, energy, energy // 3, draw(st.booleans())))
        time += length
    return segments


@settings(max_examples=300, deadline=None)
@given(segments=readings(), step=st.sampled_from([900, HOUR]), hours=st.integers(1, 30))
def test_split_never_overstates_and_loses_under_one_wh_per_extra_interval(
    segments: list[Segment], step: int, hours: int
) -> None:
    start, end = 0, hours * HOUR
    result = split_energy(segments, start, end, step)

    # Each interval is at most its exact pro-rata share, and less by under 1 Wh per segment.
    for interval in result:
        exact = Fraction(0)
        touching = 0
        for s in segments:
            overlap = min(s.end, interval.end) - max(s.start, interval.start)
            if overlap > 0:
                exact += Fraction(s.import_wh * overlap, s.end - s.start)
                touching += 1
        assert interval.import_wh <= exact < interval.import_wh + max(touching, 1)
    # The total equals the energy of the segments' parts inside the range, minus the
    # rounding loss; a segment wholly in range loses at most (intervals it touches - 1) Wh.
    total = sum(i.import_wh for i in result)
    inside = [s for s in segments if s.start >= start and s.end <= end]
    outside = [s for s in segments if s not in inside]
    if not outside:
        delta = sum(s.import_wh for s in segments)
        loss_bound = sum((s.end - 1 - start) // step - (s.start - start) // step for s in inside)
        assert delta - loss_bound <= total <= delta
    assert total <= sum(s.import_wh for s in segments)
