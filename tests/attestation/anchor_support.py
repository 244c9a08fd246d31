"""Helpers for tests/attestation (imported by module name; never collected).

- `AnvilProcess`: a Foundry anvil node started on a free loopback port and stopped again;
- the well-known anvil development keys (derived from anvil's public test mnemonic; they
  hold value only on throw-away local chains);
- `expect_revert`: run a call and return the decoded custom error.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from attestation.chain import ContractRevert

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = REPO / "contracts"
# Overridable so the CI-policy test can point it at a missing binary.
ANVIL = Path(
    os.environ.get("CARBONLEDGER_TEST_ANVIL", CONTRACTS / "node_modules" / ".bin" / "anvil")
)
ANVIL_CHAIN_ID = 31337
# Accounts 0 and 1 of anvil's default mnemonic ("test test … junk"): public development keys.
ANVIL_KEYS = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
)


def running_in_ci() -> bool:
    """Mirrors tests/conftest.py: under CI=true missing prerequisites fail, never skip."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def missing_tool(message: str) -> None:
    if running_in_ci():
        pytest.fail(message + " (CI=true: these tests must run; `make test` runs npm ci)")
    pytest.skip(message)


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _rpc(url: str, method: str) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": []}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=2) as response:
        return json.load(response)["result"]


@contextlib.contextmanager
def anvil_process(startup_timeout: float = 20.0) -> Iterator[str]:
    """Start anvil on a free 127.0.0.1 port; yield its URL; always stop it (by its pid)."""
    if not ANVIL.exists():
        missing_tool(f"anvil not found at {ANVIL}; run `npm ci` in contracts/")
    # The port is free when chosen and could be taken before anvil binds it; anvil then
    # exits at once, which the readiness loop reports instead of hanging.
    port = free_loopback_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [str(ANVIL), "--host", "127.0.0.1", "--port", str(port), "--silent"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                stderr = process.stderr.read().decode() if process.stderr else ""
                raise RuntimeError(f"anvil exited with {process.returncode}: {stderr}")
            try:
                if int(_rpc(url, "eth_chainId"), 16) == ANVIL_CHAIN_ID:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"anvil did not answer on {url} within {startup_timeout}s")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stderr:
            process.stderr.close()


def expect_revert(call: Callable[[], object]) -> ContractRevert:
    with pytest.raises(ContractRevert) as caught:
        call()
    return caught.value
