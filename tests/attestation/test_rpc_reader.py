"""attestation/chain/rpc.py: the verifier's JSON-RPC reads without web3, and its messages.

The selectors and the event topic are recomputed from the committed artifact's ABI, so a
change of the contract's interface fails here; the client is tried against real loopback
HTTP servers that answer wrongly in each way a wrong URL does (the happy path runs against
anvil in tests/bundles and tests/anchoring).
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from eth_utils.crypto import keccak

from attestation.anchoring.audit import REVOKED_TOPIC
from attestation.chain import rpc
from attestation.chain.client import load_artifact
from attestation.chain.localnode import free_loopback_port


def signature(item: dict[str, Any]) -> str:
    return f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"


def abi_item(name: str) -> dict[str, Any]:
    (item,) = [entry for entry in load_artifact()["abi"] if entry.get("name") == name]
    return item


def test_selectors_and_topic_are_those_of_the_committed_abi() -> None:
    root_at, latest, anchored = abi_item("rootAt"), abi_item("latest"), abi_item("Anchored")
    assert signature(root_at) == "rootAt(bytes32,uint64)"
    assert [o["type"] for o in root_at["outputs"]] == ["bytes32"]
    assert keccak(text=signature(root_at))[:4] == rpc.ROOT_AT_SELECTOR
    assert signature(latest) == "latest(bytes32)"
    assert [o["type"] for o in latest["outputs"]] == ["uint64", "bytes32"]
    assert keccak(text=signature(latest))[:4] == rpc.LATEST_SELECTOR
    assert keccak(text=signature(anchored)) == rpc.ANCHORED_TOPIC
    # anchored_events reads logId and size from topics 1 and 2, the root from the data.
    indexed = [(i["name"], i["type"]) for i in anchored["inputs"] if i["indexed"]]
    assert indexed[:2] == [("logId", "bytes32"), ("size", "uint64")]
    assert next(i["type"] for i in anchored["inputs"] if not i["indexed"]) == "bytes32"
    # v2: anchorAt's record (root, map root, previous size, time) and the revocation error.
    anchor_at = abi_item("anchorAt")
    assert signature(anchor_at) == "anchorAt(bytes32,uint64)"
    assert [o["type"] for o in anchor_at["outputs"]] == ["bytes32", "bytes32", "uint64", "uint40"]
    assert keccak(text=signature(anchor_at))[:4] == rpc.ANCHOR_AT_SELECTOR
    revoked = abi_item("AnchorRevokedAt")
    assert keccak(text=signature(revoked))[:4] == rpc.ANCHOR_REVOKED_SELECTOR
    revoked_event = abi_item("AnchorRevoked")
    assert keccak(text=signature(revoked_event)) == REVOKED_TOPIC


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("127.0.0.1:8545", "has no scheme; add it: http://127.0.0.1:8545"),
        ("localhost", "add it: http://localhost"),
        ("ws://127.0.0.1:8546", "ws:// is not supported"),
        ("http://", "names no host"),
        ("http://127.0.0.1:port", "invalid port"),
    ],
)
def test_urls_that_cannot_work_say_how_to_fix_them(url: str, fragment: str) -> None:
    problem = rpc.rpc_url_problem(url)
    assert problem is not None and fragment in problem
    with pytest.raises(rpc.RpcUnavailableError) as raised:
        rpc.JsonRpc(url)
    assert fragment in str(raised.value)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8545", "https://rpc.example.org/v1/key"])
def test_urls_that_can_work_pass(url: str) -> None:
    assert rpc.rpc_url_problem(url) is None


def test_nothing_listening_asks_whether_the_node_runs_there() -> None:
    url = f"http://127.0.0.1:{free_loopback_port()}"
    with pytest.raises(rpc.RpcUnavailableError) as raised:
        rpc.JsonRpc(url, timeout=5).chain_id()
    assert str(raised.value) == (
        f"chain RPC {url} is unreachable (connection refused): is the node running at {url}?"
    )


def test_web3s_transport_errors_are_worded_the_same() -> None:
    """unreachable_message finds the cause inside requests' and urllib3's wrapping."""
    url = f"http://127.0.0.1:{free_loopback_port()}"
    with pytest.raises(requests.exceptions.ConnectionError) as raised:
        requests.post(url, json={}, timeout=5)
    assert "connection refused" in rpc.unreachable_message(url, raised.value)
    resolved = rpc.unreachable_message(
        "http://nowhere.invalid:8545", OSError(socket.gaierror(-2, "Name or service not known"))
    )
    assert "cannot resolve the host 'nowhere.invalid'" in resolved
    timed_out = rpc.unreachable_message(url, TimeoutError("timed out"), timeout=2)
    assert "did not answer within 2 s" in timed_out


Handler = Callable[[http.server.BaseHTTPRequestHandler, dict[str, Any]], None]


@pytest.fixture
def server() -> Iterator[Callable[[Handler], str]]:
    """A loopback HTTP server whose answer to each POST is given by the test."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(handle: Handler) -> str:
        class Answer(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                handle(self, json.loads(self.rfile.read(length)))

            def log_message(self, format: str, *args: Any) -> None:
                pass

        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def reply(handler: http.server.BaseHTTPRequestHandler, status: int, body: bytes) -> None:
    handler.send_response(status)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def reply_json(handler: http.server.BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
    reply(handler, 200, json.dumps(body).encode())


@pytest.mark.parametrize(
    ("answer", "fragment"),
    [
        (lambda h, r: reply(h, 404, b"not found"), "answered HTTP 404"),
        (lambda h, r: reply(h, 200, b"<html>hello</html>"), "did not answer JSON"),
        (
            lambda h, r: reply(
                h, 200, json.dumps({"jsonrpc": "2.0", "id": 99, "result": "0x1"}).encode()
            ),
            "did not answer as a JSON-RPC node",
        ),
        (
            lambda h, r: reply(
                h, 200, json.dumps({"jsonrpc": "2.0", "id": r["id"], "result": 7}).encode()
            ),
            "expected a 0x-hex quantity",
        ),
    ],
    ids=["http-error", "not-json", "wrong-id", "not-hex"],
)
def test_an_endpoint_that_is_not_a_node_is_named_as_such(
    server: Callable[[Handler], str], answer: Handler, fragment: str
) -> None:
    url = server(answer)
    with pytest.raises(rpc.RpcUnavailableError) as raised:
        rpc.JsonRpc(url, timeout=5).chain_id()
    assert fragment in str(raised.value)


def test_a_reverted_call_is_no_answer_and_other_errors_are_raised(
    server: Callable[[Handler], str],
) -> None:
    def answer(handler: http.server.BaseHTTPRequestHandler, request: dict[str, Any]) -> None:
        code = 3 if request["method"] == "eth_call" else -32601
        error = {"code": code, "message": "execution reverted", "data": "0x1234"}
        reply_json(handler, {"jsonrpc": "2.0", "id": request["id"], "error": error})

    node = rpc.JsonRpc(server(answer), timeout=5)
    assert node.call("0x" + "11" * 20, rpc.latest_call(b"\0" * 32)) is None
    with pytest.raises(rpc.RpcErrorAnswer) as raised:
        node.chain_id()
    assert raised.value.code == -32601


def test_answers_are_decoded_strictly() -> None:
    root = bytes(range(32))
    assert rpc.decode_root(root) == root
    assert rpc.decode_root(b"") is None  # no code at the address
    with pytest.raises(rpc.RpcUnavailableError):
        rpc.decode_root(root + b"\0")
    assert rpc.decode_latest((5).to_bytes(32, "big") + root) == (5, root)
    with pytest.raises(rpc.RpcUnavailableError, match="uint64"):
        rpc.decode_latest((1 << 64).to_bytes(32, "big") + root)
    receipt = rpc.Receipt(
        status=1,
        block=9,
        logs=(
            rpc.EventLog(
                "0x" + "ab" * 20,
                (rpc.ANCHORED_TOPIC, b"\1" * 32, (5).to_bytes(32, "big"), b"\0" * 32),
                root + (0).to_bytes(32, "big"),
            ),
            # Another contract's event, and an event of another kind, are not anchors.
            rpc.EventLog(
                "0x" + "cd" * 20,
                (rpc.ANCHORED_TOPIC, b"\1" * 32, (5).to_bytes(32, "big"), b"\0" * 32),
                root,
            ),
            rpc.EventLog("0x" + "ab" * 20, (b"\2" * 32, b"\1" * 32, b"\0" * 32, b"\0" * 32), root),
        ),
    )
    assert rpc.anchored_events(receipt, "0x" + "AB" * 20) == ((b"\1" * 32, 5, root),)
