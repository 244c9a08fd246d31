"""Issue 11's reading attacks, carried out as a hostile operator would: leaves written past the
service into the log, then anchored. Each is refused by a named check of the offline verifier
(`entry[i]`) and of `audit replay` (a rule slug), on SQLite and PostgreSQL.

- attack 6: a forged `reading/1` (unknown key id, a signature of 86 "A"s; or the meter's own key
  id with a signature it never made) — audit `reading-key` / `reading-signature`;
- attack 7: a `reading.ocmf/1` whose record this meter's key never signed — verifier `entry[i]`,
  audit `reading-signature`; (an unknown kind: `test_bundle_verify.test_entry_kinds_plug_in`);
- item 11: the meter's real signed reading under a second leaf spelling — verifier `entry[i]`
  (not canonical), audit `reading-bytes`;
- item 5: a `reading/2` that names another than its meter's previous reading — audit
  `reading-continuity`.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from bundle_support import (
    METER,
    MeterFixture,
    add_readings,
    anchor,
    open_test_registry,
    register_meter_with_key,
)
from meter_support import EPOCH, sign
from testdata_support import require_testdata

from attestation.bundles.build import build_bundle
from attestation.bundles.chain_reader import ChainAnchorReader
from attestation.bundles.report import CheckStatus, VerificationReport
from attestation.bundles.verify import verify_bundle
from attestation.chain.client import CarbonAnchor
from ledger.audit.replay import AuditReport, replay_log
from ledger.log.canonical import canonical_entry, parse_entry
from ledger.log.merkle import leaf_hash
from ledger.registry import Registry

T_LATE = int(EPOCH.timestamp()) + 30 * 86_400
"""A reading time after every reading the fixture ingests."""


@pytest.fixture
def honest(
    bundle_contract: CarbonAnchor, tmp_path: Path, database_url: str
) -> tuple[Registry, MeterFixture]:
    # One log per test: the contract is shared by the session, and a log id is its origin's.
    origin = f"test.carbonledger.local/attacks-{uuid.uuid4().hex[:12]}"
    registry = open_test_registry(tmp_path, origin, database_url)
    meter = register_meter_with_key(registry)
    add_readings(registry, meter, 3)
    return registry, meter


def _plant(registry: Registry, leaf: bytes) -> int:
    """Write bytes into the log past the service, as an operator with database access can."""
    with registry.log.write() as tx:
        return tx.append_canonical(leaf)


def _verify(
    registry: Registry, contract: CarbonAnchor, index: int
) -> tuple[VerificationReport, dict[str, Any]]:
    anchor(registry, contract)
    bundle = build_bundle(registry.log, registry.signer, [index])
    report = verify_bundle(
        bundle,
        anchor_reader=ChainAnchorReader(contract.chain.w3),
        log_verifier_key=registry.signer.verifier,
    )
    return report, {check.name: check for check in report.checks}


def _rules_at(report: AuditReport, index: int) -> list[str]:
    return [violation.rule for violation in report.violations if violation.index == index]


def test_an_honest_log_replays_clean(honest: tuple[Registry, MeterFixture]) -> None:
    registry, _meter = honest
    report = replay_log(registry.log)
    assert report.ok, [v.line() for v in report.violations]
    assert report.kinds["reading/2"] == 3 and report.kinds["meter.key/1"] == 1


def test_a_forged_reading_with_an_unknown_key_is_refused(
    honest: tuple[Registry, MeterFixture],
) -> None:
    registry, _ = honest
    forged = {
        "kind": "reading/1",
        "keyId": "00" * 16,
        "alg": "Ed25519",
        "sig": "A" * 86,
        "payload": {
            "meter": METER,
            "seq": 99,
            "time": "2026-07-01T00:00:00Z",
            "importWh": 10**6,
            "exportWh": 10**6,
        },
    }
    index = _plant(registry, canonical_entry(forged))
    # Attack 6 as reported: such a leaf past the service gave 0 violations.
    assert _rules_at(replay_log(registry.log), index) == ["reading-key"]


def test_a_forged_signature_under_the_meters_own_key_is_refused(
    honest: tuple[Registry, MeterFixture], bundle_contract: CarbonAnchor
) -> None:
    registry, meter = honest
    envelope = sign(meter.key, METER, 99, T_LATE, 10**6)
    envelope["payload"]["importWh"] += 1  # the meter signed one value, the leaf says another
    index = _plant(
        registry, canonical_entry({"kind": "reading/1", "keyId": meter.key.key_id, **envelope})
    )
    assert _rules_at(replay_log(registry.log), index) == ["reading-signature"]
    _report, checks = _verify(registry, bundle_contract, index)
    assert checks[f"entry[{index}]"].status is CheckStatus.FAILED
    assert "signature does not verify" in checks[f"entry[{index}]"].message


def test_an_ocmf_reading_this_meter_never_signed_is_refused(
    honest: tuple[Registry, MeterFixture], bundle_contract: CarbonAnchor
) -> None:
    registry, _ = honest
    p256 = register_meter_with_key(registry, "ocmf-meter", "ES256")
    source = require_testdata("ocmf", "ocmf_examples.json")
    examples = json.loads(source.read_text())["examples"]
    # A real, validly signed record — but by another device's key, not this meter's.
    record = next(
        item["ocmf"] for item in examples if item["valid"] and item["curve"] == "secp256r1"
    )
    forged = {
        "kind": "reading.ocmf/1",
        "keyId": p256.key.key_id,
        "payload": {
            "meter": "ocmf-meter",
            "seq": 1,
            "time": "2026-07-01T00:00:00Z",
            "importWh": 10**6,
            "exportWh": 0,
        },
        "ocmf": record,
    }
    index = _plant(registry, canonical_entry(forged))
    assert _rules_at(replay_log(registry.log), index) in (["reading-signature"], ["reading-key"])
    report, checks = _verify(registry, bundle_contract, index)
    assert not report.ok
    assert checks[f"entry[{index}]"].status is CheckStatus.FAILED


def test_a_second_spelling_of_a_signed_reading_is_refused(
    honest: tuple[Registry, MeterFixture], bundle_contract: CarbonAnchor
) -> None:
    registry, meter = honest
    envelope = sign(meter.key, METER, 99, T_LATE, 10**6)
    entry = {"kind": "reading/1", "keyId": meter.key.key_id, **envelope}
    # The same members and values, and the signature still verifies over JCS(payload); only
    # the spelling differs (an escaped "-" in the meter id): one signed reading, a second leaf
    # hash (the decoded value is the same, so a re-canonicalising reader would not notice).
    leaf = canonical_entry(entry).replace(METER.encode(), METER.replace("-", "\\u002d", 1).encode())
    assert json.loads(leaf) == json.loads(canonical_entry(entry))
    index = _plant(registry, leaf)
    assert "reading-bytes" in _rules_at(replay_log(registry.log), index)
    _report, checks = _verify(registry, bundle_contract, index)
    assert checks[f"entry[{index}]"].status is CheckStatus.FAILED
    assert "not canonical" in checks[f"entry[{index}]"].message


def test_a_reading_that_skips_its_predecessor_breaks_the_chain(
    honest: tuple[Registry, MeterFixture],
) -> None:
    registry, meter = honest
    first = meter.readings[0]
    envelope = sign(meter.key, METER, 99, T_LATE, 10**6)
    link = {"index": first, "leafHash": leaf_hash(registry.log.entry(first)).hex()}
    entry = {"kind": "reading/2", "keyId": meter.key.key_id, **envelope, "prev": link}
    index = _plant(registry, canonical_entry(entry))
    rules = _rules_at(replay_log(registry.log), index)
    assert rules == ["reading-continuity"], rules
    # The honest chain: each reading names the one before it.
    leaves = [parse_entry(registry.log.entry(i)) for i in meter.readings]
    assert leaves[0]["prev"] is None
    assert [leaf["prev"]["index"] for leaf in leaves[1:]] == meter.readings[:-1]
