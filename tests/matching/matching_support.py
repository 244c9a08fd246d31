"""Helpers for the matching-report tests: consumption through the real ledger, supply by rows.

Consumption meters, their keys and signed readings go through `ledger.meters.registration` and
`ledger.meters.ingest`, exactly as in production. Retired certificates are inserted as ORM rows
(organisation, device, account, certificate, retirement): issuance and retirement have their
own tests, and the report only reads these tables. Their `log_index` values are unique
numbers far above the log, since nothing here is a log entry.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from meter_support import new_key, new_organisation, sign

from ledger.certificates.models import Account, Certificate, CertificateRetirement, Device
from ledger.meters.entries import GridRegion, MeterRole
from ledger.meters.ingest import ingest
from ledger.meters.registration import MeterSpec, register_key, register_meter
from ledger.registry import Registry

HOUR = 3600
START = int(datetime(2026, 3, 2, tzinfo=UTC).timestamp())
"""A Monday in the past of any test run; 2026 uses the 2023 factors (latest published)."""

_ROW_INDEX = itertools.count(10**12)


def organisation(registry: Registry, name: str | None = None) -> str:
    return new_organisation(registry, name)


def consumption_meter(
    registry: Registry,
    organisation_id: str,
    meter_id: str,
    region: GridRegion,
    hourly_wh: Sequence[int],
    *,
    role: MeterRole = MeterRole.CONSUMPTION,
    start: int = START,
) -> None:
    """A meter whose readings on the hour make `hourly_wh[k]` the import of hour k."""
    spec = MeterSpec(
        meter_id=meter_id,
        role=role,
        province="CN-JS",
        grid_region=region,
    )
    register_meter(registry.log, organisation_id, spec)
    key = new_key()
    register_key(
        registry.log,
        meter_id,
        key.spki,
        organisation_id=organisation_id,
        valid_from=datetime.fromtimestamp(start - HOUR, UTC),
    )
    cumulative = 0
    readings = [sign(key, meter_id, 1, start, 0)]
    for offset, wh in enumerate(hourly_wh):
        cumulative += wh
        readings.append(sign(key, meter_id, offset + 2, start + (offset + 1) * HOUR, cumulative))
    result = ingest(registry.log, readings, organisation_id=organisation_id)
    assert result.count("accepted") == len(readings), result


def retired_certificate(
    registry: Registry,
    *,
    producer: str,
    beneficiary: str,
    hour_start: int,
    wh: int,
    region: GridRegion,
    status: str = "retired",
    serial_start: int | None = None,
) -> str:
    """One certificate of a fresh device (so serial ranges never collide), retired or not."""
    index = next(_ROW_INDEX)
    device_id = f"dev-{index}"
    account_id = str(uuid.uuid4())
    certificate_id = str(uuid.uuid4())
    first = 0 if serial_start is None else serial_start
    with registry.database.write() as session:
        session.add(
            Device(
                id=device_id,
                organisation_id=producer,
                name=device_id,
                energy_source="solar",
                technology="photovoltaic",
                capacity_w=10**9,
                commissioning_date="2025-01-01",
                province="CN-JS",
                grid_region=region.value,
                status="approved",
                registered_at=hour_start - 86_400,
                log_index=next(_ROW_INDEX),
            )
        )
        session.add(
            Account(
                id=account_id,
                organisation_id=producer,
                name=f"account-{index}",
                opened_at=hour_start - 86_400,
                log_index=next(_ROW_INDEX),
            )
        )
        session.flush()
        session.add(
            Certificate(
                id=certificate_id,
                device_id=device_id,
                hour_start=hour_start,
                serial_start=first,
                serial_end=first + wh,
                account_id=account_id,
                status=status,
                parent_id=None,
                energy_source="solar",
                grid_region=region.value,
                issued_at=hour_start + 2 * HOUR,
                expires_at=hour_start + 365 * 86_400,
                log_index=next(_ROW_INDEX),
            )
        )
        session.flush()
        if status == "retired":
            session.add(
                CertificateRetirement(
                    certificate_id=certificate_id,
                    beneficiary_id=beneficiary,
                    purpose="scope2-market-based",
                    period_start=hour_start,
                    period_end=hour_start + HOUR,
                    province="CN-JS",
                    grid_region=region.value,
                    retired_at=hour_start + 3 * HOUR,
                    log_index=next(_ROW_INDEX),
                )
            )
    return certificate_id
