"""Helpers for tests/certificate_bundles (imported by module name; never collected).

Real scenarios from `certificate_support` (producer, approved solar device, signed readings,
accounts), anchored on a real embedded chain with `attestation.anchoring.anchor.anchor_now`, then
bundled by `build_certificate_bundle` and checked by `verify_bundle`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from certificate_support import Scenario, issue_all, producer_scenario

from attestation.anchoring.anchor import anchor_now
from attestation.bundles.chain_reader import AnchorReader, ChainObservation
from attestation.bundles.format import ProofBundle, bundle_bytes
from attestation.bundles.report import VerificationReport
from attestation.bundles.verify import verify_bundle
from attestation.certificates.bundle import build_certificate_bundle
from attestation.chain.client import CarbonAnchor
from ledger.certificates.issuance import IssuedCertificate
from ledger.log.canonical import canonical_json
from ledger.registry import Registry


class MemoReader:
    """Asks the chain once per distinct question (the chain does not change during a test)."""

    def __init__(self, inner: AnchorReader) -> None:
        self.inner = inner
        self._answers: dict[tuple[str, bytes, int, bytes], ChainObservation] = {}

    def observe(self, contract: str, log_id: bytes, size: int, tx: bytes) -> ChainObservation:
        question = (contract, log_id, size, tx)
        if question not in self._answers:
            self._answers[question] = self.inner.observe(contract, log_id, size, tx)
        return self._answers[question]


@dataclass
class Issued:
    """A registry with a producer scenario whose certificates are issued and anchored."""

    registry: Registry
    contract: CarbonAnchor
    reader: MemoReader
    scenario: Scenario
    certificates: tuple[IssuedCertificate, ...]

    @property
    def largest(self) -> IssuedCertificate:
        return max(self.certificates, key=lambda item: item.volume_wh)

    def anchor(self) -> None:
        record = anchor_now(self.registry.log, self.contract, poll_interval=0.01)
        assert record is not None, "there was something new to anchor"

    def bundle(self, certificate_id: str) -> ProofBundle:
        return build_certificate_bundle(self.registry, certificate_id)

    def verify(
        self, bundle: ProofBundle | bytes, *, issuer: str | None = None, now: int | None = None
    ) -> VerificationReport:
        return verify_bundle(
            bundle_bytes(bundle) if isinstance(bundle, ProofBundle) else bundle,
            anchor_reader=self.reader,
            log_verifier_key=self.registry.signer.verifier,
            trusted_contract=self.contract.address,
            trusted_chain_id=self.contract.chain.chain_id,
            # The registry's own issuer unless a test pins another one.
            trusted_issuer=self.registry.issuer().did if issuer is None else issuer,
            now=now,
        )


def issued_and_anchored(
    registry: Registry,
    contract: CarbonAnchor,
    reader: MemoReader,
    *,
    hours: int = 24,
    issue_hours: int | None = None,
) -> Issued:
    """Readings for `hours`, certificates for the first `issue_hours` (all), then an anchor."""
    scenario = producer_scenario(registry, hours=hours)
    result = issue_all(registry, scenario, hours=hours if issue_hours is None else issue_hours)
    assert result.issued, "the scenario produces certificates"
    issued = Issued(registry, contract, reader, scenario, result.issued)
    issued.anchor()
    return issued


def entry_json(bundle: ProofBundle, index: int) -> dict[str, Any]:
    entry = next(item for item in bundle.entries if item.index == index)
    value = json.loads(entry.leaf_bytes())
    assert isinstance(value, dict)
    return value


def kinds(bundle: ProofBundle) -> dict[int, str]:
    return {entry.index: json.loads(entry.leaf_bytes())["kind"] for entry in bundle.entries}


def with_leaf(bundle: ProofBundle, index: int, value: dict[str, Any]) -> bytes:
    """The bundle's wire bytes with entry `index`'s leaf replaced by JCS(value)."""
    document = bundle.to_json()
    for entry in document["entries"]:
        if entry["index"] == index:
            entry["leaf"] = base64.b64encode(canonical_json(value)).decode("ascii")
            break
    else:
        raise AssertionError(f"no entry {index}")
    return json.dumps(document).encode()


def without_entry(bundle: ProofBundle, index: int) -> bytes:
    document = bundle.to_json()
    document["entries"] = [entry for entry in document["entries"] if entry["index"] != index]
    return json.dumps(document).encode()


Path = tuple[str | int, ...]


def scalar_paths(value: Any, prefix: Path = ()) -> Iterator[Path]:
    """Every path to a scalar (string, number, boolean, null) inside a JSON value."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from scalar_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for position, item in enumerate(value):
            yield from scalar_paths(item, (*prefix, position))
    else:
        yield prefix


def changed(value: Any, path: Path) -> Any:
    """A deep copy of `value` with the scalar at `path` changed to a different value."""
    copy = json.loads(json.dumps(value))
    holder = copy
    for step in path[:-1]:
        holder = holder[step]
    old = holder[path[-1]]
    if isinstance(old, bool):
        new: Any = not old
    elif isinstance(old, int):
        new = old + 1
    elif isinstance(old, str):
        # Change the last character (keeps most formats plausible, so deeper checks run).
        new = old[:-1] + ("1" if old[-1:] != "1" else "2") if old else "x"
    else:
        new = "changed"
    holder[path[-1]] = new
    assert copy != value
    return copy
