"""Demo data for the certificate journeys in the README, on the embedded defaults.

Fills a registry (default `var/demo`, git-ignored; SQLite and the in-process chain) with:

- "Sunny Roofs", a 10 kW rooftop PV device in Jiangsu (east grid) with a generation meter
  whose signed quarter-hour readings follow the simulator's clear-sky curve;
- "Green Buyer", with a 3 kW consumption meter in Guangdong (south grid) on the simulator's
  household load curve;
- hourly certificates for every produced hour, all transferred to the buyer and retired for
  a Scope 2 market-based claim, anchored on the embedded chain;
- `certificate-bundle.json`: the bundle of one retired certificate.

The period is the last `--days` whole days in the registry's time zone (CARBONLEDGER_TIMEZONE,
default Asia/Shanghai), so the buyer's matching chart shows whole local days. Each step shows
a Rich progress bar on a terminal, and one line on stderr otherwise; the end prints the
commands of the verifier's and the buyer's journeys. It uses the ledger functions directly
(the HTTP API does the same through its routes; see the README). Run it from the repository
root with the project's virtualenv (`make demo` does):

    .venv/bin/python scripts/demo_certificates.py [--data-dir var/demo] [--days 14]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

try:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.table import Column

    from attestation.anchoring.anchor import anchor_now
    from attestation.bundles.format import bundle_bytes
    from attestation.certificates.bundle import build_certificate_bundle
    from attestation.chain.client import ChainSettings, open_embedded_chain
    from attestation.chain.deployment import resolve_contract
    from ledger.access.clients import create_client
    from ledger.certificates.devices import (
        DeviceSpec,
        approve_device,
        open_account,
        register_device,
    )
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
except ModuleNotFoundError as missing:
    # A Python without the project installed (the system one, say): say what to run.
    print(
        f"error: this demo needs carbonledger and its dependencies, which {sys.executable} "
        f"lacks ({missing}); run it with the project's virtualenv from the repository root: "
        "`.venv/bin/python scripts/demo_certificates.py` (`make install` creates .venv once)",
        file=sys.stderr,
    )
    raise SystemExit(2) from None

STEP = 900
HOUR = 3600
CHINA_UTC_OFFSET_HOURS = 8
MAX_DAYS = 92
DEFAULT_DATA_DIR = Path("var/demo")
"""Under `var/`, which git ignores, like every file the demo writes."""
STEPS = 9


class Steps:
    """Progress of the demo on stderr: Rich bars on a terminal, one line per step elsewhere."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.number = 0
        self._bars: Progress | None = None
        if console.is_terminal:
            self._bars = Progress(
                # Bounded, so that a long --data-dir never squeezes the bars out.
                TextColumn(
                    "[bold]{task.description}",
                    table_column=Column(max_width=44, no_wrap=True, overflow="ellipsis"),
                ),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            )

    def __enter__(self) -> Steps:
        if self._bars is not None:
            self._bars.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self._bars is not None:
            self._bars.stop()

    @contextmanager
    def step(self, description: str, total: int = 1) -> Iterator[Callable[[int], None]]:
        """A step of `total` units; the caller reports units done so far (absolute)."""
        self.number += 1
        label = f"[{self.number}/{STEPS}] {description}"
        bars = self._bars
        if bars is None:
            started = time.monotonic()
            print(f"{label} ...", file=sys.stderr, flush=True)
            yield lambda _done: None
            print(f"{label}: done in {time.monotonic() - started:.1f} s", file=sys.stderr)
            return
        task = bars.add_task(label, total=total)
        yield lambda done: bars.update(task, completed=done)
        bars.update(task, completed=total)


def _readings(
    meter: str,
    start: int,
    days: int,
    power: Callable[[float, float], tuple[float, float]],
    capacity_w: float,
    *,
    progress: tuple[Callable[[int], None], int],
) -> tuple[MeterSigner, list[dict[str, object]]]:
    """A new meter key and its signed quarter-hour readings, the energy integrated from the
    curve (trapezoids); the sun and the household follow China's clock, whatever zone the
    registry shows."""
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
        if n % 96 == 0:
            report, already = progress
            report(already + n)
    return signer, envelopes


def _command(name: str) -> str:
    """How to call the console script next to this Python (`.venv/bin/carbonledger`)."""
    script = Path(sys.executable).with_name(name)
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--days", type=int, default=14)
    arguments = parser.parse_args()
    if not 1 <= arguments.days <= MAX_DAYS:
        print(f"error: --days must be 1-{MAX_DAYS}", file=sys.stderr)
        return 2
    if arguments.data_dir.exists():
        print(
            f"error: {arguments.data_dir} exists; remove it or choose a new --data-dir",
            file=sys.stderr,
        )
        return 2
    settings = LedgerSettings(data_dir=arguments.data_dir)
    with Steps(Console(stderr=True)) as steps:
        demo = _fill(settings, arguments.days, steps)
    _print_next_steps(settings, demo)
    return 0


@dataclass(frozen=True)
class Demo:
    certificates: int
    issued_wh: int
    start: int
    end: int
    issuer: str
    bundle_file: Path


def _fill(settings: LedgerSettings, days: int, steps: Steps) -> Demo:
    """Create the demo registry, one step at a time."""
    with steps.step("initialising the registry"):
        registry = initialise_registry(settings)
    log = registry.log
    # Whole local days in the registry's zone (floored to a UTC hour, which issuance needs).
    today = datetime.now(settings.zone()).replace(hour=0, minute=0, second=0, microsecond=0)
    end = int(today.timestamp()) // HOUR * HOUR
    start = int((today - timedelta(days=days)).timestamp()) // HOUR * HOUR

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
    per_meter = days * 96 + 1
    signed = []
    with steps.step(f"signing {2 * per_meter:,} readings", 2 * per_meter) as done:
        for number, (meter, _, _, _, _, _, capacity, power) in enumerate(meters):
            signed.append(
                _readings(
                    meter,
                    start,
                    days,
                    power,
                    capacity or 3_000,
                    progress=(done, number * per_meter),
                )
            )
    with steps.step("ingesting the readings", 2 * per_meter) as done:
        ingested = 0
        for (meter, organisation, role, province, region, source, capacity, _), (
            signer,
            envelopes,
        ) in zip(meters, signed, strict=True):
            register_meter(
                log, organisation, MeterSpec(meter, role, province, region, source, capacity)
            )
            register_key(
                log,
                meter,
                signer.key.public_spki,
                organisation_id=organisation,
                valid_from=datetime.fromtimestamp(start, UTC),
            )
            for offset in range(0, len(envelopes), 5_000):
                batch = envelopes[offset : offset + 5_000]
                ingest(log, batch, organisation_id=organisation)
                ingested += len(batch)
                done(ingested)

    with steps.step("registering the device and accounts"):
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

    with steps.step("anchoring on the embedded chain"):
        contract = resolve_contract(
            open_embedded_chain(settings.data_dir), ChainSettings(), settings.data_dir
        )
        anchored = anchor_now(log, contract)
        assert anchored is not None
    with steps.step(f"issuing certificates ({days * 24:,} hours)"):
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
    count = len(issued.issued)
    with steps.step(f"transferring and retiring {count}", count) as done:
        for number, certificate in enumerate(issued.issued, start=1):
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
            done(number)
    with steps.step("anchoring the retirements"):
        anchor_now(log, contract)
    with steps.step("building a certificate bundle"):
        example = max(issued.issued, key=lambda item: item.volume_wh).certificate_id
        bundle_file = settings.data_dir / "certificate-bundle.json"
        bundle_file.write_bytes(bundle_bytes(build_certificate_bundle(registry, example)))
        # What the printed commands need, for scripts (the README's journey reads it).
        (settings.data_dir / "demo.json").write_text(
            json.dumps(
                {
                    "issuer": issuer.did,
                    "bundle": str(bundle_file),
                    "certificate": example,
                    "from": _utc(start),
                    "to": _utc(end),
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
    registry.close()
    return Demo(count, issued.issued_wh, start, end, issuer.did, bundle_file)


def _utc(seconds: int) -> str:
    return f"{datetime.fromtimestamp(seconds, UTC):%Y-%m-%dT%H:%M:%SZ}"


def _print_next_steps(settings: LedgerSettings, demo: Demo) -> None:
    utc = _utc
    local = datetime.fromtimestamp(demo.start, settings.zone())
    cli = _command("carbonledger")
    print(
        f"{demo.certificates} certificates ({demo.issued_wh:,} Wh) issued, transferred to Green "
        f"Buyer and retired; log anchored on the embedded chain. Period: {utc(demo.start)} to "
        f"{utc(demo.end)} (from {local:%Y-%m-%d %H:%M} {settings.timezone})."
    )
    print(f"export CARBONLEDGER_DATA_DIR={settings.data_dir}")
    print(f"{cli} verify {demo.bundle_file} --issuer {demo.issuer}")
    print(
        f"{cli} report matching --organisation 'Green Buyer' --from {utc(demo.start)} "
        f"--to {utc(demo.end)} --out {settings.data_dir / 'report'}"
    )
    print(f"{cli} audit replay")


if __name__ == "__main__":
    sys.exit(main())
