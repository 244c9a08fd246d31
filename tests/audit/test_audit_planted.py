"""`ledger.audit.replay.replay_log` on clean logs, and on violations planted past the service.

Each planted entry is appended to the log alone (no rows), signed with the registry's real
issuer key wherever a signature is involved, so the audit must catch it by its rules: the
right log index and rule slug, and a sentence that names what is wrong.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from audit_support import (
    assert_agrees,
    at_text,
    filler_entry,
    hour_production,
    plant,
    plant_statement,
    planted_credential,
    violations_at,
)
from certificate_support import Scenario, issue_all, producer_scenario
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from meter_support import T0
from sqlalchemy import text

from ledger.audit.replay import replay_log
from ledger.certificates.issuance import IssuanceResult
from ledger.certificates.lifecycle import (
    RetirementRequest,
    get_certificate,
    retire_certificate,
    split_certificate,
    transfer_certificate,
    withdraw_certificate,
)
from ledger.certificates.rules import HOUR, RetirementPurpose
from ledger.credentials.data_integrity import did_key, public_bytes, sign_statement
from ledger.log.canonical import canonical_entry
from ledger.meters.entries import GridRegion
from ledger.registry import Registry, initialise_registry
from ledger.settings import LedgerSettings

ISSUED_HOURS = 10
"""Hours 0-9 of the first day are issued (6:00-10:00 UTC produce); hour 10 is still free."""
FREE_HOUR = T0 + ISSUED_HOURS * HOUR


def _issue(registry: Registry) -> tuple[Scenario, IssuanceResult]:
    scenario = producer_scenario(registry)
    result = issue_all(registry, scenario, hours=ISSUED_HOURS)
    assert len(result.issued) == 4
    return scenario, result


@pytest.fixture
def sqlite_registry(tmp_path: Path) -> Iterator[Registry]:
    """The planted-violation tests read the log alone, so one backend suffices for them
    (the clean scenario, which compares with the tables, runs on both)."""
    data = tmp_path / "data"
    opened = initialise_registry(
        LedgerSettings(data_dir=data, database_url=f"sqlite:///{data / 'carbonledger.db'}")
    )
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def issued(sqlite_registry: Registry) -> tuple[Scenario, IssuanceResult]:
    return _issue(sqlite_registry)


def _request(scenario: Scenario) -> RetirementRequest:
    return RetirementRequest(
        beneficiary_id=scenario.buyer,
        purpose=RetirementPurpose.RE100,
        period_start=T0,
        period_end=T0 + 365 * 86_400,
        province="CN-JS",
        grid_region=GridRegion.EAST,
    )


def _retirement_entry(scenario: Scenario, certificate: str, account: str) -> dict[str, object]:
    return {
        "kind": "certificate.retired/1",
        "certificate": certificate,
        "account": account,
        "beneficiary": scenario.buyer,
        "purpose": "re100",
        "reportingPeriodStart": at_text(T0),
        "reportingPeriodEnd": at_text(T0 + 365 * 86_400),
        "consumptionProvince": "CN-JS",
        "consumptionGridRegion": "east",
        "at": at_text(int(time.time())),
    }


def _transfer_entry(certificate: str, scenario: Scenario, at: int) -> dict[str, object]:
    return {
        "kind": "certificate.transferred/1",
        "certificate": certificate,
        "from": scenario.producer_account,
        "to": scenario.buyer_account,
        "toOrganisation": scenario.buyer,
        "at": at_text(at),
    }


def _only(registry: Registry, index: int, rule: str, *fragments: str) -> str:
    report = replay_log(registry.log)
    assert not report.ok
    found = violations_at(report, index)
    assert [item.rule for item in found] == [rule], [item.line() for item in report.violations]
    assert report.violations_total == len(found), [item.line() for item in report.violations]
    for fragment in fragments:
        assert fragment in found[0].message, found[0].message
    return found[0].message


def test_clean_lifecycle_replays_without_violation_and_agrees_with_the_tables(
    registry: Registry,
) -> None:
    scenario, result = _issue(registry)
    issuer = registry.issuer()
    first, second, third, fourth = (item.certificate_id for item in result.issued)
    transfer_certificate(
        registry.log,
        issuer,
        organisation_id=scenario.producer,
        certificate_id=first,
        to_account=scenario.buyer_account,
        volume_wh=100,
    )
    retire_certificate(
        registry.log,
        issuer,
        organisation_id=scenario.producer,
        certificate_id=second,
        request=_request(scenario),
    )
    split_certificate(
        registry.log,
        issuer,
        organisation_id=scenario.producer,
        certificate_id=third,
        volumes=[1, result.issued[2].volume_wh - 1],
    )
    withdraw_certificate(registry.log, issuer, certificate_id=fourth, reason="meter recalibrated")
    report = replay_log(registry.log)
    assert_agrees(report, registry)
    assert report.size == registry.log.head().size
    assert report.root == registry.log.head().root
    assert report.issued_wh == result.issued_wh
    assert report.retired_wh == result.issued[1].volume_wh
    counts = report.status_counts()
    assert counts == {"active": 4, "split": 2, "retired": 1, "expired": 0, "withdrawn": 1}
    assert report.kinds["certificate.issued/1"] == 4 + 2 + 2


def test_double_retirement_is_caught(
    sqlite_registry: Registry, issued: tuple[Scenario, IssuanceResult]
) -> None:
    registry = sqlite_registry
    scenario, result = issued
    certificate = result.issued[0].certificate_id
    retire_certificate(
        registry.log,
        registry.issuer(),
        organisation_id=scenario.producer,
        certificate_id=certificate,
        request=_request(scenario),
    )
    index = plant_statement(
        registry, _retirement_entry(scenario, certificate, scenario.producer_account)
    )
    _only(registry, index, "retired-is-final", certificate, "retired")


def test_over_issuance_with_a_valid_credential_is_caught(
    sqlite_registry: Registry, issued: tuple[Scenario, IssuanceResult]
) -> None:
    registry = sqlite_registry
    scenario, _ = issued
    metered, _ = hour_production(registry, scenario, FREE_HOUR)
    assert metered > 0
    _, entry = planted_credential(
        registry, scenario, FREE_HOUR, 0, metered + 5_000, metered_wh=metered + 5_000
    )
    index = plant(registry, entry)
    report = replay_log(registry.log)
    rules = {item.rule: item.message for item in violations_at(report, index)}
    assert "over-issuance" in rules, [item.line() for item in report.violations]
    assert f"meter only {metered} Wh" in rules["over-issuance"]
    assert f"up to serial {metered + 5_000}" in rules["over-issuance"]
    # The evidence's own readings do not add up to the inflated meteredWh either.
    assert "evidence-metered" in rules


def test_overlapping_root_range_is_caught(
    sqlite_registry: Registry, issued: tuple[Scenario, IssuanceResult]
) -> None:
    registry = sqlite_registry
    scenario, result = issued
    hour = result.issued[0].hour_start
    _, entry = planted_credential(registry, scenario, hour, 0, 1_000)
    index = plant(registry, entry)
    _only(
        registry,
        index,
        "range-overlap",
        "[0, 1000)",
        f"[0, {result.issued[0].serial_end}) were issued before",
    )


def test_transfer_by_a_non_holder_is_caught(
    sqlite_registry: Registry, issued: tuple[Scenario, IssuanceResult]
) -> None:
    registry = sqlite_registry
    scenario, result = issued
    certificate = result.issued[0].certificate_id
    transfer_certificate(
        registry.log,
        registry.issuer(),
        organisation_id=scenario.producer,
        certificate_id=certificate,
        to_account=scenario.buyer_account,
    )
    # The producer's account no longer holds it; "moving it back" from there is forged.
    entry = _transfer_entry(certificate, scenario, int(time.time()))
    entry["from"], entry["to"] = scenario.producer_account, scenario.buyer_account
    index = plant_statement(registry, entry)
    _only(
        registry,
        index,
        "not-holder",
        f"held by account {scenario.buyer_account}, not {scenario.producer_account}",
    )


def test_transfer_after_valid_until_is_caught(
    sqlite_registry: Registry, issued: tuple[Scenario, IssuanceResult]
) -> None:
    registry = sqlite_registry
    scenario, result = issued
    certificate = result.issued[0].certificate_id
    valid_until = get_certificate(registry.database, certificate, None).expires_at
    index = plant_statement(registry, _transfer_entry(certificate, scenario, valid_until + 1))
    _only(registry, index, "expired", f"expired at {valid_until}")


def test_statement_with_a_bad_signature_is_caught(
    sqlite_registry: Registry, issued: tuple[Scenario, IssuanceResult]
) -> None:
    registry = sqlite_registry
    scenario, result = issued
    issuer = registry.issuer()
    certificate = result.issued[0].certificate_id
    signed = sign_statement(
        _transfer_entry(certificate, scenario, int(time.time())), issuer.private_key, issuer.did
    )
    signed["toOrganisation"] = scenario.producer  # changed after signing
    index = plant(registry, signed)
    _only(registry, index, "bad-signature", "does not verify")
    # A statement that failed its signature is not applied: the certificate did not move.
    report = replay_log(registry.log)
    assert report.certificates[certificate].account == scenario.producer_account


def test_statement_signed_by_an_undeclared_key_is_caught(
    sqlite_registry: Registry, issued: tuple[Scenario, IssuanceResult]
) -> None:
    registry = sqlite_registry
    scenario, result = issued
    rogue = Ed25519PrivateKey.generate()
    rogue_did = did_key(public_bytes(rogue))
    entry = _transfer_entry(result.issued[0].certificate_id, scenario, int(time.time()))
    index = plant(registry, sign_statement(entry, rogue, rogue_did))
    _only(registry, index, "undeclared-issuer", rogue_did)


def test_evidence_naming_a_wrong_leaf_hash_is_caught(
    sqlite_registry: Registry, issued: tuple[Scenario, IssuanceResult]
) -> None:
    registry = sqlite_registry
    scenario, _ = issued
    metered, production = hour_production(registry, scenario, FREE_HOUR)
    first = production.evidence[0]
    _, entry = planted_credential(
        registry, scenario, FREE_HOUR, 0, metered, leaf_hash_of_first="00" * 32
    )
    index = plant(registry, entry)
    _only(
        registry,
        index,
        "evidence-leaf-hash",
        f"for entry {first.index}, whose leaf hash is {first.leaf_hash.hex()}",
    )


def test_the_same_planted_credential_with_true_evidence_is_clean(
    sqlite_registry: Registry, issued: tuple[Scenario, IssuanceResult]
) -> None:
    registry = sqlite_registry
    """The control for the planted-credential tests: the helper itself plants no fault."""
    scenario, _ = issued
    metered, _ = hour_production(registry, scenario, FREE_HOUR)
    _, entry = planted_credential(registry, scenario, FREE_HOUR, 0, metered)
    plant(registry, entry)
    report = replay_log(registry.log)
    assert report.ok, [item.line() for item in report.violations]
    assert report.issued_by_hour[(scenario.device, FREE_HOUR)] == metered


def test_a_leaf_changed_in_storage_breaks_the_tree_root(
    sqlite_registry: Registry, issued: tuple[Scenario, IssuanceResult]
) -> None:
    registry = sqlite_registry
    # An entry no rule depends on, so the change shows in the tree alone.
    entry = filler_entry()
    index = plant(registry, entry)
    size = registry.log.head().size
    rewritten = canonical_entry({**entry, "organisation": "rewritten"})
    with registry.database.write() as session:
        session.execute(
            text("UPDATE log_entry SET data = :data WHERE idx = :idx"),
            {"data": rewritten, "idx": index},
        )
    _only(registry, size, "tree-root", f"root at size {size}")
