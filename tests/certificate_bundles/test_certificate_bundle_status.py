"""Certificate bundles verify with the right status in plain words (issue 5, part 5):
active, transferred, a partially transferred split child, retired, expired, withdrawn."""

from __future__ import annotations

import time

import pytest
from certificate_bundle_support import Issued, MemoReader, issued_and_anchored, kinds
from certificate_support import issue_all

from attestation.bundles.build import NotYetAnchoredError
from attestation.bundles.report import FAILED, PASSED, VerificationReport
from attestation.chain.client import CarbonAnchor
from ledger.certificates.lifecycle import (
    RetirementRequest,
    expire_due,
    retire_certificate,
    transfer_certificate,
    withdraw_certificate,
)
from ledger.certificates.rules import RecordNotFoundError, RetirementPurpose
from ledger.meters.entries import GridRegion
from ledger.registry import Registry

CERTIFICATE_CHECKS = ("certificate", "issuer", "device", "evidence", "lineage", "status")


@pytest.fixture
def issued(
    registry: Registry, certificate_contract: CarbonAnchor, certificate_reader: MemoReader
) -> Issued:
    return issued_and_anchored(registry, certificate_contract, certificate_reader)


def _message(report: VerificationReport, name: str) -> str:
    check = report.check(name)
    assert check is not None, [c.name for c in report.checks]
    return check.message


def _assert_all_pass(report: VerificationReport) -> None:
    assert report.ok and report.complete, [c for c in report.checks if c.status != PASSED]
    for name in CERTIFICATE_CHECKS:
        check = report.check(name)
        assert check is not None and check.status == PASSED, (name, check)


def test_active_certificate_bundle_verifies_in_plain_words(issued: Issued) -> None:
    target = issued.largest
    bundle = issued.bundle(target.certificate_id)
    found = set(kinds(bundle).values())
    assert {"issuer.key/1", "device.registered/1", "device.approved/1"} <= found
    assert {"certificate.issued/1", "reading/2", "meter.key/1", "meter.registered/1"} <= found
    report = issued.verify(bundle, issuer=issued.registry.issuer().did)
    _assert_all_pass(report)
    # The issued entry names the account, so the status is exact from the first statement on.
    held = f"active, held by account {issued.scenario.producer_account}"
    assert _message(report, "status").startswith(held)
    (summary,) = report.summary
    assert summary.startswith(f"certificate {target.certificate_id} proves {target.volume_wh:,} Wh")
    assert "of solar electricity from device solar-1 (CN-JS, east grid)" in summary
    assert f"as of log size {bundle.anchor.size}" in summary
    assert "signed readings of meter gen-1 show" in summary
    print(f"\n{summary}\noffline {report.offline_seconds * 1000:.2f} ms")


def test_transferred_certificate_names_its_holder(issued: Issued) -> None:
    target = issued.largest
    transfer_certificate(
        issued.registry.log,
        issued.registry.issuer(),
        organisation_id=issued.scenario.producer,
        certificate_id=target.certificate_id,
        to_account=issued.scenario.buyer_account,
    )
    issued.anchor()
    report = issued.verify(issued.bundle(target.certificate_id))
    _assert_all_pass(report)
    status = _message(report, "status")
    assert f"held by account {issued.scenario.buyer_account}" in status
    assert f"organisation {issued.scenario.buyer} (transferred once)" in status


def test_partially_transferred_child_and_its_parent(issued: Issued) -> None:
    target = issued.largest
    part = target.volume_wh // 3
    result = transfer_certificate(
        issued.registry.log,
        issued.registry.issuer(),
        organisation_id=issued.scenario.producer,
        certificate_id=target.certificate_id,
        to_account=issued.scenario.buyer_account,
        volume_wh=part,
    )
    assert result.remainder is not None
    issued.anchor()

    child = issued.verify(issued.bundle(result.certificate.certificate_id))
    _assert_all_pass(child)
    assert f"{target.certificate_id}" in _message(child, "lineage")
    assert "transferred once" in _message(child, "status")
    assert f"proves {part:,} Wh" in child.summary[0]
    assert f"/0-{part - 1}" in child.summary[0]

    rest = issued.verify(issued.bundle(result.remainder.certificate_id))
    _assert_all_pass(rest)
    assert _message(rest, "status").startswith("active, held by account")
    assert f"/{part}-{target.serial_end - 1}" in rest.summary[0]

    parent = issued.verify(issued.bundle(target.certificate_id))
    _assert_all_pass(parent)
    assert _message(parent, "status").startswith("split into 2 certificates")


def test_retired_certificate_names_beneficiary_purpose_period_and_place(issued: Issued) -> None:
    target = issued.largest
    period_start, period_end = 1_767_225_600, 1_798_761_600  # 2026-01-01, 2027-01-01
    retire_certificate(
        issued.registry.log,
        issued.registry.issuer(),
        organisation_id=issued.scenario.producer,
        certificate_id=target.certificate_id,
        request=RetirementRequest(
            issued.scenario.buyer,
            RetirementPurpose.SCOPE2_MARKET_BASED,
            period_start,
            period_end,
            "CN-GD",
            GridRegion.SOUTH,
        ),
    )
    issued.anchor()
    report = issued.verify(issued.bundle(target.certificate_id))
    _assert_all_pass(report)
    expected = (
        f"retired to {issued.scenario.buyer} for scope2-market-based, 2026-01-01 to 2027-01-01, "
        "CN-GD (south grid)"
    )
    assert _message(report, "status").startswith(expected)
    assert expected in report.summary[0]


def test_expired_is_a_status_not_a_failure(issued: Issued) -> None:
    target = issued.largest
    far = int(time.time()) + 3 * 366 * 86_400
    # Past validUntil without an expiry statement: the verifier's clock says so.
    before = issued.verify(issued.bundle(target.certificate_id), now=far)
    _assert_all_pass(before)
    assert _message(before, "status").startswith("expired: valid until")
    expired = expire_due(issued.registry.log, issued.registry.issuer(), now=far)
    assert target.certificate_id in expired
    issued.anchor()
    report = issued.verify(issued.bundle(target.certificate_id))
    _assert_all_pass(report)
    assert _message(report, "status").startswith("expired on ")


def test_withdrawn_certificate_fails_with_the_reason(issued: Issued) -> None:
    target = issued.largest
    reason = "meter gen-1 was found miscalibrated on 2026-06-03"
    withdraw_certificate(
        issued.registry.log,
        issued.registry.issuer(),
        certificate_id=target.certificate_id,
        reason=reason,
    )
    issued.anchor()
    report = issued.verify(issued.bundle(target.certificate_id))
    assert not report.ok
    assert [check.name for check in report.failures] == ["status"]
    status = report.check("status")
    assert status is not None and status.status == FAILED and reason in status.message
    assert report.summary == (
        f"certificate {target.certificate_id} is WITHDRAWN: {status.message}",
    )


def test_statements_after_the_anchor_are_left_out(issued: Issued) -> None:
    target = issued.largest
    transfer_certificate(
        issued.registry.log,
        issued.registry.issuer(),
        organisation_id=issued.scenario.producer,
        certificate_id=target.certificate_id,
        to_account=issued.scenario.buyer_account,
    )
    bundle = issued.bundle(target.certificate_id)  # the transfer is not anchored yet
    assert "certificate.transferred/1" not in kinds(bundle).values()
    report = issued.verify(bundle)
    _assert_all_pass(report)
    assert "transferred" not in _message(report, "status")
    issued.anchor()
    assert "certificate.transferred/1" in kinds(issued.bundle(target.certificate_id)).values()


def test_unknown_and_unanchored_certificates_are_refused(
    registry: Registry, certificate_contract: CarbonAnchor, certificate_reader: MemoReader
) -> None:
    issued = issued_and_anchored(
        registry, certificate_contract, certificate_reader, hours=24, issue_hours=12
    )
    with pytest.raises(RecordNotFoundError):
        issued.bundle("urn:uuid:00000000-0000-4000-8000-000000000000")
    # The afternoon is issued after the anchor: its certificates cannot be bundled yet.
    later = issue_all(registry, issued.scenario, hours=24)
    assert later.issued
    with pytest.raises(NotYetAnchoredError, match="need an anchored size of at least"):
        issued.bundle(later.issued[0].certificate_id)
    issued.anchor()
    assert issued.verify(issued.bundle(later.issued[0].certificate_id)).ok
