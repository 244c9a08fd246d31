"""`attestation.anchoring.audit`: the log's roots against a CarbonAnchor on a throw-away
embedded chain — honest anchors pass; a root the log never had, or a size beyond the log,
is a violation naming the size."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from audit_support import filler_entry

from attestation.anchoring.anchor import anchor_now
from attestation.anchoring.audit import audit_anchors
from attestation.chain.client import CarbonAnchor, log_id_for_origin
from attestation.chain.deployment import embedded_admin, ensure_log_registered
from attestation.chain.embedded import Chain, open_embedded_chain
from ledger.registry import Registry


@pytest.fixture
def contract() -> Iterator[CarbonAnchor]:
    chain: Chain = open_embedded_chain(None)
    try:
        deployed, _ = CarbonAnchor.deploy(chain, admin=embedded_admin(chain).address)
        yield deployed
    finally:
        chain.close()


def _notes(registry: Registry, count: int) -> None:
    registry.log.append([filler_entry() for _ in range(count)])


def test_honest_anchors_match(registry: Registry, contract: CarbonAnchor) -> None:
    _notes(registry, 5)
    anchor_now(registry.log, contract, poll_interval=0.01)
    _notes(registry, 3)
    anchor_now(registry.log, contract, poll_interval=0.01)
    _notes(registry, 2)  # not anchored yet: fine
    audit = audit_anchors(registry.log, contract.chain.w3, contract.address)
    assert audit.ok, audit.violations
    assert audit.anchors_checked == 2
    assert audit.latest_size == 8
    assert audit.log_size == 10


def test_a_root_the_log_never_had_is_caught(registry: Registry, contract: CarbonAnchor) -> None:
    _notes(registry, 4)
    log_id = log_id_for_origin(registry.log.head().origin)
    ensure_log_registered(contract, log_id)
    contract.anchor(log_id, 3, b"\x42" * 32, [])
    audit = audit_anchors(registry.log, contract.chain.w3, contract.address)
    assert [(v.index, v.rule) for v in audit.violations] == [(3, "anchor-root")]
    assert registry.log.root_at(3).hex() in audit.violations[0].message
    assert ("42" * 32) in audit.violations[0].message


def test_an_anchor_beyond_the_log_is_caught(registry: Registry, contract: CarbonAnchor) -> None:
    _notes(registry, 2)
    log_id = log_id_for_origin(registry.log.head().origin)
    ensure_log_registered(contract, log_id)
    contract.anchor(log_id, 7, b"\x01" * 32, [])
    audit = audit_anchors(registry.log, contract.chain.w3, contract.address)
    assert [(v.index, v.rule) for v in audit.violations] == [(7, "anchor-beyond-log")]
    assert "the log has only 2 entries" in audit.violations[0].message
