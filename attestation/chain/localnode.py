"""A local anvil node on 127.0.0.1, for development, tests and benchmarks.

Foundry's anvil comes from the npm registry (`contracts/node_modules/.bin/anvil` after
`npm ci`). The service itself never starts a node: it talks to `CARBONLEDGER_CHAIN_RPC`
or runs the embedded chain.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

ANVIL_CHAIN_ID = 31337
STARTUP_POLL_SECONDS = 0.05


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rpc_call(url: str, method: str, params: Sequence[Any] = ()) -> Any:
    """One raw JSON-RPC call (anvil's own methods have no typed wrapper in web3)."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"a local node is reached on http://127.0.0.1 only, not {url!r}")
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    request = urllib.request.Request(  # noqa: S310 - scheme and host checked above
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - as above
        answer = json.load(response)
    if "error" in answer:
        raise RuntimeError(f"{method}: {answer['error']}")
    return answer["result"]


class LocalAnvil:
    """anvil on a fixed 127.0.0.1 port; `stop()` then `start()` brings the same port back
    (with `--state FILE` in `extra_args`, the same chain too: anvil dumps it on SIGTERM)."""

    def __init__(
        self, binary: Path, *, port: int | None = None, extra_args: Sequence[str] = ()
    ) -> None:
        self.binary = binary
        # The port could be taken between choosing and binding it; anvil then exits at
        # once, which start() reports instead of waiting for the timeout.
        self.port = port or free_loopback_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_args = tuple(extra_args)
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> None:
        assert self._process is None, "already running"
        # The binary and arguments come from the developer's own configuration, not from input.
        self._process = subprocess.Popen(  # noqa: S603
            [
                str(self.binary),
                *("--host", "127.0.0.1", "--port", str(self.port), "--silent"),
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
            time.sleep(STARTUP_POLL_SECONDS)

    def stop(self) -> None:
        """SIGTERM (by pid), then wait; kill if it does not exit."""
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
        return rpc_call(self.url, method, params)

    def __enter__(self) -> LocalAnvil:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
