"""Helpers for tests/attestation (imported by module name; never collected).

- `AnvilProcess`: a Foundry anvil node started on a free loopback port and stopped again;
- the well-known anvil development keys (derived from anvil's public test mnemonic; they
  hold value only on throw-away local chains);
- `expect_revert`: run a call and return the decoded custom error.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from testdata_support import running_in_ci

from attestation.chain.client import ContractRevert
from attestation.chain.localnode import ANVIL_CHAIN_ID, LocalAnvil, free_loopback_port

# The tests import the node helpers from here, next to the binary path and the keys.
__all__ = [
    "ANVIL",
    "ANVIL_CHAIN_ID",
    "ANVIL_KEYS",
    "CONTRACTS",
    "REPO",
    "anvil_process",
    "expect_revert",
    "free_loopback_port",
    "missing_tool",
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
