"""Issuance rules: what `hourly_production` may count (properties), what `issue_certificates`
reads (anchored readings of finished hours only, serials continued on re-issuance, the
device and account checks), and the pure helpers of `ledger.certificates.rules`.
"""

from __future__ import annotations

import calendar
import inspect
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

import pytest
from certificate_invariant_support import (
    check_all,
    device_hours,
    expected_production,
    export_at,
    keyed_scenario,
)
from certificate_support import issue_all, producer_scenario
from hypothesis import given, settings
from hypothesis import strategies as st
from meter_support import T0, add_meter, generation_spec, new_organisation, sign

from ledger.certificates import rules
from ledger.certificates.devices import DeviceSpec, register_device
from ledger.certificates.issuance import issue_certificates
from ledger.certificates.lifecycle import issued_credential
from ledger.certificates.production import ReadingPoint, hourly_production
from ledger.certificates.rules import (
    HOUR,
    CertificateState,
    CertificateStatus,
    NotOwnedError,
    RuleViolationError,
    StateConflictError,
    add_months,
    gec_text,
)
from ledger.meters.entries import EnergySource, GridRegion
from ledger.meters.ingest import ingest
from ledger.meters.intervals import Segment, split_energy
from ledger.registry import Registry

# ------------------------------------------------------------- hourly_production

WINDOW = T0


@st.composite
def meter_streams(draw: st.DrawFn) -> tuple[dict[str, list[ReadingPoint]], int, int]:
    """1-3 meters' readings around a window of 1-6 hours, with rare implausible segments;
    log indices follow time across meters, as ingestion appends them."""
    hours = draw(st.integers(1, 6))
    start, end = WINDOW, WINDOW + hours * HOUR
    raw: list[tuple[int, str, int, bool]] = []
    for number in range(draw(st.integers(1, 3))):
        meter = f"m{number}"
        time = start - draw(st.integers(0, 2 * HOUR))
        export = draw(st.integers(0, 10**6))
        for position in range(draw(st.integers(0, 14))):
            if position:
                time += draw(st.integers(1, 5400))
                export += draw(st.integers(0, 5000))
            implausible = position > 0 and draw(st.integers(0, 9)) == 0
            raw.append((time, meter, export, implausible))
    raw.sort()
    points: dict[str, list[ReadingPoint]] = defaultdict(list)
    for index, (time, meter, export, implausible) in enumerate(raw):
        leaf = index.to_bytes(32, "big")
        points[meter].append(ReadingPoint(meter, index, leaf, time, export, implausible))
    return dict(points), start, end


def _touched(a: int, b: int, start: int, end: int) -> set[int]:
    """Hours of [start, end) that the segment (a, b] overlaps."""
    return {hour for hour in range(start, end, HOUR) if a < hour + HOUR and b > hour}


@settings(max_examples=300, deadline=None)
@given(meter_streams())
def test_hourly_production_is_split_energy_of_plausible_segments(
    stream: tuple[dict[str, list[ReadingPoint]], int, int],
) -> None:
    points, start, end = stream
    scan = hourly_production(points, start, end)

    plausible: list[Segment] = []
    flagged: set[int] = set()
    register_difference = 0
    for readings in points.values():
        if readings:
            register_difference += readings[-1].export_wh - readings[0].export_wh
        for before, after in pairwise(readings):
            if after.implausible:
                flagged |= _touched(before.time, after.time, start, end)
            else:
                plausible.append(
                    Segment(before.time, after.time, 0, after.export_wh - before.export_wh, False)
                )
    expected = {
        interval.start: interval.export_wh
        for interval in split_energy(plausible, start, end, HOUR)
        if interval.export_wh and interval.start not in flagged
    }
    assert scan.flagged_hours == flagged
    assert {hour: production.metered_wh for hour, production in scan.hours.items()} == expected
    assert not set(scan.hours) & flagged, "an hour touched by an implausible segment is issued"
    assert sum(production.metered_wh for production in scan.hours.values()) <= register_difference

    for hour, production in scan.hours.items():
        assert production.hour_start == hour
        indices = [point.index for point in production.evidence]
        assert indices == sorted(set(indices)), "evidence is in log order, without repeats"
        for meter, readings in points.items():
            mine = [point for point in production.evidence if point.meter == meter]
            # Exactly the readings bounding this meter's segments that overlap the hour...
            wanted = {
                point.index
                for before, after in pairwise(readings)
                if hour in _touched(before.time, after.time, start, end)
                for point in (before, after)
            }
            assert {point.index for point in mine} == wanted
            # ...and they form one unbroken run of the meter's readings.
            if mine:
                first = readings.index(mine[0])
                assert readings[first : first + len(mine)] == mine


# ------------------------------------------------------------ issue_certificates


def test_readings_at_or_after_the_anchored_size_are_not_counted(registry: Registry) -> None:
    scenario, stream = keyed_scenario(registry, hours=6)
    stream.add(24, 900)  # 06:15 … 12:00
    cut = stream.times.index(T0 + 9 * HOUR + 1800)
    anchored = stream.indices[cut]  # the 09:30 reading is the first one left out
    result = issue_all(registry, scenario, hours=12, anchored_size=anchored)

    expected = expected_production(stream.times_below(anchored), T0, T0 + 12 * HOUR)
    assert max(expected) == T0 + 9 * HOUR, "09:00-09:15 counts, nothing after it"
    assert {item.hour_start: item.serial_end for item in result.issued} == expected
    for item in result.issued:
        evidence = issued_credential(registry.database, item.certificate_id)["evidence"][0]
        assert all(reading["index"] < anchored for reading in evidence["readings"])
        assert evidence["meteredWh"] == expected[item.hour_start]
    check_all(registry, scenario.device)


def test_reissuance_after_more_anchored_readings_continues_the_serials(
    registry: Registry,
) -> None:
    scenario, stream = keyed_scenario(registry, hours=6)
    stream.add(24, 900)
    partial_hour = T0 + 9 * HOUR
    anchored = stream.indices[stream.times.index(partial_hour + 1800)]
    first = issue_all(registry, scenario, hours=12, anchored_size=anchored)
    earlier = {item.hour_start: item for item in first.issued}

    second = issue_all(registry, scenario, hours=12)
    full = expected_production(stream.times, T0, T0 + 12 * HOUR)
    later = {item.hour_start: item for item in second.issued}
    # Only the hour the first anchor cut through, and the hours after it, get anything new.
    assert set(later) == {hour for hour in full if hour >= partial_hour}
    continued = later[partial_hour]
    assert continued.serial_start == earlier[partial_hour].serial_end > 0
    assert continued.serial_end == full[partial_hour]
    assert all(later[hour].serial_start == 0 for hour in later if hour > partial_hour)
    assert second.hours_without_new_production == 12 - len(later)
    hours = device_hours(registry, scenario.device)
    assert {hour: issued for (_, hour), (_, issued) in hours.items()} == full
    check_all(registry, scenario.device)

    # A third request finds nothing left to issue and writes nothing.
    size = registry.log.head().size
    assert issue_all(registry, scenario, hours=12).issued == ()
    assert registry.log.head().size == size


def test_an_hour_touched_by_an_implausible_reading_is_not_issued(registry: Registry) -> None:
    scenario, stream = keyed_scenario(registry, hours=10)
    jump = 10**6  # far beyond 10 kW for 15 minutes: ingestion keeps it, flagged implausible
    times = [T0 + 10 * HOUR + 900 * step for step in range(1, 9)]  # 10:15 … 12:00
    envelopes = [
        sign(stream.key, stream.meter, stream.next_seq + n, time, 0, export_at(time) + jump)
        for n, time in enumerate(times)
    ]
    accepted = ingest(registry.log, envelopes, organisation_id=scenario.producer).items
    assert [item.implausible for item in accepted] == [True] + [False] * (len(times) - 1)

    result = issue_all(registry, scenario, hours=12)
    issued_hours = {item.hour_start for item in result.issued}
    assert T0 + 10 * HOUR not in issued_hours
    assert {T0 + 9 * HOUR, T0 + 11 * HOUR} <= issued_hours
    assert result.hours_flagged == 1
    assert (scenario.device, T0 + 10 * HOUR) not in device_hours(registry, scenario.device)


def test_unfinished_hours_are_not_issued(registry: Registry) -> None:
    scenario = producer_scenario(registry, hours=12)
    now = T0 + 10 * HOUR + 1800
    result = issue_certificates(
        registry.log,
        registry.issuer(),
        organisation_id=scenario.producer,
        device_id=scenario.device,
        account_id=scenario.producer_account,
        start=T0,
        end=T0 + 12 * HOUR,
        anchored_size=registry.log.head().size,
        validity_months=12,
        now=now,
    )
    assert result.issued, "the finished daylight hours are issued"
    assert all(item.hour_start + HOUR <= now for item in result.issued)
    assert result.hours_not_over == 2  # 10:00-11:00 is still running; 11:00-12:00 too
    later = issue_all(registry, scenario, hours=12)
    assert {item.hour_start for item in later.issued} == {T0 + 10 * HOUR, T0 + 11 * HOUR}


def _refused_without_writing(registry: Registry, error: type[Exception], **request: str) -> None:
    size = registry.log.head().size
    with pytest.raises(error):
        issue_certificates(
            registry.log,
            registry.issuer(),
            start=T0,
            end=T0 + 12 * HOUR,
            anchored_size=size,
            validity_months=12,
            **request,  # type: ignore[arg-type]
        )
    assert registry.log.head().size == size


def test_unapproved_devices_and_foreign_accounts_are_refused(registry: Registry) -> None:
    scenario = producer_scenario(registry, hours=12)
    add_meter(registry, scenario.producer, generation_spec("gen-unapproved"))
    register_device(
        registry.log,
        scenario.producer,
        DeviceSpec(
            device_id="solar-unapproved",
            name="Not yet approved",
            energy_source=EnergySource.SOLAR,
            technology="photovoltaic",
            capacity_w=10_000,
            commissioning_date=datetime(2025, 3, 1, tzinfo=UTC).date(),
            province="CN-JS",
            grid_region=GridRegion.EAST,
            meters=("gen-unapproved",),
        ),
    )
    _refused_without_writing(
        registry,
        StateConflictError,
        organisation_id=scenario.producer,
        device_id="solar-unapproved",
        account_id=scenario.producer_account,
    )
    # The producer's device into the buyer's account.
    _refused_without_writing(
        registry,
        NotOwnedError,
        organisation_id=scenario.producer,
        device_id=scenario.device,
        account_id=scenario.buyer_account,
    )
    # The buyer asking for the producer's device.
    _refused_without_writing(
        registry,
        NotOwnedError,
        organisation_id=scenario.buyer,
        device_id=scenario.device,
        account_id=scenario.buyer_account,
    )
    # An organisation with no part in it at all.
    _refused_without_writing(
        registry,
        NotOwnedError,
        organisation_id=new_organisation(registry),
        device_id=scenario.device,
        account_id=scenario.producer_account,
    )
    assert device_hours(registry) == {}


# ----------------------------------------------------------------- certificate_rules


@pytest.mark.parametrize(
    ("wh", "text"),
    [
        (0, "0.000000"),
        (1, "0.000001"),
        (999_999, "0.999999"),
        (1_000_000, "1.000000"),
        (1_234_567, "1.234567"),
        (10**12, "1000000.000000"),
    ],
)
def test_gec_text_examples(wh: int, text: str) -> None:
    assert gec_text(wh) == text


@given(st.integers(0, 10**15))
def test_gec_text_is_exact_megawatt_hours(wh: int) -> None:
    text = gec_text(wh)
    assert re.fullmatch(r"(0|[1-9][0-9]*)\.[0-9]{6}", text)
    assert Decimal(text) * 1_000_000 == wh


def _at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp())


@pytest.mark.parametrize(
    ("start", "months", "end"),
    [
        (_at(2026, 1, 31, 10), 1, _at(2026, 2, 28, 10)),
        (_at(2024, 1, 31, 10), 1, _at(2024, 2, 29, 10)),  # leap year
        (_at(2024, 2, 29), 12, _at(2025, 2, 28)),
        (_at(2024, 2, 29), 48, _at(2028, 2, 29)),
        (_at(2026, 3, 31, 23, 59, 59), 1, _at(2026, 4, 30, 23, 59, 59)),
        (_at(2026, 12, 15, 13), 1, _at(2027, 1, 15, 13)),
        (_at(2026, 6, 1, 5), 12, _at(2027, 6, 1, 5)),
        (_at(2100, 1, 29), 1, _at(2100, 2, 28)),  # 2100 is not a leap year
        (_at(2000, 1, 30), 1, _at(2000, 2, 29)),  # 2000 is
    ],
)
def test_add_months_clamps_to_the_month_end(start: int, months: int, end: int) -> None:
    assert add_months(start, months) == end


@given(
    st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    st.integers(0, 240),
)
def test_add_months_properties(moment: datetime, months: int) -> None:
    moment = moment.replace(microsecond=0)
    result = datetime.fromtimestamp(add_months(int(moment.timestamp()), months), UTC)
    assert (result.year * 12 + result.month) - (moment.year * 12 + moment.month) == months
    assert result.time() == moment.time()
    last_day = calendar.monthrange(result.year, result.month)[1]
    assert result.day == min(moment.day, last_day)
    assert result >= moment
    assert add_months(int(moment.timestamp()), months + 1) > int(result.timestamp())
    assert result - moment <= timedelta(days=31 * months)


def _declared_slugs() -> set[str]:
    source = inspect.getsource(rules)
    raised = set(re.findall(r'RuleViolationError\(\s*"([a-z0-9-]+)"', source))
    mapped = set(re.findall(r'CertificateStatus\.[A-Z]+: "([a-z0-9-]+)"', source))
    return raised | mapped


def test_every_rule_slug_is_reachable() -> None:
    now = T0
    state = CertificateState(
        certificate="urn:uuid:c",
        device="solar-1",
        hour_start=T0 - HOUR,
        serial_start=0,
        serial_end=1000,
        account="a",
        valid_until=T0 + 86_400,
    )
    attempts: dict[str, Callable[[], object]] = {
        "retired-is-final": lambda: rules.transfer(
            replace(state, status=CertificateStatus.RETIRED),
            from_account="a",
            to_account="b",
            at=now,
        ),
        "expired": lambda: rules.retire(state, account="a", beneficiary="o", at=state.valid_until),
        "withdrawn": lambda: rules.split(
            replace(state, status=CertificateStatus.WITHDRAWN),
            children=[("x", 0, 500), ("y", 500, 1000)],
            account="a",
            at=now,
        ),
        "split-holds-nothing": lambda: rules.retire(
            replace(state, status=CertificateStatus.SPLIT), account="a", beneficiary="o", at=now
        ),
        "not-holder": lambda: rules.transfer(state, from_account="b", to_account="c", at=now),
        "same-account": lambda: rules.transfer(state, from_account="a", to_account="a", at=now),
        "split-parts": lambda: rules.split_ranges(state, [1000]),
        "split-partition": lambda: rules.split_ranges(state, [500, 499]),
        "expire-active-only": lambda: rules.expire(
            replace(state, status=CertificateStatus.RETIRED), at=state.valid_until
        ),
        "not-yet-expired": lambda: rules.expire(state, at=state.valid_until - 1),
        "withdraw": lambda: rules.withdraw(state, reason="  ", at=now),
    }
    reached: set[str] = set()
    for slug, attempt in attempts.items():
        with pytest.raises(RuleViolationError) as caught:
            attempt()
        assert caught.value.rule == slug
        reached.add(caught.value.rule)
    assert reached == _declared_slugs(), "a rule slug without a test (or a test for none)"

    # And the happy paths those refusals are measured against.
    assert rules.transfer(state, from_account="a", to_account="b", at=now).account == "b"
    parent, children = rules.split(
        state, children=[("x", 0, 1), ("y", 1, 1000)], account="a", at=now
    )
    assert parent.status is CertificateStatus.SPLIT
    assert [(child.serial_start, child.serial_end, child.parent) for child in children] == [
        (0, 1, state.certificate),
        (1, 1000, state.certificate),
    ]
    assert rules.expire(state, at=state.valid_until).status is CertificateStatus.EXPIRED
    assert (
        rules.withdraw(
            replace(state, status=CertificateStatus.RETIRED), reason="faulty CT", at=now
        ).status
        is CertificateStatus.WITHDRAWN
    )
