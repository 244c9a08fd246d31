"""Helpers for tests/attestation (imported by module name; never collected).

- `AnvilProcess`: a Foundry anvil node started on a free loopback port and stopped again;
- the well-known anvil development keys (derived from anvil's public test mnemonic; they
  hold value only on throw-away local chains);
- `expect_revert`: run a call and return the decoded custom error;
- `deploy_anchor`, `admin_of`, `register_log`: CarbonAnchor v2 with an admin separate from
  the anchorer (the embedded chain's second account, or anvil's account 2).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from testdata_support import running_in_ci

from attestation.chain.client import (
    DEFAULT_MAX_GROWTH,
    CarbonAnchor,
    Chain,
    ChainBackend,
    ContractRevert,
    SentTransaction,
)
from attestation.chain.deployment import embedded_admin
from attestation.chain.localnode import ANVIL_CHAIN_ID, LocalAnvil, free_loopback_port

# The tests import the node helpers from here, next to the binary path and the keys.
__all__ = [
    "ANVIL",
    "ANVIL_ADMIN_KEY",
    "ANVIL_CHAIN_ID",
    "ANVIL_KEYS",
    "CONTRACTS",
    "REPO",
    "admin_of",
    "anvil_process",
    "deploy_anchor",
    "expect_revert",
    "free_loopback_port",
    "missing_tool",
    "register_log",
    "running_in_ci",
]

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = REPO / "contracts"
# Overridable so the CI-policy test can point it at a missing binary.
ANVIL = Path(
    os.environ.get("CARBONLEDGER_TEST_ANVIL", CONTRACTS / "node_modules" / ".bin" / "anvil")
)
# Accounts 0 and 1 of anvil's default mnemonic ("test test … junk"): public development keys.
ANVIL_KEYS = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
)
# Account 2 of the same mnemonic: the contract admin in the anvil tests (never an anchorer).
ANVIL_ADMIN_KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"


def admin_of(chain: Chain) -> LocalAccount:
    """The admin the tests deploy with: the embedded chain's own, or anvil's account 2."""
    if chain.backend is ChainBackend.EMBEDDED:
        return embedded_admin(chain)
    return Account.from_key(ANVIL_ADMIN_KEY)


def deploy_anchor(chain: Chain) -> CarbonAnchor:
    """CarbonAnchor v2 administered by `admin_of(chain)` (the chain's account anchors)."""
    contract, _ = CarbonAnchor.deploy(chain, admin=admin_of(chain).address)
    return contract


def register_log(
    contract: CarbonAnchor,
    log_id: bytes,
    anchorer: str | None = None,
    *,
    max_growth: int = DEFAULT_MAX_GROWTH,
) -> SentTransaction:
    """Register `log_id` for `anchorer` (default: the chain's own account) as the admin."""
    return contract.register_log(
        log_id,
        anchorer or contract.chain.account.address,
        admin=admin_of(contract.chain),
        max_growth=max_growth,
    )


def missing_tool(message: str) -> None:
    if running_in_ci():
        pytest.fail(message + " (CI=true: these tests must run; `make test` runs npm ci)")
    pytest.skip(message)


@contextlib.contextmanager
def anvil_process(startup_timeout: float = 20.0) -> Iterator[str]:
    """Start anvil on a free 127.0.0.1 port; yield its URL; always stop it (by its pid)."""
    if not ANVIL.exists():
        missing_tool(f"anvil not found at {ANVIL}; run `npm ci` in contracts/")
    node = LocalAnvil(ANVIL)
    node.start(timeout=startup_timeout)
    try:
        yield node.url
    finally:
        node.stop()


def expect_revert(call: Callable[[], object]) -> ContractRevert:
    with pytest.raises(ContractRevert) as caught:
        call()
    return caught.value
