"""Fixtures for the certificate-bundle tests: one embedded chain and anchor contract for the
session (registries differ by log origin, so they share it), and an anchor reader for it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from certificate_bundle_support import MemoReader

from attestation.bundles.chain_reader import ChainAnchorReader
from attestation.chain.client import CarbonAnchor, Chain, open_embedded_chain
from attestation.chain.deployment import embedded_admin


@pytest.fixture(scope="session")
def certificate_chain() -> Iterator[Chain]:
    chain = open_embedded_chain(None)
    yield chain
    chain.close()


@pytest.fixture(scope="session")
def certificate_contract(certificate_chain: Chain) -> CarbonAnchor:
    contract, _ = CarbonAnchor.deploy(
        certificate_chain, admin=embedded_admin(certificate_chain).address
    )
    return contract


@pytest.fixture(scope="session")
def certificate_reader(certificate_contract: CarbonAnchor) -> MemoReader:
    return MemoReader(ChainAnchorReader(certificate_contract.chain.w3))
