"""Helpers shared by the API tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi.testclient import TestClient
from httpx import Response

from api.problems import PROBLEM_MEDIA_TYPE, ProblemType
from ledger.access.clients import IssuedClient

MAX_REQUEST_BYTES = 4096
"""The body limit the API test app runs with (small, so 413 tests stay cheap)."""


def request_token(client: TestClient, issued: IssuedClient, **form: str) -> Response:
    data = {"grant_type": "client_credentials", **form}
    response: Response = client.post(
        "/auth/token", auth=(issued.client_id, issued.client_secret), data=data
    )
    return response


def access_token(client: TestClient, issued: IssuedClient, **form: str) -> str:
    response = request_token(client, issued, **form)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(
    response: Response,
    kind: ProblemType,
    *,
    instance: str | None = None,
    extensions: Mapping[str, Any] | None = None,
    case: object = None,
) -> dict[str, Any]:
    """The response is an RFC 9457 document of `kind`; returns the parsed body.

    `case` names the input in failure messages when one test loops over several.
    """
    where = f"case {case!r}: " if case is not None else ""
    assert response.status_code == kind.status, where + response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE, where + response.text
    body: dict[str, Any] = response.json()
    assert body["type"] == kind.uri, where + response.text
    assert body["title"] == kind.title, where + response.text
    assert body["status"] == kind.status, where + response.text
    assert isinstance(body.get("detail"), str) and body["detail"], where + response.text
    if instance is not None:
        assert body["instance"] == instance, where + response.text
    for name, value in (extensions or {}).items():
        assert body.get(name) == value, f"{where}{name}: {response.text}"
    return body
