"""Helpers for certificate tests: a producer with an approved solar device and signed
readings in the log, a buyer organisation, and their accounts.

Everything goes through the real ledger functions (meter registry, ingestion, device
registration and approval, accounts); only the anchored size is chosen by the test,
because anchoring is the subject of other tests (`anchored_size=None` means "all of it").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime

from meter_support import (
    EPOCH,
    T0,
    MeterKeyPair,
    add_meter,
    generation_spec,
    new_key,
    new_organisation,
    sign,
)

from ledger.certificates.devices import DeviceSpec, approve_device, open_account, register_device
from ledger.certificates.issuance import IssuanceResult, issue_certificates
from ledger.certificates.rules import HOUR
from ledger.meters.entries import EnergySource, GridRegion
from ledger.meters.ingest import ingest
from ledger.meters.registration import register_key
from ledger.registry import Registry

CAPACITY_W = 10_000


def solar_export_wh(seconds_since_t0: int) -> int:
    """Cumulative export of a 10 kW plant on a daily bell curve (6:00-18:00 UTC), in Wh."""
    total = 0.0
    day, within = divmod(seconds_since_t0, 86_400)
    full_day = CAPACITY_W * 12 * 2 / math.pi
    total += day * full_day
    hours = min(max(within / 3600 - 6, 0), 12)
    total += CAPACITY_W * 12 / math.pi * (1 - math.cos(math.pi * hours / 12))
    return int(total)


@dataclass(frozen=True)
class Scenario:
    producer: str
    buyer: str
    device: str
    meter: str
    producer_account: str
    buyer_account: str
    meter_key: MeterKeyPair
    """The generation meter's key, so a test can go on adding readings."""


def producer_scenario(
    registry: Registry,
    *,
    hours: int = 24,
    step: int = 900,
    device: str = "solar-1",
    meter: str = "gen-1",
    start: int = T0,
) -> Scenario:
    producer = new_organisation(registry)
    buyer = new_organisation(registry)
    add_meter(registry, producer, generation_spec(meter, capacity_w=CAPACITY_W))
    key = new_key()
    register_key(
        registry.log,
        meter,
        key.spki,
        organisation_id=producer,
        valid_from=min(EPOCH, datetime.fromtimestamp(start, UTC)),
    )
    add_readings(registry, producer, key_pair=key, meter=meter, start=start, hours=hours, step=step)
    register_device(
        registry.log,
        producer,
        DeviceSpec(
            device_id=device,
            name="Rooftop solar, Suzhou",
            energy_source=EnergySource.SOLAR,
            technology="photovoltaic",
            capacity_w=CAPACITY_W,
            commissioning_date=date(2025, 3, 1),
            province="CN-JS",
            grid_region=GridRegion.EAST,
            meters=(meter,),
        ),
    )
    approve_device(registry.log, registry.issuer(), device)
    producer_account = open_account(registry.log, producer, "trading").account_id
    buyer_account = open_account(registry.log, buyer, "claims").account_id
    return Scenario(producer, buyer, device, meter, producer_account, buyer_account, key)


def add_readings(
    registry: Registry,
    organisation: str,
    *,
    key_pair: object,
    meter: str,
    start: int,
    hours: int,
    step: int,
    first_seq: int = 1,
) -> None:
    count = hours * HOUR // step + 1
    envelopes = [
        sign(key_pair, meter, first_seq + n, start + n * step, 0, solar_export_wh(n * step))  # type: ignore[arg-type]
        for n in range(count)
    ]
    for offset in range(0, len(envelopes), 5000):
        result = ingest(
            registry.log, envelopes[offset : offset + 5000], organisation_id=organisation
        )
        assert all(item.status == "accepted" for item in result.items), result.items[:3]


def issue_all(
    registry: Registry,
    scenario: Scenario,
    *,
    start: int = T0,
    hours: int = 24,
    anchored_size: int | None = None,
) -> IssuanceResult:
    return issue_certificates(
        registry.log,
        registry.issuer(),
        organisation_id=scenario.producer,
        device_id=scenario.device,
        account_id=scenario.producer_account,
        start=start,
        end=start + hours * HOUR,
        anchored_size=registry.log.head().size if anchored_size is None else anchored_size,
        validity_months=registry.settings.certificate_validity_months,
    )
