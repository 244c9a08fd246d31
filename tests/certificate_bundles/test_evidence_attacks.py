"""Issue 11, attacks 4 and 8, as the operator (who holds the issuer key) would try them: a
credential, validly signed, whose evidence leaves readings out, or certifies an implausible
hour. The offline verifier refuses it by a named check (continuity, plausibility), `audit
replay` by a rule; SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from certificate_bundle_support import MemoReader, issued_and_anchored
from meter_support import sign
from sqlalchemy import select

from attestation.anchoring.anchor import anchor_now
from attestation.bundles.build import build_bundle
from attestation.bundles.report import CheckStatus
from attestation.bundles.verify import verify_bundle
from attestation.chain.client import CarbonAnchor
from ledger.audit.replay import replay_log
from ledger.certificates.devices import get_device
from ledger.certificates.issuance import ISSUED_KIND, build_credential, credential_subject
from ledger.certificates.production import ReadingPoint, hourly_production
from ledger.certificates.rules import HOUR, add_months
from ledger.credentials.issuer import declared_issuers
from ledger.log.canonical import parse_entry
from ledger.log.merkle import leaf_hash
from ledger.meters.ingest import ingest
from ledger.meters.models import Meter, Reading
from ledger.meters.registration import get_meter
from ledger.registry import Registry


def _planted(registry: Registry, device_id: str, account: str, hour: int, points: list[Any]) -> int:
    """A certificate.issued/1 the operator signs itself, over the evidence it chose."""
    by_meter = {points[0].meter: points}
    production = hourly_production(by_meter, hour, hour + HOUR).hours[hour]
    issuer = registry.issuer()
    device = get_device(registry.database, device_id, None)
    evidence = [
        {
            "type": ["MeteredProduction"],
            "log": registry.log.head().origin,
            "meteredWh": production.metered_wh,
            "readings": [{"index": p.index, "leafHash": p.leaf_hash.hex()} for p in points],
        }
    ]
    built: Any = build_credential(
        issuer,
        certificate_id=f"urn:uuid:{uuid.uuid4()}",
        subject=credential_subject(device, hour, 0, production.metered_wh),
        evidence=evidence,
        issued_at=hour + 2 * HOUR,
        valid_until=add_months(hour + HOUR, 12),
    )
    credential = json.loads(built) if isinstance(built, bytes) else built
    (index,) = registry.log.append(
        [
            {
                "kind": ISSUED_KIND,
                "account": account,
                "anchoredSize": registry.log.head().size,
                "credential": credential,
            }
        ]
    )
    return index


def _points(registry: Registry, meter: str) -> list[ReadingPoint]:
    with registry.database.read() as session:
        rows = session.execute(
            select(Reading.log_index, Reading.time, Reading.export_wh)
            .where(Reading.meter_id == meter)
            .order_by(Reading.time)
        ).all()
    return [
        ReadingPoint(
            meter,
            row.log_index,
            leaf_hash(registry.log.entry(row.log_index)),
            row.time,
            row.export_wh,
            False,
        )
        for row in rows
    ]


def test_evidence_that_leaves_readings_out_fails_continuity(
    registry: Registry, certificate_contract: CarbonAnchor, certificate_reader: MemoReader
) -> None:
    issued = issued_and_anchored(registry, certificate_contract, certificate_reader, hours=14)
    scenario = issued.scenario
    points = _points(registry, scenario.meter)
    first = points[0]
    hour = first.time - first.time % HOUR + 3 * HOUR
    # Attack 4: the first reading and one twelve hours later "bound" the hour 03:00-04:00.
    later = next(p for p in points if p.time >= first.time + 12 * HOUR)
    device = get_device(registry.database, scenario.device, None)
    planted = _planted(registry, scenario.device, scenario.producer_account, hour, [first, later])
    anchor_now(registry.log, certificate_contract, poll_interval=0.01)
    issuer_index = declared_issuers(registry.log)[registry.issuer().did]
    assert device.approved_log_index is not None
    wanted = {
        issuer_index,
        device.log_index,
        device.approved_log_index,
        get_meter(registry.database, scenario.meter).log_index,
        first.index,
        later.index,
        planted,
    }
    bundle = build_bundle(registry.log, registry.signer, wanted)
    report = verify_bundle(
        bundle,
        anchor_reader=certificate_reader,
        log_verifier_key=registry.signer.verifier,
        trusted_contract=certificate_contract.address,
        trusted_chain_id=certificate_contract.chain.chain_id,
    )
    checks = {check.name: check for check in report.checks}
    assert not report.ok
    assert checks["continuity"].status is CheckStatus.FAILED, report.checks
    assert "leaves readings out" in checks["continuity"].message
    # The later reading's own link names its true predecessor.
    prev = parse_entry(registry.log.entry(later.index))["prev"]
    assert prev["index"] != first.index
    audit = replay_log(registry.log)
    assert "evidence-gap" in [v.rule for v in audit.violations if v.index == planted]


def test_a_certificate_for_an_implausible_hour_fails_plausibility(
    registry: Registry, certificate_contract: CarbonAnchor, certificate_reader: MemoReader
) -> None:
    issued = issued_and_anchored(registry, certificate_contract, certificate_reader, hours=14)
    scenario = issued.scenario
    with registry.database.read() as session:
        state = session.get(Meter, scenario.meter)
        assert state is not None and state.last_seq is not None and state.last_time is not None
        seq, at = state.last_seq, state.last_time
        imported, exported = state.last_import_wh or 0, state.last_export_wh or 0
    # A jump far beyond capacity x interval x 1.1: accepted (a signed fact) but flagged.
    jump = [
        sign(scenario.meter_key, scenario.meter, seq + 1, at + 900, imported, exported + 10**9),
        sign(scenario.meter_key, scenario.meter, seq + 2, at + 1800, imported, exported + 10**9),
    ]
    outcomes = ingest(registry.log, jump, organisation_id=scenario.producer).items
    assert [o.implausible for o in outcomes] == [True, False]
    hour = (at + 900) - (at + 900) % HOUR
    points = _points(registry, scenario.meter)
    evidence = list(
        hourly_production({scenario.meter: points}, hour, hour + HOUR).hours[hour].evidence
    )
    # Attack 8: the operator certifies the flagged hour anyway, with true evidence.
    planted = _planted(registry, scenario.device, scenario.producer_account, hour, evidence)
    anchor_now(registry.log, certificate_contract, poll_interval=0.01)
    device = get_device(registry.database, scenario.device, None)
    assert device.approved_log_index is not None
    wanted = {
        declared_issuers(registry.log)[registry.issuer().did],
        device.log_index,
        device.approved_log_index,
        get_meter(registry.database, scenario.meter).log_index,
        *(point.index for point in evidence),
        planted,
    }
    bundle = build_bundle(registry.log, registry.signer, wanted)
    report = verify_bundle(
        bundle,
        anchor_reader=certificate_reader,
        log_verifier_key=registry.signer.verifier,
        trusted_contract=certificate_contract.address,
        trusted_chain_id=certificate_contract.chain.chain_id,
    )
    checks = {check.name: check for check in report.checks}
    assert checks["plausibility"].status is CheckStatus.FAILED, report.checks
    assert "registered capacity" in checks["plausibility"].message
    audit = replay_log(registry.log)
    assert "implausible-hour" in [v.rule for v in audit.violations if v.index == planted]
