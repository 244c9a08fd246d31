"""The proof bundle of one certificate (`GET /v1/certificates/{id}/bundle`; issue 5, part 5).

A certificate bundle is an ordinary proof bundle (DESIGN §4.5, `attestation.bundles.format`) whose
entries are everything a verifier needs to check the certificate offline with
`attestation.certificates.check` (run by `carbonledger verify`):

- the `issuer.key/1` entry declaring the credential's issuer DID;
- the device's `device.registered/1` and `device.approved/1`, and each of its meters'
  `meter.registered/1` (the registered capacity the plausibility check judges by);
- the certificate's own entries and those of its ancestors (`certificate.issued/1` with
  each credential, `certificate.split/1`, and any transfers before a split), from
  `ledger.certificates.lifecycle.certificate_entry_indices`;
- the credential's evidence readings; `build_bundle` adds each reading key's
  `meter.key/1` (and revocation) entry.

All against the newest recorded anchor, which must cover the issuance. Statements appended
after that anchor (a transfer or retirement not anchored yet) are left out: they cannot be
proven against it, and they will be in the bundle built after the next anchor. A verifier
therefore learns the status "as of" the anchored size, which its summary says.
"""

from __future__ import annotations

from typing import Any

from attestation.bundles.build import (
    BundleRequestError,
    NotYetAnchoredError,
    build_bundle,
    newest_anchored_size,
)
from attestation.bundles.format import MAX_BUILD_ENTRIES, ProofBundle
from ledger.certificates.devices import get_device
from ledger.certificates.lifecycle import (
    certificate_entry_indices,
    get_certificate,
    issued_credential,
)
from ledger.certificates.rules import RecordNotFoundError
from ledger.credentials.issuer import declared_issuers
from ledger.log.store import LogError
from ledger.meters.registration import get_meter
from ledger.registry import Registry

MAX_CERTIFICATE_BUNDLE_ENTRIES = MAX_BUILD_ENTRIES
"""Requested entries of one certificate bundle (before meter keys): 512 evidence readings,
3 issuer and device entries, and the lineage's statements (each split level adds two)."""


def _evidence_indices(credential: dict[str, Any]) -> list[int]:
    return [int(item["index"]) for item in credential["evidence"][0]["readings"]]


def build_certificate_bundle(registry: Registry, certificate_id: str) -> ProofBundle:
    """The proof bundle of `certificate_id` (see the module docstring).

    Raises `RecordNotFoundError` for an unknown certificate, `NotYetAnchoredError` when no
    recorded anchor covers its issuance yet, and `BundleRequestError` when its lineage is
    too long to fit one bundle.
    """
    record = get_certificate(registry.database, certificate_id, None)
    credential = issued_credential(registry.database, certificate_id)
    issuers = declared_issuers(registry.log)
    issuer = credential["issuer"]
    if issuer not in issuers:
        raise LogError(f"credential issuer {issuer} has no issuer.key/1 entry in the log")
    device = get_device(registry.database, record.device_id, None)
    if device.approved_log_index is None:
        raise LogError(f"device {record.device_id} issued a certificate but was never approved")
    lineage = certificate_entry_indices(registry.database, certificate_id)
    evidence = _evidence_indices(credential)
    # Everything up to the issuance must be provable; later statements only if anchored.
    meters = {get_meter(registry.database, meter).log_index for meter in device.meters}
    required = {
        issuers[issuer],
        device.log_index,
        device.approved_log_index,
        *meters,
        *evidence,
    }
    required.update(index for index in lineage if index <= record.log_index)
    anchored = newest_anchored_size(registry.log)
    if anchored is None or anchored <= max(required):
        head = registry.log.head()
        raise NotYetAnchoredError(tuple(sorted(required)), anchored, head.size)
    wanted = required | {index for index in lineage if index < anchored}
    if len(wanted) > MAX_CERTIFICATE_BUNDLE_ENTRIES:
        raise BundleRequestError(
            f"certificate {certificate_id} needs {len(wanted)} entries; a bundle holds at most "
            f"{MAX_CERTIFICATE_BUNDLE_ENTRIES}"
        )
    return build_bundle(
        registry.log,
        registry.signer,
        wanted,
        anchored_size=anchored,
        max_entries=MAX_CERTIFICATE_BUNDLE_ENTRIES,
    )


__all__ = ["RecordNotFoundError", "build_certificate_bundle"]
