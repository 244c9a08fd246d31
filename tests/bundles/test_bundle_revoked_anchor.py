"""Contract v2 seen by the verifier: the reader returns the map root anchored beside the log
root, and a bundle whose anchor the admin revoked fails the `chain` check, naming the
revocation — through web3 on the embedded chain and through the stdlib reader on anvil."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from bundle_support import (
    add_readings,
    anchor,
    anchor_support,
    open_test_registry,
    register_meter_with_key,
)

from attestation.bundles.build import build_bundle
from attestation.bundles.chain_reader import AnchorReader, ChainAnchorReader, rpc_anchor_reader
from attestation.bundles.verify import verify_bundle
from attestation.chain.client import (
    NO_MAP_ROOT,
    CarbonAnchor,
    Chain,
    log_id_for_origin,
    open_embedded_chain,
    open_rpc_chain,
)


@pytest.fixture(params=["embedded", "anvil"])
def chain_and_reader(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Chain, AnchorReader]]:
    if request.param == "embedded":
        chain = open_embedded_chain(None)
        try:
            yield chain, ChainAnchorReader(chain.w3)
        finally:
            chain.close()
        return
    url = request.getfixturevalue("anvil_bundle_url")
    chain = open_rpc_chain(
        url, anchor_support.ANVIL_KEYS[0], expected_chain_id=anchor_support.ANVIL_CHAIN_ID
    )
    yield chain, rpc_anchor_reader(url)


def test_a_bundle_at_a_revoked_anchor_fails_naming_the_revocation(
    chain_and_reader: tuple[Chain, AnchorReader], tmp_path: Path
) -> None:
    chain, reader = chain_and_reader
    contract: CarbonAnchor = anchor_support.deploy_anchor(chain)
    origin = f"test.carbonledger.local/revoked-{chain.backend.value}-{tmp_path.name}"
    registry = open_test_registry(tmp_path / "log", origin)
    try:
        meter = register_meter_with_key(registry)
        add_readings(registry, meter, 2)
        first = anchor(registry, contract)
        add_readings(registry, meter, 2)
        second = anchor(registry, contract)
        bundle = build_bundle(registry.log, registry.signer, [meter.readings[-1]])
        assert bundle.anchor.size == second.size
        verifier = registry.signer.verifier

        before = verify_bundle(bundle, anchor_reader=reader, log_verifier_key=verifier)
        assert before.ok, [str(check) for check in before.failures]
        log_id = log_id_for_origin(origin)
        seen = reader.observe(contract.address, log_id, second.size, second.tx_hash)
        assert seen.map_root == NO_MAP_ROOT and not seen.revoked  # the hook's value until item 2

        admin = anchor_support.admin_of(chain)
        contract.revoke_anchors_above(log_id, first.size, admin=admin)
        after = verify_bundle(bundle, anchor_reader=reader, log_verifier_key=verifier)
        assert [check.name for check in after.failures] == ["chain"]
        (failed,) = after.failures
        assert "revoked its anchor at size" in failed.message
        assert "AnchorRevokedAt" in failed.message
        seen = reader.observe(contract.address, log_id, second.size, second.tx_hash)
        assert seen.revoked and seen.root is None and seen.map_root is None
    finally:
        registry.close()
