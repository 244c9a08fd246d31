"""Bodies built to crash the parser: every route that takes a body, every CLI reader.

One request of `[[[[…` nested 100,000 deep used to kill the server (SIGSEGV: the body is
parsed before authentication, and web3 had raised the recursion limit to 100,000). Now the
body guard (`api.body_guard`) refuses it unparsed with a problem document, and the
interpreter keeps its default recursion limit (`attestation.chain.stack`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from api.problems import JSON_TOO_DEEP, PAYLOAD_TOO_LARGE, PROBLEM_MEDIA_TYPE, ProblemType
from api.routers.readings import READINGS_PATH
from attestation.chain.localnode import free_loopback_port
from ledger.strict_json import MAX_JSON_DEPTH, nesting_exceeds

SCRIPT = Path(sys.executable).with_name("carbonledger")
DEPTHS = (10**5, 10**6)


def nested(depth: int, opener: str = "[", closer: str = "]") -> bytes:
    return (opener * depth + closer * depth).encode()


def body_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every operation that is not a GET, path parameters filled in."""
    routes = []
    for path, operations in app.openapi()["paths"].items():
        for method in operations:
            if method not in ("get", "head"):
                filled = path
                while "{" in filled:
                    start, end = filled.index("{"), filled.index("}")
                    filled = filled[:start] + "x" + filled[end + 1 :]
                routes.append((method.upper(), filled))
    assert len(routes) >= 14, routes  # every write route of the API (a route lost = a bug)
    return routes


def assert_problem_of(response: httpx.Response, kind: ProblemType, case: object) -> None:
    assert response.status_code == kind.status, (case, response.status_code, response.text)
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE, case
    assert response.json()["type"] == kind.uri, (case, response.text)


def test_every_body_route_refuses_deep_json_unparsed(
    default_app: FastAPI, default_client: TestClient
) -> None:
    limit_default = default_app.state.settings.max_request_bytes
    for method, path in body_routes(default_app):
        for depth in DEPTHS:
            for opener, closer in (("[", "]"), ('{"a":', "}")):
                body = nested(depth, opener, closer)
                limit = (
                    default_app.state.settings.max_readings_request_bytes
                    if path == READINGS_PATH
                    else limit_default
                )
                # No token at all: the guard runs before authentication.
                response = default_client.request(
                    method, path, content=body, headers={"content-type": "application/json"}
                )
                expected = PAYLOAD_TOO_LARGE if len(body) > limit else JSON_TOO_DEEP
                assert_problem_of(response, expected, (method, path, depth, opener))
    # The same body without a content type is parsed as JSON by FastAPI, so it is guarded too.
    response = default_client.post("/v1/meters", content=nested(10**5))
    assert_problem_of(response, JSON_TOO_DEEP, "no content type")
    response = default_client.post(
        "/v1/meters", content=nested(10**5), headers={"content-type": "application/merge+json"}
    )
    assert_problem_of(response, JSON_TOO_DEEP, "+json")


def test_bodies_at_the_depth_limit_reach_the_route(default_client: TestClient) -> None:
    # 32 levels is allowed (the route answers 401: no token), 33 is not.
    at_limit = nested(MAX_JSON_DEPTH)
    assert default_client.post("/v1/meters", content=at_limit).status_code == 401
    over = nested(MAX_JSON_DEPTH + 1)
    assert_problem_of(default_client.post("/v1/meters", content=over), JSON_TOO_DEEP, 33)
    # Brackets inside strings are not nesting.
    quoted = json.dumps({"id": "[" * 100_000}).encode()
    assert default_client.post("/v1/meters", content=quoted).status_code == 401
    # Malformed but shallow JSON stays the parser's (and the validation problem's) to refuse.
    assert default_client.post("/v1/meters", content=b"[[]").status_code in (401, 422)


def test_form_bodies_are_not_scanned_as_json(default_client: TestClient) -> None:
    response = default_client.post(
        "/auth/token",
        content=b"grant_type=[[[[[[" + b"[" * 100,
        auth=("cl_x", "y"),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code in (400, 401), response.text
    assert response.json()["type"] != JSON_TOO_DEEP.uri


def test_the_guard_is_linear_in_hostile_input() -> None:
    # Shapes that make naive scanners quadratic or deep: 8 MiB each, the readings limit.
    size = 8 << 20
    shapes = [b"[" * size, b"[[]" * (size // 3), b'"\\' * (size // 2), b'"' + b"a" * size]
    for shape in shapes:
        started = time.perf_counter()
        nesting_exceeds(shape)
        assert time.perf_counter() - started < 3.0, shape[:8]


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(item) for item in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(item) for item in value.values()), default=0)
    return 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab\u00e9'),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(alphabet='[]{}"\\a', max_size=4), children, max_size=3)
    ),
    max_leaves=30,
)


@given(json_values, st.integers(min_value=0, max_value=6))
def test_the_scan_agrees_with_the_real_depth(value: Any, limit: int) -> None:
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False, indent=1)):
        assert nesting_exceeds(text.encode(), limit) == (_depth(value) > limit), text


def test_the_recursion_limit_stays_at_the_default_with_the_chain_stack_loaded() -> None:
    # web3 imports py-evm and py_ecc, which raise the limit to 100,000 on import: with it,
    # deep input overflows the C stack (SIGSEGV) before Python can raise RecursionError.
    code = (
        "import sys\n"
        "import api.app, attestation.anchoring.scheduler, attestation.anchoring.audit\n"
        "import web3, eth, py_ecc, eth_tester\n"
        "from attestation.chain.embedded import Chain\n"
        "print(sys.getrecursionlimit())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1000"


@pytest.mark.slow
def test_a_served_process_survives_deep_bodies(tmp_path: Path) -> None:
    """The attack as it was: real `carbonledger serve`, web3 loaded, no token."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CARBONLEDGER_")}
    env["CARBONLEDGER_DATA_DIR"] = str(tmp_path / "data")
    env["CARBONLEDGER_ANCHOR_ENABLED"] = "false"
    init = subprocess.run(
        [str(SCRIPT), "init"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert init.returncode == 0, init.stderr
    port = free_loopback_port()
    log = tmp_path / "serve.log"
    server = subprocess.Popen(
        [str(SCRIPT), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline(), log.read_text()
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=30) as http:
            for depth in DEPTHS:
                body = nested(depth)
                response = http.post(
                    READINGS_PATH, content=body, headers={"content-type": "application/json"}
                )
                assert_problem_of(response, JSON_TOO_DEEP, depth)
                response = http.post(
                    "/v1/meters", content=body, headers={"content-type": "application/json"}
                )
                expected = PAYLOAD_TOO_LARGE if len(body) > 1 << 20 else JSON_TOO_DEEP
                assert_problem_of(response, expected, depth)
            assert http.get("/healthz").json() == {"status": "ok"}
        assert server.poll() is None, log.read_text()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
