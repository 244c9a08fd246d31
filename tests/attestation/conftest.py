"""Fixtures for the anchoring tests: the embedded chain (always) and anvil (npm toolchain)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from anchor_support import ANVIL_CHAIN_ID, ANVIL_KEYS, anvil_process, deploy_anchor

from attestation.chain.client import CarbonAnchor, Chain, open_embedded_chain, open_rpc_chain


@pytest.fixture(scope="session")
def embedded_chain() -> Iterator[Chain]:
    """A throw-away in-process chain (no journal) shared by the read-only tests."""
    chain = open_embedded_chain(None)
    yield chain
    chain.close()


@pytest.fixture(scope="session")
def embedded_anchor(embedded_chain: Chain) -> CarbonAnchor:
    return deploy_anchor(embedded_chain)


@pytest.fixture(scope="session")
def anvil_url() -> Iterator[str]:
    with anvil_process() as url:
        yield url


@pytest.fixture(scope="session")
def anvil_chain(anvil_url: str) -> Chain:
    return open_rpc_chain(anvil_url, ANVIL_KEYS[0], expected_chain_id=ANVIL_CHAIN_ID)


@pytest.fixture(scope="session")
def anvil_outsider(anvil_url: str) -> Chain:
    """The same node seen through a funded key that holds no role on the contract."""
    return open_rpc_chain(anvil_url, ANVIL_KEYS[1], expected_chain_id=ANVIL_CHAIN_ID)


@pytest.fixture(scope="session")
def anvil_anchor(anvil_chain: Chain) -> CarbonAnchor:
    return deploy_anchor(anvil_chain)
