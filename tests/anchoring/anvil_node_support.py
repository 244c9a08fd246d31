"""Helpers for tests/anchoring (imported by module name; never collected).

`AnvilNode` is an anvil that can be stopped and started again on the same loopback port,
keeping its chain in a `--state` file (anvil dumps it on SIGTERM and loads it on start), so
a test can take the RPC away mid-schedule and bring the same chain back. The binary, the
development keys and the port picker come from tests/attestation's `anchor_support`.
"""

from __future__ import annotations

import sys
from pathlib import Path

_ATTESTATION_TESTS = Path(__file__).resolve().parents[1] / "attestation"
if str(_ATTESTATION_TESTS) not in sys.path:
    # pytest puts a test directory on sys.path only when it collects it; these helpers are
    # shared with tests/attestation, which may not be part of this run.
    sys.path.insert(0, str(_ATTESTATION_TESTS))

from anchor_support import ANVIL, ANVIL_ADMIN_KEY, ANVIL_KEYS, missing_tool  # noqa: E402

from attestation.chain.localnode import (  # noqa: E402
    ANVIL_CHAIN_ID,
    LocalAnvil,
    free_loopback_port,
    rpc_call,
)

__all__ = [
    "ANVIL_ADMIN_KEY",
    "ANVIL_CHAIN_ID",
    "ANVIL_KEYS",
    "AnvilNode",
    "free_loopback_port",
    "rpc_call",
]


class AnvilNode(LocalAnvil):
    """An anvil on a fixed 127.0.0.1 port whose chain survives `stop()` and `start()`."""

    def __init__(self, state_dir: Path, *, extra_args: tuple[str, ...] = ()) -> None:
        if not ANVIL.exists():
            missing_tool(f"anvil not found at {ANVIL}; run `npm ci` in contracts/")
        state_dir.mkdir(parents=True, exist_ok=True)
        self.state_file = state_dir / "anvil-state.json"
        super().__init__(ANVIL, extra_args=("--state", str(self.state_file), *extra_args))
