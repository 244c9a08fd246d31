"""Tampering with any field of a credential or statement fails verification (issue 5, tests),
and so does a bundle that leaves out what a certificate rests on or names another issuer.

The bundle is of a split child that was transferred and retired, so it holds every kind a
certificate bundle can: the issuer key, the device's registration and approval, two
credentials, a split, a transfer and a retirement. Each scalar in each of those entries is
changed in turn and the leaf re-encoded canonically (so the change is not caught merely as
bad JSON): the entry's inclusion check must fail, a signed entry's own signature check too,
and the certificate checks that rest on the entry.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from certificate_bundle_support import (
    Issued,
    MemoReader,
    changed,
    entry_json,
    issued_and_anchored,
    kinds,
    scalar_paths,
    with_leaf,
    without_entry,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from attestation.bundles.format import ProofBundle
from attestation.chain.client import CarbonAnchor
from ledger.certificates.lifecycle import (
    RetirementRequest,
    retire_certificate,
    transfer_certificate,
)
from ledger.certificates.rules import RetirementPurpose
from ledger.credentials.data_integrity import did_key, public_bytes
from ledger.meters.entries import GridRegion
from ledger.registry import Registry

CERTIFICATE_CHECKS = frozenset(
    {
        "certificate",
        "issuer",
        "device",
        "evidence",
        "continuity",
        "plausibility",
        "lineage",
        "status",
    }
)
TAMPERED_KINDS = frozenset(
    {
        "issuer.key/1",
        "device.registered/1",
        "device.approved/1",
        "certificate.issued/1",
        "certificate.split/1",
        "certificate.transferred/1",
        "certificate.retired/1",
    }
)
UNSIGNED = frozenset({"issuer.key/1", "device.registered/1"})


@dataclass(frozen=True)
class Retired:
    issued: Issued
    bundle: ProofBundle
    certificate_id: str


@pytest.fixture
def retired_child(
    registry: Registry, certificate_contract: CarbonAnchor, certificate_reader: MemoReader
) -> Retired:
    issued = issued_and_anchored(registry, certificate_contract, certificate_reader)
    target = issued.largest
    moved = transfer_certificate(
        registry.log,
        registry.issuer(),
        organisation_id=issued.scenario.producer,
        certificate_id=target.certificate_id,
        to_account=issued.scenario.buyer_account,
        volume_wh=target.volume_wh // 2,
    ).certificate
    retire_certificate(
        registry.log,
        registry.issuer(),
        organisation_id=issued.scenario.buyer,
        certificate_id=moved.certificate_id,
        request=RetirementRequest(
            issued.scenario.buyer,
            RetirementPurpose.RE100,
            1_767_225_600,
            1_798_761_600,
            "CN-SH",
            GridRegion.EAST,
        ),
    )
    issued.anchor()
    bundle = issued.bundle(moved.certificate_id)
    report = issued.verify(bundle)
    assert report.ok and report.complete, report.failures
    assert set(kinds(bundle).values()) >= TAMPERED_KINDS
    return Retired(issued, bundle, moved.certificate_id)


def test_changing_any_field_of_a_credential_or_statement_fails(retired_child: Retired) -> None:
    bundle, issued = retired_child.bundle, retired_child.issued
    tried = 0
    for index, kind in kinds(bundle).items():
        if kind not in TAMPERED_KINDS:
            continue
        original = entry_json(bundle, index)
        for path in scalar_paths(original):
            report = issued.verify(with_leaf(bundle, index, changed(original, path)))
            failed = {check.name for check in report.failures}
            where = (kind, path, sorted(failed))
            assert not report.ok, where
            assert f"inclusion[{index}]" in failed, where
            # The issued entry's account and anchored size are facts of the log entry (its
            # inclusion proves them), outside the credential's proof, like a registration.
            unsigned_member = kind == "certificate.issued/1" and path[0] != "credential"
            if kind not in UNSIGNED and path != ("kind",) and not unsigned_member:
                # Its own signature (or, for a changed format, its shape) is refused too.
                assert f"entry[{index}]" in failed, where
            assert failed & CERTIFICATE_CHECKS, where
            tried += 1
    assert tried > 100, tried  # every field of 2 credentials, 3 statements, device, issuer


LEFT_OUT = {
    "reading/2": "evidence",
    "meter.registered/1": "plausibility",
    "device.approved/1": "device",
    "device.registered/1": "device",
    "certificate.split/1": "lineage",
    "issuer.key/1": "issuer",
}
"""Kind of the entry left out of the bundle → the certificate check that must then fail."""


def test_leaving_out_what_the_certificate_rests_on_fails(retired_child: Retired) -> None:
    # One fixture for all cases: building the scenario costs far more than a verification.
    bundle = retired_child.bundle
    for left_out, failing in LEFT_OUT.items():
        index = next(i for i, kind in kinds(bundle).items() if kind == left_out)
        report = retired_child.issued.verify(without_entry(bundle, index))
        failed = {check.name: check.message for check in report.failures}
        assert failing in failed, (left_out, failed)
        assert not report.ok and report.summary == ()


def test_a_bundle_from_another_issuer_than_the_pinned_one_fails(retired_child: Retired) -> None:
    issued = retired_child.issued
    own = issued.registry.issuer().did
    assert issued.verify(retired_child.bundle, issuer=own).complete
    stranger = did_key(public_bytes(Ed25519PrivateKey.generate()))
    report = issued.verify(retired_child.bundle, issuer=stranger)
    assert [check.name for check in report.failures] == ["issuer"]
    message = report.failures[0].message
    assert own in message and f"not the pinned issuer {stranger}" in message
    assert report.summary == ()
