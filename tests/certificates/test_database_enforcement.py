"""The database itself refuses what would break the certificate invariants, whatever code
writes to it: overlapping live serial ranges (exclusion constraint on PostgreSQL, triggers on
SQLite), issuance beyond metered production (CHECK), a second retirement (primary key).

The writes here bypass the ledger on purpose, straight through SQLAlchemy.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from certificate_invariant_support import certificate_rows, check_all
from certificate_support import Scenario, issue_all, producer_scenario
from meter_support import T0
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ledger.certificates.issuance import IssuedCertificate
from ledger.certificates.lifecycle import RetirementRequest, retire_certificate, split_certificate
from ledger.certificates.models import Certificate, CertificateRetirement, DeviceHour
from ledger.certificates.rules import CertificateStatus, RetirementPurpose
from ledger.meters.entries import GridRegion
from ledger.registry import Registry

UNUSED_INDEX = 10**12
"""A log index far beyond any test log: the rows below are not about the log."""
_unused_indices = itertools.count(UNUSED_INDEX)
"""Each planted row its own index, so `log_index UNIQUE` is never what refuses a row."""
OVERLAP_REFUSED = "certificate_live_ranges_disjoint|certificate serial ranges overlap"
"""The exclusion constraint's name (PostgreSQL) or the trigger's message (SQLite)."""
CHECK_REFUSED = "device_hour_issued_within_metered"
PK_REFUSED = "certificate_retirement_pkey|UNIQUE constraint failed: certificate_retirement"


@dataclass(frozen=True)
class Issued:
    scenario: Scenario
    first: IssuedCertificate
    """The largest certificate of the day."""


@pytest.fixture
def issued(registry: Registry) -> Iterator[Issued]:
    scenario = producer_scenario(registry, hours=12)
    result = issue_all(registry, scenario, hours=12)
    yield Issued(scenario, max(result.issued, key=lambda item: item.volume_wh))


def _row(issued: Issued, start: int, end: int, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": f"urn:uuid:{uuid.uuid4()}",
        "device_id": issued.scenario.device,
        "hour_start": issued.first.hour_start,
        "serial_start": start,
        "serial_end": end,
        "account_id": issued.scenario.producer_account,
        "status": CertificateStatus.ACTIVE.value,
        "parent_id": None,
        "energy_source": "solar",
        "grid_region": "east",
        "issued_at": T0,
        "expires_at": T0 + 400 * 86_400,
        "log_index": next(_unused_indices),
        "status_reason": None,
    }
    values.update(changes)
    return values


def _count(registry: Registry) -> int:
    with registry.database.read() as session:
        return session.scalar(select(func.count()).select_from(Certificate)) or 0


def _refused(registry: Registry, statement: Any, match: str = OVERLAP_REFUSED) -> None:
    """The statement fails on the named constraint and leaves the tables as they were."""
    rows_before = certificate_rows(registry)
    with pytest.raises(IntegrityError, match=match), registry.database.write() as session:
        session.execute(statement)
    assert certificate_rows(registry) == rows_before


OVERLAPS: dict[str, Callable[[int, int], tuple[int, int]]] = {
    "same": lambda start, end: (start, end),
    "inside": lambda start, end: (start + 1, end - 1),
    "straddles-end": lambda start, end: (end - 1, end + 5),
    "covers": lambda start, end: (start, end + 5),
    "last-wh": lambda start, end: (end - 1, end),
    "first-wh": lambda start, end: (start, start + 1),
}


def test_an_overlapping_live_range_is_refused(registry: Registry, issued: Issued) -> None:
    first = issued.first
    # A planted neighbour just past the range, to move into it by UPDATE below.
    _, free = OVERLAPS["straddles-end"](first.serial_start, first.serial_end)
    neighbour = _row(issued, free, free + 3)
    with registry.database.write() as session:
        session.execute(insert(Certificate).values(neighbour))
    for case, overlap in OVERLAPS.items():
        start, end = overlap(first.serial_start, first.serial_end)
        assert start < end, case
        for status in ("active", "retired", "expired", "withdrawn"):
            _refused(registry, insert(Certificate).values(_row(issued, start, end, status=status)))
        _refused(
            registry,
            update(Certificate)
            .where(Certificate.id == neighbour["id"])
            .values(serial_start=min(start, free - 1)),
        )


def test_split_rows_adjacent_ranges_and_other_hours_are_accepted(
    registry: Registry, issued: Issued
) -> None:
    first = issued.first
    end = first.serial_end
    before = _count(registry)
    with registry.database.write() as session:
        # Serials [end, end + 10) are free: touching is not overlapping (half-open ranges).
        session.execute(insert(Certificate).values(_row(issued, end, end + 10)))
        # The same serials in an hour with no certificates.
        session.execute(insert(Certificate).values(_row(issued, 0, 10, hour_start=T0 - 3600)))
        # A split row holds nothing, so it may share every serial with live rows.
        session.execute(
            insert(Certificate).values(
                _row(issued, first.serial_start, first.serial_end, status="split")
            )
        )
    assert _count(registry) == before + 3
    assert {(r.hour_start, r.serial_start) for r in certificate_rows(registry).values()} >= {
        (first.hour_start, end),
        (T0 - 3600, 0),
    }


def test_reviving_a_split_parent_is_refused(registry: Registry, issued: Issued) -> None:
    scenario, first = issued.scenario, issued.first
    children = split_certificate(
        registry.log,
        registry.issuer(),
        organisation_id=scenario.producer,
        certificate_id=first.certificate_id,
        volumes=[1, first.volume_wh - 1],
    )
    assert len(children) == 2
    _refused(
        registry,
        update(Certificate)
        .where(Certificate.id == first.certificate_id)
        .values(status=CertificateStatus.ACTIVE.value),
    )
    # A child may not grow into its sibling either.
    _refused(
        registry,
        update(Certificate)
        .where(Certificate.id == children[0].certificate_id)
        .values(serial_end=children[0].serial_end + 1),
    )
    check_all(registry)


def test_issued_beyond_metered_is_refused(registry: Registry, issued: Issued) -> None:
    device, hour = issued.scenario.device, issued.first.hour_start
    key = {"device_id": device, "hour_start": hour}
    with registry.database.read() as session:
        metered = session.get(DeviceHour, key).metered_wh  # type: ignore[union-attr]
    for statement in (
        update(DeviceHour).filter_by(**key).values(issued_wh=metered + 1),
        update(DeviceHour).filter_by(**key).values(metered_wh=metered - 1),
        update(DeviceHour).filter_by(**key).values(issued_wh=-1),
        insert(DeviceHour).values(
            device_id=device, hour_start=T0 - 3600, metered_wh=5, issued_wh=6
        ),
    ):
        with pytest.raises(IntegrityError, match=CHECK_REFUSED), registry.database.write() as db:
            db.execute(statement)
    with registry.database.read() as session:
        row = session.get(DeviceHour, key)
        assert row is not None and row.issued_wh == row.metered_wh == metered
        assert session.get(DeviceHour, {"device_id": device, "hour_start": T0 - 3600}) is None


def test_a_second_retirement_row_is_refused(registry: Registry, issued: Issued) -> None:
    scenario, first = issued.scenario, issued.first
    retire_certificate(
        registry.log,
        registry.issuer(),
        organisation_id=scenario.producer,
        certificate_id=first.certificate_id,
        request=RetirementRequest(
            beneficiary_id=scenario.buyer,
            purpose=RetirementPurpose.RE100,
            period_start=T0,
            period_end=T0 + 86_400,
            province="CN-JS",
            grid_region=GridRegion.EAST,
        ),
    )
    second = {
        "certificate_id": first.certificate_id,
        "beneficiary_id": scenario.producer,
        "purpose": RetirementPurpose.VOLUNTARY.value,
        "period_start": T0,
        "period_end": T0 + 86_400,
        "province": "CN-JS",
        "grid_region": "east",
        "retired_at": T0,
        "log_index": UNUSED_INDEX,
    }
    with pytest.raises(IntegrityError, match=PK_REFUSED), registry.database.write() as session:
        session.execute(insert(CertificateRetirement).values(second))
    with registry.database.read() as session:
        beneficiaries = session.scalars(
            select(CertificateRetirement.beneficiary_id).where(
                CertificateRetirement.certificate_id == first.certificate_id
            )
        ).all()
    assert list(beneficiaries) == [scenario.buyer]
