"""Helpers for the audit tests: planting entries past the service, and the database's view.

Planted entries are appended with `registry.log.append` — the log alone, no rows — and are
signed with the registry's REAL issuer key, so only the audit's rules (not a signature
check) can catch them. The database view reads the service's tables, which the replay must
agree with.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from certificate_support import Scenario
from sqlalchemy import select

from ledger.audit.replay import AuditReport, Violation
from ledger.certificates.devices import get_device
from ledger.certificates.issuance import (
    ISSUED_KIND,
    _load_points,
    build_credential,
    credential_subject,
    evidence_of,
)
from ledger.certificates.models import Account, Certificate, DeviceHour
from ledger.certificates.production import hourly_production
from ledger.certificates.rules import HOUR, add_months
from ledger.credentials.data_integrity import sign_statement
from ledger.registry import Registry
from ledger.times import format_utc


def plant(registry: Registry, entry: dict[str, Any]) -> int:
    """Append one entry to the log alone (no rows) and return its index."""
    (index,) = registry.log.append([entry])
    return index


def plant_statement(registry: Registry, entry: dict[str, Any]) -> int:
    """A statement signed by the registry's real issuer key, appended past the service."""
    issuer = registry.issuer()
    return plant(registry, sign_statement(entry, issuer.private_key, issuer.did))


def hour_production(registry: Registry, scenario: Scenario, hour: int) -> tuple[int, Any]:
    """(metered Wh, HourProduction) of one device-hour, as the service computes it now."""
    with registry.database.read() as session:
        points = _load_points(
            session, (scenario.meter,), hour, hour + HOUR, registry.log.head().size
        )
    production = hourly_production(points, hour, hour + HOUR).hours[hour]
    return production.metered_wh, production


def planted_credential(
    registry: Registry,
    scenario: Scenario,
    hour: int,
    serial_start: int,
    serial_end: int,
    *,
    metered_wh: int | None = None,
    leaf_hash_of_first: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """A `certificate.issued/1` entry with a credential validly signed by the real issuer."""
    issuer = registry.issuer()
    device = get_device(registry.database, scenario.device, None)
    _, production = hour_production(registry, scenario, hour)
    evidence = evidence_of(registry.log.head().origin, production)
    if metered_wh is not None:
        evidence[0]["meteredWh"] = metered_wh
    if leaf_hash_of_first is not None:
        evidence[0]["readings"][0]["leafHash"] = leaf_hash_of_first
    certificate_id = f"urn:uuid:{uuid.uuid4()}"
    built: Any = build_credential(
        issuer,
        certificate_id=certificate_id,
        subject=credential_subject(device, hour, serial_start, serial_end),
        evidence=evidence,
        issued_at=hour + 2 * HOUR,
        valid_until=add_months(hour + HOUR, 12),
    )
    # The issuer returns the credential's JCS bytes (older versions: the object).
    credential = json.loads(built) if isinstance(built, bytes) else built
    entry = {
        "kind": ISSUED_KIND,
        "account": scenario.producer_account,
        "anchoredSize": registry.log.head().size,
        "credential": credential,
    }
    return certificate_id, entry


def at_text(seconds: int) -> str:
    return format_utc(seconds)


def violations_at(report: AuditReport, index: int) -> list[Violation]:
    return [item for item in report.violations if item.index == index]


@dataclass(frozen=True)
class DatabaseView:
    status: dict[str, str]
    account: dict[str, str]
    account_organisation: dict[str, str]
    issued_by_hour: dict[tuple[str, int], int]


def database_view(registry: Registry) -> DatabaseView:
    with registry.database.read() as session:
        rows = session.execute(
            select(Certificate.id, Certificate.status, Certificate.account_id)
        ).all()
        organisations = dict(session.execute(select(Account.id, Account.organisation_id)).all())
        hours = session.execute(
            select(DeviceHour.device_id, DeviceHour.hour_start, DeviceHour.issued_wh)
        ).all()
    return DatabaseView(
        status={row.id: row.status for row in rows},
        account={row.id: row.account_id for row in rows},
        account_organisation={str(k): str(v) for k, v in organisations.items()},
        issued_by_hour={
            (row.device_id, row.hour_start): row.issued_wh for row in hours if row.issued_wh
        },
    )


def assert_agrees(report: AuditReport, registry: Registry) -> None:
    """The replay found nothing, and derived what the service's tables hold."""
    assert report.ok, [item.line() for item in report.violations]
    view = database_view(registry)
    assert {cid: state.status.value for cid, state in report.certificates.items()} == view.status
    for cid, state in report.certificates.items():
        assert state.account == view.account[cid], cid
    assert report.issued_by_hour == view.issued_by_hour


def filler_entry() -> dict[str, Any]:
    """An entry of a kind the audit knows that changes no rule's outcome (an account nobody
    uses): the audit reports an unknown kind as a violation, so fillers cannot be `note/1`."""
    return {
        "kind": "account.opened/1",
        "account": f"filler-{uuid.uuid4()}",
        "organisation": "filler",
    }
