"""Demo data for the certificate journeys in the README, on the embedded defaults.

Fills a registry (default `./var-demo`, SQLite and the in-process chain) with:

- "Sunny Roofs", a 10 kW rooftop PV device in Jiangsu (east grid) with a generation meter
  whose signed quarter-hour readings follow the simulator's clear-sky curve;
- "Green Buyer", with a 3 kW consumption meter in Guangdong (south grid) on the simulator's
  household load curve;
- hourly certificates for every produced hour, all transferred to the buyer and retired for
  a Scope 2 market-based claim, anchored on the embedded chain;
- `certificate-bundle.json`: the bundle of one retired certificate.

Then it prints the commands of the verifier's and the buyer's journeys. It uses the ledger
functions directly (the HTTP API does the same through its routes; see the README).

    python scripts/demo_certificates.py [--data-dir var-demo] [--days 14]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from attestation.anchoring.anchor import anchor_now
from attestation.bundles.format import bundle_bytes
from attestation.certificates.bundle import build_certificate_bundle
from attestation.chain.client import ChainSettings, open_embedded_chain
from attestation.chain.deployment import resolve_contract
from ledger.access.clients import create_client
from ledger.certificates.devices import DeviceSpec, approve_device, open_account, register_device
from ledger.certificates.issuance import issue_certificates
from ledger.certificates.lifecycle import (
    RetirementRequest,
    retire_certificate,
    transfer_certificate,
)
from ledger.certificates.rules import RetirementPurpose
from ledger.meters.entries import EnergySource, GridRegion, MeterRole
from ledger.meters.ingest import ingest
from ledger.meters.registration import MeterSpec, register_key, register_meter
from ledger.registry import initialise_registry
from ledger.settings import LedgerSettings
from meter_signing.keys import generate_meter_key
from meter_signing.signing import MeterSigner
from meter_signing.simulator import load_power_w, solar_power_w

STEP = 900
HOUR = 3600
CHINA_UTC_OFFSET_HOURS = 8
MAX_DAYS = 92


def _readings(
    meter: str,
    start: int,
    days: int,
    power: Callable[[float, float], tuple[float, float]],
    capacity_w: float,
) -> tuple[MeterSigner, list[dict[str, object]]]:
    """A new meter key and its signed quarter-hour readings, the energy integrated from the
    curve (trapezoids)."""
    signer = MeterSigner(meter, generate_meter_key("Ed25519"))
    imported = exported = 0.0
    envelopes = []
    previous = None
    for n in range(days * 96 + 1):
        moment = start + n * STEP
        local_hour = ((moment / HOUR) + CHINA_UTC_OFFSET_HOURS) % 24
        now = power(local_hour, capacity_w)
        if previous is not None:
            imported += (previous[0] + now[0]) / 2 * STEP / HOUR
            exported += (previous[1] + now[1]) / 2 * STEP / HOUR
        previous = now
        when = datetime.fromtimestamp(moment, UTC)
        envelopes.append(signer.sign_json(n + 1, when, int(imported), int(exported)))
    return signer, envelopes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("var-demo"))
    parser.add_argument("--days", type=int, default=14)
    arguments = parser.parse_args()
    if not 1 <= arguments.days <= MAX_DAYS:
        print(f"error: --days must be 1-{MAX_DAYS}", file=sys.stderr)
        return 2
    if arguments.data_dir.exists():
        print(f"error: {arguments.data_dir} exists; choose a new --data-dir", file=sys.stderr)
        return 2

    settings = LedgerSettings(data_dir=arguments.data_dir)
    registry = initialise_registry(settings)
    log = registry.log
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = int((today - timedelta(days=arguments.days)).timestamp())
    end = int(today.timestamp())

    producer = create_client(registry.database, "Sunny Roofs", ["devices:write"])
    buyer = create_client(registry.database, "Green Buyer", ["reports:read"])
    meters = (
        (
            "pv-suzhou-1",
            producer.organisation_id,
            MeterRole.GENERATION,
            "CN-JS",
            GridRegion.EAST,
            EnergySource.SOLAR,
            10_000,
            solar_power_w,
        ),
        (
            "load-guangzhou-1",
            buyer.organisation_id,
            MeterRole.CONSUMPTION,
            "CN-GD",
            GridRegion.SOUTH,
            None,
            None,
            load_power_w,
        ),
    )
    for meter, organisation, role, province, region, source, capacity, power in meters:
        register_meter(
            log, organisation, MeterSpec(meter, role, province, region, source, capacity)
        )
        signer, envelopes = _readings(meter, start, arguments.days, power, capacity or 3_000)
        register_key(
            log,
            meter,
            signer.key.public_spki,
            organisation_id=organisation,
            valid_from=datetime.fromtimestamp(start, UTC),
        )
        for offset in range(0, len(envelopes), 5_000):
            ingest(log, envelopes[offset : offset + 5_000], organisation_id=organisation)

    register_device(
        log,
        producer.organisation_id,
        DeviceSpec(
            "suzhou-rooftop-1",
            "Rooftop PV, Suzhou",
            EnergySource.SOLAR,
            "photovoltaic",
            10_000,
            date(2025, 3, 1),
            "CN-JS",
            GridRegion.EAST,
            ("pv-suzhou-1",),
        ),
    )
    issuer = registry.issuer()
    approve_device(log, issuer, "suzhou-rooftop-1")
    trading = open_account(log, producer.organisation_id, "trading").account_id
    claims = open_account(log, buyer.organisation_id, "claims").account_id

    contract = resolve_contract(
        open_embedded_chain(settings.data_dir), ChainSettings(), settings.data_dir
    )
    anchored = anchor_now(log, contract)
    assert anchored is not None
    issued = issue_certificates(
        log,
        issuer,
        organisation_id=producer.organisation_id,
        device_id="suzhou-rooftop-1",
        account_id=trading,
        start=start,
        end=end,
        anchored_size=anchored.size,
        validity_months=settings.certificate_validity_months,
    )
    claim = RetirementRequest(
        buyer.organisation_id,
        RetirementPurpose.SCOPE2_MARKET_BASED,
        start,
        end,
        "CN-GD",
        GridRegion.SOUTH,
    )
    for certificate in issued.issued:
        transfer_certificate(
            log,
            issuer,
            organisation_id=producer.organisation_id,
            certificate_id=certificate.certificate_id,
            to_account=claims,
        )
        retire_certificate(
            log,
            issuer,
            organisation_id=buyer.organisation_id,
            certificate_id=certificate.certificate_id,
            request=claim,
        )
    anchor_now(log, contract)
    example = max(issued.issued, key=lambda item: item.volume_wh).certificate_id
    bundle_file = settings.data_dir / "certificate-bundle.json"
    bundle_file.write_bytes(bundle_bytes(build_certificate_bundle(registry, example)))
    registry.close()

    period = (
        f"--from {datetime.fromtimestamp(start, UTC):%Y-%m-%dT%H:%M:%SZ} "
        f"--to {datetime.fromtimestamp(end, UTC):%Y-%m-%dT%H:%M:%SZ}"
    )
    print(
        f"{len(issued.issued)} certificates ({issued.issued_wh:,} Wh) issued, "
        "transferred to Green Buyer and retired; log anchored on the embedded chain."
    )
    print(f"export CARBONLEDGER_DATA_DIR={settings.data_dir}")
    print(f"carbonledger verify {bundle_file} --issuer {issuer.did}")
    print(f"carbonledger report matching --organisation 'Green Buyer' {period} --out report/")
    print("carbonledger audit replay")
    return 0


if __name__ == "__main__":
    sys.exit(main())
