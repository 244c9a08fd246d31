"""Every error is an RFC 9457 problem document with a documented, stable type."""

from __future__ import annotations

import re
from collections.abc import Iterator

from api_helpers import MAX_REQUEST_BYTES, assert_problem
from fastapi import FastAPI
from fastapi.testclient import TestClient

import api.problems
from api.problems import (
    INTERNAL_ERROR,
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    PAYLOAD_TOO_LARGE,
    PROBLEM_MEDIA_TYPE,
    PROBLEM_TYPES,
    VALIDATION_ERROR,
)
from ledger.registry import Registry

SECRET_MESSAGE = "connection string postgresql://admin:hunter2@db"


def test_unknown_route_is_404(client: TestClient) -> None:
    assert_problem(client.get("/v1/nothing-here"), NOT_FOUND, instance="/v1/nothing-here")


def test_wrong_method_is_405_with_allow(client: TestClient) -> None:
    response = client.delete("/v1/log/checkpoint")
    body = assert_problem(response, METHOD_NOT_ALLOWED, instance="/v1/log/checkpoint")
    assert response.headers["allow"] == "GET"
    assert "DELETE" in body["detail"]


MALFORMED_PARAMETERS = [
    # (path, query, the one field reported)
    ("/v1/log/proofs/inclusion", {"index": "seven"}, "index"),
    ("/v1/log/proofs/inclusion", {}, "index"),
    ("/v1/log/proofs/inclusion", {"index": -1}, "index"),
    ("/v1/log/proofs/inclusion", {"index": 0, "size": 0}, "size"),
    # Beyond int64: refused before it could reach a database column.
    ("/v1/log/proofs/inclusion", {"index": 2**63}, "index"),
    ("/v1/log/proofs/consistency", {"from": 0}, "from"),
    ("/v1/log/proofs/consistency", {"from": 1, "to": "x"}, "to"),
]


def test_malformed_parameters_are_422_listing_the_field(client: TestClient) -> None:
    for path, params, field in MALFORMED_PARAMETERS:
        case = (path, params)
        response = client.get(path, params=params)
        body = assert_problem(response, VALIDATION_ERROR, instance=path, case=case)
        assert [(e["location"], e["field"]) for e in body["errors"]] == [("query", field)], case
        assert all(isinstance(e["message"], str) and e["message"] for e in body["errors"])


def test_validation_errors_list_every_failing_field(client: TestClient) -> None:
    response = client.get("/v1/log/proofs/inclusion", params={"index": "a", "size": "b"})
    body = assert_problem(response, VALIDATION_ERROR)
    assert sorted(e["field"] for e in body["errors"]) == ["index", "size"]
    # The rejected input is not echoed back.
    assert "input" not in response.text


def test_body_over_the_limit_by_content_length_is_413(client: TestClient) -> None:
    response = client.post(
        "/auth/token",
        content=b"grant_type=client_credentials&" + b"x" * MAX_REQUEST_BYTES,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_problem(response, PAYLOAD_TOO_LARGE, instance="/auth/token")
    assert response.headers["connection"] == "close"
    assert "access_token" not in response.text


def test_streamed_body_over_the_limit_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"grant_type=client_credentials&pad="
        for _ in range(MAX_REQUEST_BYTES // 512 + 1):
            yield b"x" * 512

    # A generator body goes out chunked, without Content-Length: only counting catches it.
    response = client.post(
        "/auth/token",
        content=chunks(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert_problem(response, PAYLOAD_TOO_LARGE, instance="/auth/token")
    assert response.headers["connection"] == "close"


def test_body_at_the_limit_is_accepted(client: TestClient) -> None:
    # Reaches the token endpoint (which then wants credentials): the size check passed.
    response = client.post(
        "/auth/token",
        content=b"x" * MAX_REQUEST_BYTES,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 401


def test_oversized_body_is_413_even_where_no_body_is_read(client: TestClient) -> None:
    response = client.request("GET", "/healthz", content=b"x" * (MAX_REQUEST_BYTES + 1))
    assert_problem(response, PAYLOAD_TOO_LARGE, instance="/healthz")


def test_framework_error_without_a_slug_is_an_about_blank_problem(client: TestClient) -> None:
    # Starlette rejects a multipart body without a boundary before any route code runs.
    response = client.post(
        "/auth/token", content=b"garbage", headers={"Content-Type": "multipart/form-data"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body = response.json()
    assert (body["type"], body["title"], body["status"]) == ("about:blank", "Bad Request", 400)
    assert body["instance"] == "/auth/token"


def test_unexpected_exception_is_500_without_internals(app: FastAPI, registry: Registry) -> None:
    @app.get("/test-only/failure")
    def fail() -> None:
        raise RuntimeError(SECRET_MESSAGE)

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/test-only/failure")

    assert_problem(response, INTERNAL_ERROR, instance="/test-only/failure")
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text
    assert "Traceback" not in response.text


def test_problem_types_are_unique_and_documented() -> None:
    doc = api.problems.__doc__ or ""
    documented = re.findall(r"^\| ([a-z-]+) +\| (\d{3}) ", doc, flags=re.MULTILINE)
    assert documented == [(kind.slug, str(kind.status)) for kind in PROBLEM_TYPES]
    assert len({kind.uri for kind in PROBLEM_TYPES}) == len(PROBLEM_TYPES)
    for kind in PROBLEM_TYPES:
        assert re.fullmatch(r"urn:carbonledger:problem:[a-z]+(-[a-z]+)*", kind.uri)


def test_openapi_documents_problems_tags_and_scopes(client: TestClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["info"]["title"] == "carbonledger"
    assert document["info"]["version"]
    assert {tag["name"] for tag in document["tags"]} == {
        "health",
        "auth",
        "log",
        "meters",
        "readings",
        "anchors",
        "devices",
        "accounts",
        "certificates",
        "reports",
    }

    schemes = document["components"]["securitySchemes"]
    flow = schemes["clientCredentials"]["flows"]["clientCredentials"]
    assert flow["tokenUrl"] == "/auth/token"
    assert "log:read" in flow["scopes"]
    paths = document["paths"]
    assert paths["/v1/log/entries/{index}"]["get"]["security"] == [
        {"clientCredentials": ["log:read"]}
    ]
    for public in ("/v1/log", "/v1/log/checkpoint", "/v1/log/proofs/inclusion", "/healthz"):
        assert "security" not in paths[public]["get"], public

    # 422s describe the problem document actually sent, not FastAPI's default body.
    invalid = paths["/v1/log/proofs/consistency"]["get"]["responses"]["422"]["content"]
    assert invalid == {
        PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ValidationProblem"}}
    }
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert {"Problem", "ValidationProblem", "OAuthProblem", "FieldError"} <= set(schemas)
    assert "rootHash" in schemas["LogInfo"]["properties"]


def test_interactive_docs_are_served(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert "/openapi.json" in response.text
