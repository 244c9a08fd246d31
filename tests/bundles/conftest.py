"""Fixtures for the proof-bundle tests: a registry with a meter, a key and anchored readings
on the embedded chain (shared, read-only) and the same on anvil."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from bundle_support import (
    Anchored,
    add_readings,
    anchor,
    anchor_support,
    open_test_registry,
    register_meter_with_key,
)

from attestation.bundles.chain_reader import ChainAnchorReader, rpc_anchor_reader
from attestation.chain.client import CarbonAnchor, Chain, open_embedded_chain, open_rpc_chain
from attestation.chain.deployment import embedded_admin


def _anchored(
    path: Path, origin: str, contract: CarbonAnchor, reader: ChainAnchorReader
) -> Anchored:
    registry = open_test_registry(path, origin)
    meter = register_meter_with_key(registry)
    add_readings(registry, meter, 3)
    anchor(registry, contract)
    return Anchored(registry, contract, meter, reader)


@pytest.fixture(scope="session")
def bundle_chain() -> Iterator[Chain]:
    chain = open_embedded_chain(None)
    yield chain
    chain.close()


@pytest.fixture(scope="session")
def bundle_contract(bundle_chain: Chain) -> CarbonAnchor:
    contract, _ = CarbonAnchor.deploy(bundle_chain, admin=embedded_admin(bundle_chain).address)
    return contract


@pytest.fixture(scope="module")
def anchored(
    bundle_contract: CarbonAnchor, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Anchored]:
    """Read-only for the tests that use it: they build bundles, they never append."""
    path = tmp_path_factory.mktemp("anchored")
    origin = f"test.carbonledger.local/bundles-{path.name}"
    opened = _anchored(path, origin, bundle_contract, ChainAnchorReader(bundle_contract.chain.w3))
    yield opened
    opened.registry.close()


@pytest.fixture(scope="session")
def anvil_bundle_url() -> Iterator[str]:
    with anchor_support.anvil_process() as url:
        yield url


@pytest.fixture(scope="module")
def anvil_anchored(
    anvil_bundle_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Anchored]:
    chain = open_rpc_chain(
        anvil_bundle_url,
        anchor_support.ANVIL_KEYS[0],
        expected_chain_id=anchor_support.ANVIL_CHAIN_ID,
    )
    contract = anchor_support.deploy_anchor(chain)
    path = tmp_path_factory.mktemp("anvil-anchored")
    opened = _anchored(
        path, "test.carbonledger.local/bundles-anvil", contract, rpc_anchor_reader(anvil_bundle_url)
    )
    yield opened
    opened.registry.close()
