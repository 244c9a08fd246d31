"""Read-only JSON-RPC with the standard library, and what to say when a node cannot be asked.

The offline verifier's chain lookup is three read-only requests (`eth_chainId`, an
`eth_call` of `anchorAt`, a transaction receipt); `carbonledger anchor status` is one more
call (`latest`). Through web3 those requests would first cost a second of imports, more than
the verifier's whole budget; here they cost the requests. Writing (deploying, anchoring)
stays with web3 in `attestation.chain.client`.

Failures say what to check: a URL without a scheme is named with the fix (`add it:
http://…`), a refused connection asks whether the node is running at that address, a name
that does not resolve, a timeout, an HTTP error or an answer that is not JSON-RPC are each
told apart (`unreachable_message` words the same causes for web3's exceptions).
"""

from __future__ import annotations

import json
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from attestation.chain.errors import ChainError

DEFAULT_TIMEOUT_SECONDS = 30.0
MAX_ANSWER_BYTES = 4 << 20
"""A receipt with its logs is a few KiB; the bound stops a wrong endpoint (a file server,
an endless stream) from being read into memory whole."""
SCHEMES = ("http", "https")

# CarbonAnchor's read-only views and its event (contracts/src/CarbonAnchor.sol): selectors
# are the first four bytes of keccak256 of the signature, the topic all 32 of them.
# tests/attestation/test_rpc_reader.py recomputes each from the committed artifact's ABI.
ROOT_AT_SELECTOR = bytes.fromhex("930b6ace")
"""rootAt(bytes32 logId, uint64 size) returns (bytes32)"""
LATEST_SELECTOR = bytes.fromhex("79feb107")
"""latest(bytes32 logId) returns (uint64 size, bytes32 root)"""
ANCHOR_AT_SELECTOR = bytes.fromhex("8c0d6778")
"""anchorAt(bytes32 logId, uint64 size) returns (bytes32 root, bytes32 mapRoot, uint64
previousSize, uint40 anchoredAt)"""
ANCHOR_REVOKED_SELECTOR = bytes.fromhex("55240d41")
"""error AnchorRevokedAt(bytes32 logId, uint64 size): the admin revoked that anchor."""
ANCHORED_TOPIC = bytes.fromhex("2c9b53c33b2a4162fb6d90ea53a8859fa83ceaba009cb752a0a4c38a3167e48f")
"""Anchored(bytes32 indexed logId, uint64 indexed size, bytes32 root, bytes32 mapRoot,
uint64 previousSize, address indexed anchorer)"""
WORD = 32


class RpcUnavailableError(ChainError):
    """The node could not be asked (or did not answer as a JSON-RPC node); the message says
    what to check."""


class RpcErrorAnswer(ChainError):  # noqa: N818 - it is the node's answer, not our failure
    """The node answered with a JSON-RPC error object."""

    def __init__(self, method: str, code: object, message: object, data: object) -> None:
        self.code = code
        self.data = data
        super().__init__(f"{method}: the node answered error {code}: {message}")


# ------------------------------------------------------------------------ what to say


def rpc_url_problem(url: str) -> str | None:
    """Why `url` cannot name a JSON-RPC endpoint (with the fix), or None when it can."""
    if "://" not in url:
        return f"{url!r} has no scheme; add it: http://{url}"
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in SCHEMES:
        return f"{url!r}: the scheme {parsed.scheme}:// is not supported; use http:// or https://"
    if not parsed.hostname:
        return f"{url!r} names no host; e.g. http://127.0.0.1:8545"
    try:
        parsed.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        return f"{url!r} has an invalid port; e.g. http://127.0.0.1:8545"
    return None


def _root_cause(error: BaseException) -> BaseException | None:
    """The operating-system cause inside a wrapped transport error, if one is there.

    urllib wraps it in URLError.reason; requests and urllib3 (under web3) in exception
    arguments, `reason` attributes and exception chains. All of them are searched, so the
    wording below does not depend on which HTTP library failed.
    """
    pending: list[BaseException] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError | socket.gaierror | ssl.SSLError):
            return current
        if isinstance(current, TimeoutError):
            return current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked.extend(current.args)
        pending.extend(item for item in linked if isinstance(item, BaseException))
    return None


def unreachable_message(url: str, error: BaseException, timeout: float | None = None) -> str:
    """One sentence on why the node at `url` did not answer, and what to check."""
    cause = _root_cause(error)
    if isinstance(cause, ConnectionRefusedError):
        return f"chain RPC {url} is unreachable (connection refused): is the node running at {url}?"
    if isinstance(cause, socket.gaierror):
        host = urllib.parse.urlsplit(url).hostname
        return (
            f"chain RPC {url} is unreachable (cannot resolve the host {host!r}): "
            "is the host name right?"
        )
    if isinstance(cause, ssl.SSLError):
        return (
            f"chain RPC {url} is unreachable (TLS handshake failed: {cause}): "
            "is the scheme right, http:// or https://?"
        )
    if isinstance(cause, TimeoutError):
        within = f" within {timeout:g} s" if timeout is not None else ""
        return f"chain RPC {url} did not answer{within}: is the node running and reachable?"
    detail = " ".join(str(cause or error).split())
    return f"chain RPC {url} is unreachable ({detail}): is the node running at {url}?"


# ----------------------------------------------------------------------- the client


class JsonRpc:
    """Blocking JSON-RPC 2.0 over HTTP(S): one request, one answer, nothing kept open."""

    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        problem = rpc_url_problem(url)
        if problem is not None:
            raise RpcUnavailableError(problem)
        self.url = url
        self.timeout = timeout
        self._next_id = 1

    def request(self, method: str, params: Sequence[Any] = ()) -> Any:
        """The `result` of one call; RpcErrorAnswer for an error object, RpcUnavailableError
        when there is no JSON-RPC answer at all."""
        request_id = self._next_id
        self._next_id += 1
        body = json.dumps(
            {"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)}
        ).encode()
        request = urllib.request.Request(  # noqa: S310 - the scheme is http(s), checked above
            self.url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                raw = response.read(MAX_ANSWER_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise RpcUnavailableError(
                f"{self.url} answered HTTP {exc.code} {exc.reason}: is it the node's JSON-RPC URL?"
            ) from exc
        except OSError as exc:  # URLError, timeouts and connection errors are all OSErrors
            raise RpcUnavailableError(unreachable_message(self.url, exc, self.timeout)) from exc
        if len(raw) > MAX_ANSWER_BYTES:
            raise RpcUnavailableError(f"{self.url} answered more than {MAX_ANSWER_BYTES} bytes")
        try:
            answer = json.loads(raw)
        except ValueError as exc:
            raise RpcUnavailableError(
                f"{self.url} did not answer JSON: is it the node's JSON-RPC URL?"
            ) from exc
        if not isinstance(answer, Mapping) or answer.get("id") != request_id:
            raise RpcUnavailableError(
                f"{self.url} did not answer as a JSON-RPC node: is it the node's URL?"
            )
        error = answer.get("error")
        if error is not None:
            error = error if isinstance(error, Mapping) else {"message": error}
            raise RpcErrorAnswer(method, error.get("code"), error.get("message"), error.get("data"))
        return answer.get("result")

    # ------------------------------------------------------------ the calls made

    def chain_id(self) -> int:
        return _quantity(self.request("eth_chainId"), "eth_chainId")

    def call(self, to: str, data: bytes) -> bytes | None:
        """`eth_call` at the latest block: the return data, or None when the call reverted."""
        answer, _ = self.call_or_revert(to, data)
        return answer

    def call_or_revert(self, to: str, data: bytes) -> tuple[bytes | None, bytes | None]:
        """`eth_call` at the latest block: (return data, None), or (None, revert data) when
        it reverted (revert data b"" when the node sent none)."""
        try:
            result = self.request("eth_call", [{"to": to, "data": "0x" + data.hex()}, "latest"])
        except RpcErrorAnswer as exc:
            if _is_revert(exc):
                return None, _revert_bytes(exc.data)
            raise
        return _data(result, "eth_call"), None

    def receipt(self, tx: bytes) -> Receipt | None:
        """The transaction's receipt; None when the chain does not know the transaction."""
        result = self.request("eth_getTransactionReceipt", ["0x" + tx.hex()])
        if result is None:
            return None
        if not isinstance(result, Mapping):
            raise RpcUnavailableError(f"{self.url}: a receipt is not a JSON object")
        logs = result.get("logs")
        if not isinstance(logs, list):
            raise RpcUnavailableError(f"{self.url}: a receipt without its logs")
        return Receipt(
            status=_quantity(result.get("status"), "status"),
            block=_quantity(result.get("blockNumber"), "blockNumber"),
            logs=tuple(_log(entry) for entry in logs),
        )


@dataclass(frozen=True, slots=True)
class EventLog:
    address: str
    """Lower-case 0x-hex, as nodes send it."""
    topics: tuple[bytes, ...]
    data: bytes


@dataclass(frozen=True, slots=True)
class Receipt:
    status: int
    block: int
    logs: tuple[EventLog, ...]


def _quantity(value: object, what: str) -> int:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise RpcUnavailableError(f"{what}: expected a 0x-hex quantity, got {value!r}")
    try:
        return int(value, 16)
    except ValueError:
        raise RpcUnavailableError(f"{what}: {value!r} is not a hex quantity") from None


def _data(value: object, what: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise RpcUnavailableError(f"{what}: expected 0x-hex data, got {value!r}")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise RpcUnavailableError(f"{what}: {value[:40]!r} is not hex data") from None


def _log(entry: object) -> EventLog:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("topics"), list):
        raise RpcUnavailableError("a receipt log is not a JSON object with topics")
    address = entry.get("address")
    if not isinstance(address, str):
        raise RpcUnavailableError("a receipt log has no address")
    topics = tuple(_data(topic, "topic") for topic in entry["topics"])
    return EventLog(address.lower(), topics, _data(entry.get("data"), "log data"))


def _revert_bytes(data: object) -> bytes:
    if isinstance(data, Mapping):  # some nodes nest it: {"data": "0x…"}
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return b""
    return b""


def _is_revert(error: RpcErrorAnswer) -> bool:
    # Geth and anvil answer a reverted eth_call with code 3 ("execution reverted", revert
    # data in `data`); other nodes use -32000 and say so in the message.
    return error.code == 3 or "revert" in str(error).lower()


# ------------------------------------------------------------ CarbonAnchor's views


def root_at_call(log_id: bytes, size: int) -> bytes:
    assert len(log_id) == WORD and 0 <= size < 1 << 64
    return ROOT_AT_SELECTOR + log_id + size.to_bytes(WORD, "big")


def anchor_at_call(log_id: bytes, size: int) -> bytes:
    assert len(log_id) == WORD and 0 <= size < 1 << 64
    return ANCHOR_AT_SELECTOR + log_id + size.to_bytes(WORD, "big")


@dataclass(frozen=True, slots=True)
class AnchorAt:
    """`anchorAt`'s answer: the contract's record of one anchored size."""

    root: bytes
    map_root: bytes
    previous_size: int
    anchored_at: int


def decode_anchor_at(data: bytes) -> AnchorAt | None:
    """`anchorAt`'s four words; None for an empty answer (no contract code at the address)."""
    if not data:
        return None
    if len(data) != 4 * WORD:
        raise RpcUnavailableError(f"anchorAt answered {len(data)} bytes, not four words")
    previous = int.from_bytes(data[2 * WORD : 3 * WORD], "big")
    anchored_at = int.from_bytes(data[3 * WORD :], "big")
    if previous >= 1 << 64 or anchored_at >= 1 << 40:
        raise RpcUnavailableError("anchorAt answered values out of their uint64/uint40 range")
    return AnchorAt(data[:WORD], data[WORD : 2 * WORD], previous, anchored_at)


def latest_call(log_id: bytes) -> bytes:
    assert len(log_id) == WORD
    return LATEST_SELECTOR + log_id


def decode_root(data: bytes) -> bytes | None:
    """`rootAt`'s bytes32; None for an empty answer (no contract code at the address)."""
    if not data:
        return None
    if len(data) != WORD:
        raise RpcUnavailableError(f"rootAt answered {len(data)} bytes, not one bytes32")
    return data


def decode_latest(data: bytes) -> tuple[int, bytes]:
    """`latest`'s (uint64 size, bytes32 root)."""
    if len(data) != 2 * WORD:
        raise RpcUnavailableError(f"latest answered {len(data)} bytes, not (uint64, bytes32)")
    size = int.from_bytes(data[:WORD], "big")
    if size >= 1 << 64:
        raise RpcUnavailableError("latest answered a size that is not a uint64")
    return size, data[WORD:]


def anchored_events(receipt: Receipt, contract: str) -> tuple[tuple[bytes, int, bytes], ...]:
    """(logId, size, root) of every `Anchored` event that `contract` emitted in the receipt."""
    found = []
    for entry in receipt.logs:
        if (
            entry.address == contract.lower()
            and len(entry.topics) == 4
            and entry.topics[0] == ANCHORED_TOPIC
            and len(entry.data) >= 2 * WORD
        ):
            found.append(
                (entry.topics[1], int.from_bytes(entry.topics[2], "big"), entry.data[:WORD])
            )
    return tuple(found)
