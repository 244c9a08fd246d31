"""Helpers for tests/anchoring (imported by module name; never collected).

`AnvilNode` is an anvil that can be stopped and started again on the same loopback port,
keeping its chain in a `--state` file (anvil dumps it on SIGTERM and loads it on start), so
a test can take the RPC away mid-schedule and bring the same chain back. The binary, the
development keys and the port picker come from tests/attestation's `anchor_support`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

_ATTESTATION_TESTS = Path(__file__).resolve().parents[1] / "attestation"
if str(_ATTESTATION_TESTS) not in sys.path:
    # pytest puts a test directory on sys.path only when it collects it; these helpers are
    # shared with tests/attestation, which may not be part of this run.
    sys.path.insert(0, str(_ATTESTATION_TESTS))

from anchor_support import (  # noqa: E402
    ANVIL,
    ANVIL_CHAIN_ID,
    ANVIL_KEYS,
    free_loopback_port,
    missing_tool,
)

__all__ = ["ANVIL_CHAIN_ID", "ANVIL_KEYS", "AnvilNode", "free_loopback_port", "rpc_call"]


def rpc_call(url: str, method: str, params: list[Any] | None = None) -> Any:
    """One raw JSON-RPC call (anvil's own methods are not in web3's API)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        answer = json.load(response)
    if "error" in answer:
        raise RuntimeError(f"{method}: {answer['error']}")
    return answer["result"]


class AnvilNode:
    """An anvil on a fixed 127.0.0.1 port whose chain survives `stop()` and `start()`."""

    def __init__(self, state_dir: Path, *, extra_args: tuple[str, ...] = ()) -> None:
        if not ANVIL.exists():
            missing_tool(f"anvil not found at {ANVIL}; run `npm ci` in contracts/")
        self.port = free_loopback_port()
        self.url = f"http://127.0.0.1:{self.port}"
        state_dir.mkdir(parents=True, exist_ok=True)
        self.state_file = state_dir / "anvil-state.json"
        self.extra_args = extra_args
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> None:
        assert self._process is None, "already running"
        self._process = subprocess.Popen(
            [
                str(ANVIL),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--silent",
                "--state",
                str(self.state_file),
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                stderr = self._process.stderr.read().decode() if self._process.stderr else ""
                code = self._process.returncode
                self._process = None
                raise RuntimeError(f"anvil exited with {code}: {stderr}")
            try:
                if int(rpc_call(self.url, "eth_chainId"), 16) == ANVIL_CHAIN_ID:
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"anvil did not answer on {self.url} within {timeout}s")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM (anvil writes its state file on the way out), then wait; kill if stuck."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stderr:
            process.stderr.close()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def call(self, method: str, *params: Any) -> Any:
        return rpc_call(self.url, method, list(params))
