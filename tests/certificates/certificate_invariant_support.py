"""Invariant checks for the certificate tables and log, shared by the tests in this folder.

The checks read the tables and the log directly (not through the ledger's read API), so a
bug in the code that writes them cannot hide itself by also being the code that reads.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from certificate_support import Scenario, producer_scenario, solar_export_wh
from meter_support import (
    T0,
    MeterKeyPair,
    sign,
)
from sqlalchemy import select

from ledger.certificates.models import Certificate, DeviceHour
from ledger.certificates.rules import HOUR, CertificateStatus
from ledger.credentials.data_integrity import verify_credential, verify_statement
from ledger.log.models import LogEntry
from ledger.meters.ingest import ingest
from ledger.meters.intervals import Segment, split_energy
from ledger.registry import Registry

SIGNED_KINDS = frozenset(
    {
        "device.approved/1",
        "certificate.split/1",
        "certificate.transferred/1",
        "certificate.retired/1",
        "certificate.expired/1",
        "certificate.withdrawn/1",
    }
)


@dataclass(frozen=True)
class Row:
    """A certificate row as the invariants see it."""

    id: str
    device_id: str
    hour_start: int
    serial_start: int
    serial_end: int
    account_id: str
    status: str
    parent_id: str | None
    expires_at: int
    log_index: int

    @property
    def volume(self) -> int:
        return self.serial_end - self.serial_start


def certificate_rows(registry: Registry, device_id: str | None = None) -> dict[str, Row]:
    query = select(Certificate)
    if device_id is not None:
        query = query.where(Certificate.device_id == device_id)
    with registry.database.read() as session:
        return {
            row.id: Row(
                row.id,
                row.device_id,
                row.hour_start,
                row.serial_start,
                row.serial_end,
                row.account_id,
                row.status,
                row.parent_id,
                row.expires_at,
                row.log_index,
            )
            for row in session.scalars(query)
        }


def device_hours(
    registry: Registry, device_id: str | None = None
) -> dict[tuple[str, int], tuple[int, int]]:
    """(device, hour) → (metered_wh, issued_wh)."""
    query = select(DeviceHour)
    if device_id is not None:
        query = query.where(DeviceHour.device_id == device_id)
    with registry.database.read() as session:
        return {
            (row.device_id, row.hour_start): (row.metered_wh, row.issued_wh)
            for row in session.scalars(query)
        }


def log_entries(registry: Registry, start: int = 0) -> list[tuple[int, dict[str, Any]]]:
    with registry.database.read() as session:
        rows = session.execute(
            select(LogEntry.idx, LogEntry.data).where(LogEntry.idx >= start).order_by(LogEntry.idx)
        ).all()
    return [(row.idx, json.loads(row.data)) for row in rows]


def check_ranges(rows: dict[str, Row], hours: dict[tuple[str, int], tuple[int, int]]) -> None:
    """Per device-hour: issued ≤ metered; the live ranges tile [0, issued) exactly (so they are
    disjoint and conserve Wh); so do the root certificates; split parents hold nothing."""
    live: dict[tuple[str, int], list[Row]] = defaultdict(list)
    roots: dict[tuple[str, int], list[Row]] = defaultdict(list)
    children: dict[str, list[Row]] = defaultdict(list)
    for row in rows.values():
        key = (row.device_id, row.hour_start)
        assert row.volume > 0, row
        if row.status != CertificateStatus.SPLIT.value:
            live[key].append(row)
        if row.parent_id is None:
            roots[key].append(row)
        else:
            children[row.parent_id].append(row)
    assert set(live) <= set(hours), "every certificate's device-hour has a counter"
    for key, (metered, issued) in hours.items():
        assert 0 <= issued <= metered, (key, metered, issued)
        for name, group in (("live", live[key]), ("root", roots[key])):
            position = 0
            for row in sorted(group, key=lambda item: item.serial_start):
                assert row.serial_start == position, f"{name} ranges of {key} overlap or gap: {row}"
                position = row.serial_end
            assert position == issued, f"{name} ranges of {key} hold {position} Wh, issued {issued}"
    for row in rows.values():
        kids = sorted(children.get(row.id, []), key=lambda item: item.serial_start)
        if row.status == CertificateStatus.SPLIT.value:
            assert len(kids) >= 2, f"split parent {row.id} has {len(kids)} children"
            assert kids[0].serial_start == row.serial_start
            assert kids[-1].serial_end == row.serial_end
            for left, right in pairwise(kids):
                assert left.serial_end == right.serial_start
            for kid in kids:
                assert (kid.device_id, kid.hour_start, kid.expires_at) == (
                    row.device_id,
                    row.hour_start,
                    row.expires_at,
                )
        else:
            assert not kids, f"{row.id} is {row.status} but has children"


def check_log(
    registry: Registry,
    rows: dict[str, Row],
    hours: dict[tuple[str, int], tuple[int, int]],
    *,
    start: int = 0,
) -> int:
    """Every credential and statement from `start` on verifies under the declared issuer, and
    every certificate row matches its credential. Returns the log size checked up to."""
    issuer = registry.issuer().did
    entries = log_entries(registry, start)
    credentials: dict[str, tuple[int, dict[str, Any]]] = {}
    for index, entry in entries:
        kind = entry["kind"]
        if kind == "certificate.issued/1":
            credential = entry["credential"]
            verify_credential(credential, trusted_issuer=issuer)
            credentials[credential["id"]] = (index, credential)
        elif kind in SIGNED_KINDS:
            assert verify_statement(entry, trusted_issuer=issuer) == issuer
    for certificate_id, (index, credential) in credentials.items():
        if certificate_id not in rows:
            continue  # another device's certificate (callers may scope the rows)
        row = rows[certificate_id]
        subject = credential["credentialSubject"]
        assert row.log_index == index
        assert (subject["serialStart"], subject["serialEnd"]) == (row.serial_start, row.serial_end)
        assert subject["volumeWh"] == row.volume
        assert subject["device"] == row.device_id
        assert subject.get("splitFrom") == row.parent_id
        metered_then = credential["evidence"][0]["meteredWh"]
        metered_now, _ = hours[(row.device_id, row.hour_start)]
        assert row.serial_end <= metered_then <= metered_now
    return entries[-1][0] + 1 if entries else start


def check_all(registry: Registry, device_id: str | None = None) -> dict[str, Row]:
    rows = certificate_rows(registry, device_id)
    hours = device_hours(registry, device_id)
    check_ranges(rows, hours)
    check_log(registry, rows, hours)
    issued_entries = sum(
        1
        for _, entry in log_entries(registry)
        if entry["kind"] == "certificate.issued/1"
        and (device_id is None or entry["credential"]["credentialSubject"]["device"] == device_id)
    )
    assert issued_entries == len(rows), "one credential per certificate row, and no more"
    return rows


# ----------------------------------------------------------------------- readings


@dataclass
class ReadingStream:
    """A meter's signed readings on the solar curve, continued where the last batch ended."""

    registry: Registry
    organisation: str
    meter: str
    key: MeterKeyPair
    next_seq: int
    last_time: int
    times: list[int]
    indices: list[int]
    """Each reading's log index (-1: ingested before the stream was handed out)."""

    def times_below(self, size: int) -> list[int]:
        """Times of the readings an issuance with anchored size `size` may count."""
        return [time for time, index in zip(self.times, self.indices, strict=True) if index < size]

    def add(self, count: int, step: int) -> int:
        """Ingest `count` more readings `step` seconds apart; returns the log size after."""
        envelopes = []
        for _ in range(count):
            self.last_time += step
            self.times.append(self.last_time)
            envelopes.append(
                sign(
                    self.key,
                    self.meter,
                    self.next_seq,
                    self.last_time,
                    0,
                    export_at(self.last_time),
                )
            )
            self.next_seq += 1
        result = ingest(self.registry.log, envelopes, organisation_id=self.organisation)
        assert all(item.status == "accepted" for item in result.items), result.items[:3]
        self.indices.extend(item.index for item in result.items)  # type: ignore[misc]
        return self.registry.log.head().size


def keyed_scenario(
    registry: Registry, *, hours: int = 24, step: int = 900, tag: str = "1"
) -> tuple[Scenario, ReadingStream]:
    """`certificate_support.producer_scenario`, plus the meter key, so readings can go on."""
    scenario = producer_scenario(
        registry, hours=hours, step=step, device=f"solar-{tag}", meter=f"gen-{tag}"
    )
    producer, meter, key = scenario.producer, scenario.meter, scenario.meter_key
    count = hours * HOUR // step + 1
    stream = ReadingStream(
        registry,
        producer,
        meter,
        key,
        next_seq=count + 1,
        last_time=T0 + (count - 1) * step,
        times=[T0 + n * step for n in range(count)],
        indices=[-1] * count,
    )
    return scenario, stream


def export_at(time: int) -> int:
    return solar_export_wh(time - T0)


def expected_production(times: Sequence[int], start: int, end: int) -> dict[int, int]:
    """Hourly production of readings at `times` on the solar curve, by `split_energy`."""
    segments = [Segment(a, b, 0, export_at(b) - export_at(a), False) for a, b in pairwise(times)]
    return {
        interval.start: interval.export_wh
        for interval in split_energy(segments, start, end, HOUR)
        if interval.export_wh
    }


def run_together(workers: Iterable[Callable[[], Any]]) -> list[Any]:
    """Run each callable in its own thread, released together; returns results or exceptions."""
    jobs = list(workers)
    barrier = threading.Barrier(len(jobs))
    results: list[Any] = [None] * len(jobs)

    def run(position: int, job: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[position] = job()
        except BaseException as exc:  # the caller classifies every outcome
            results[position] = exc

    threads = [
        threading.Thread(target=run, args=(position, job), daemon=True)
        for position, job in enumerate(jobs)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive(), "a worker hung"
    return results
