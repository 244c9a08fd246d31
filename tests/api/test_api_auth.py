"""Client credentials at POST /auth/token, and bearer tokens on protected routes."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from api_helpers import access_token, assert_problem, bearer, request_token
from fastapi.testclient import TestClient
from sqlalchemy import update

from api.problems import (
    FORBIDDEN,
    INVALID_CLIENT,
    INVALID_REQUEST,
    INVALID_SCOPE,
    UNAUTHORIZED,
    UNSUPPORTED_GRANT_TYPE,
    VALIDATION_ERROR,
)
from api.settings import ApiSettings
from ledger.access.clients import IssuedClient
from ledger.access.models import ApiClient
from ledger.registry import Registry

ENTRY = "/v1/log/entries/0"
MakeClient = Callable[..., IssuedClient]


@pytest.fixture
def one_entry(registry: Registry) -> None:
    registry.log.append([{"kind": "test/1", "n": 0}])


# ------------------------------------------------------------------- token endpoint


def test_token_carries_the_documented_claims(
    client: TestClient,
    registry: Registry,
    api_settings: ApiSettings,
    token_key: bytes,
    make_api_client: MakeClient,
) -> None:
    issued = make_api_client("log:read", "admin")
    before = int(time.time())
    response = request_token(client, issued)

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == api_settings.token_ttl_seconds
    assert body["scope"] == "admin log:read"
    claims = jwt.decode(
        body["access_token"], token_key, algorithms=["HS256"], issuer=registry.signer.name
    )
    assert claims["sub"] == issued.client_id
    assert claims["org"] == issued.organisation_id
    assert claims["scope"] == "admin log:read"
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] - claims["iat"] == api_settings.token_ttl_seconds
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "HS256"


def test_each_token_has_its_own_id(
    client: TestClient, token_key: bytes, make_api_client: MakeClient
) -> None:
    issued = make_api_client("log:read")
    ids = {
        jwt.decode(
            access_token(client, issued),
            token_key,
            algorithms=["HS256"],
            options={"verify_iss": False},
        )["jti"]
        for _ in range(3)
    }
    assert len(ids) == 3


def test_scope_narrows_the_token(
    client: TestClient, token_key: bytes, make_api_client: MakeClient
) -> None:
    response = request_token(client, make_api_client("log:read", "admin"), scope="log:read")
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "log:read"
    claims = jwt.decode(
        response.json()["access_token"],
        token_key,
        algorithms=["HS256"],
        options={"verify_iss": False},
    )
    assert claims["scope"] == "log:read"


def test_scope_beyond_the_clients_is_invalid_scope(
    client: TestClient, make_api_client: MakeClient
) -> None:
    issued = make_api_client("log:read")
    for scope in ["admin", "log:read admin", "log:write", "bad\u00e9scope", 'a"b']:
        response = request_token(client, issued, scope=scope)
        assert_problem(response, INVALID_SCOPE, extensions={"error": "invalid_scope"}, case=scope)
        assert "access_token" not in response.text


def test_wrong_secret_is_invalid_client(client: TestClient, make_api_client: MakeClient) -> None:
    issued = make_api_client("log:read")
    response = client.post(
        "/auth/token",
        auth=(issued.client_id, issued.client_secret + "x"),
        data={"grant_type": "client_credentials"},
    )
    assert_problem(response, INVALID_CLIENT, extensions={"error": "invalid_client"})
    assert response.headers["www-authenticate"].startswith("Basic")


def test_unknown_client_is_invalid_client(client: TestClient, make_api_client: MakeClient) -> None:
    issued = make_api_client("log:read")
    response = client.post(
        "/auth/token",
        auth=("cl_" + secrets.token_hex(12), issued.client_secret),
        data={"grant_type": "client_credentials"},
    )
    body = assert_problem(response, INVALID_CLIENT, extensions={"error": "invalid_client"})
    assert response.headers["www-authenticate"].startswith("Basic")
    # Same answer as for a wrong secret: nothing tells which client ids exist.
    assert body["detail"] == "unknown client or wrong secret"


def test_missing_or_malformed_basic_credentials_are_invalid_client(client: TestClient) -> None:
    for authorization in [None, "Bearer abc", "Basic not-base64!", "Basic bm8tY29sb24="]:
        headers = {"Authorization": authorization} if authorization else {}
        response = client.post(
            "/auth/token", headers=headers, data={"grant_type": "client_credentials"}
        )
        assert_problem(
            response, INVALID_CLIENT, extensions={"error": "invalid_client"}, case=authorization
        )
        assert response.headers["www-authenticate"].startswith("Basic")


def test_disabled_client_is_invalid_client(
    client: TestClient, registry: Registry, make_api_client: MakeClient
) -> None:
    issued = make_api_client("log:read")
    assert request_token(client, issued).status_code == 200
    with registry.database.write() as session:
        session.execute(
            update(ApiClient)
            .where(ApiClient.client_id == issued.client_id)
            .values(disabled_at=datetime.now(UTC))
        )
    assert_problem(request_token(client, issued), INVALID_CLIENT)


def test_missing_grant_type_is_invalid_request(
    client: TestClient, make_api_client: MakeClient
) -> None:
    issued = make_api_client("log:read")
    # RFC 6749 §3.1: a parameter sent without a value counts as omitted.
    for form in [{"scope": "log:read"}, {"grant_type": ""}]:
        response = client.post(
            "/auth/token", auth=(issued.client_id, issued.client_secret), data=form
        )
        assert_problem(
            response, INVALID_REQUEST, extensions={"error": "invalid_request"}, case=form
        )


def test_repeated_grant_type_is_invalid_request(
    client: TestClient, make_api_client: MakeClient
) -> None:
    issued = make_api_client("log:read")
    response = client.post(
        "/auth/token",
        auth=(issued.client_id, issued.client_secret),
        content=b"grant_type=client_credentials&grant_type=client_credentials",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_problem(response, INVALID_REQUEST, extensions={"error": "invalid_request"})


def test_other_grant_types_are_unsupported(client: TestClient, make_api_client: MakeClient) -> None:
    issued = make_api_client("log:read")
    for grant_type in ["password", "authorization_code", "Client_Credentials"]:
        response = request_token(client, issued, grant_type=grant_type)
        assert_problem(
            response,
            UNSUPPORTED_GRANT_TYPE,
            extensions={"error": "unsupported_grant_type"},
            case=grant_type,
        )


# -------------------------------------------------------------------- bearer tokens


def test_token_opens_the_protected_route(
    client: TestClient, one_entry: None, make_api_client: MakeClient
) -> None:
    token = access_token(client, make_api_client("log:read"))
    response = client.get(ENTRY, headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.json()["entry"] == {"kind": "test/1", "n": 0}


def test_no_token_is_401_with_a_bare_challenge(client: TestClient, one_entry: None) -> None:
    response = client.get(ENTRY)
    body = assert_problem(response, UNAUTHORIZED, instance=ENTRY)
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    # RFC 6750 §3.1: no error code when the request carried no credentials.
    assert "error=" not in challenge
    assert 'scope="log:read"' in challenge
    assert "error" not in body


def test_malformed_authorization_is_401_invalid_token(client: TestClient, one_entry: None) -> None:
    for authorization in ["Bearer", "Bearer not-a-jwt", "Bearer a.b.c", "Token abc", "Basic YTpi"]:
        response = client.get(ENTRY, headers={"Authorization": authorization})
        assert_problem(
            response, UNAUTHORIZED, extensions={"error": "invalid_token"}, case=authorization
        )
        assert 'error="invalid_token"' in response.headers["www-authenticate"], authorization


def test_token_signed_with_another_key_is_401(
    client: TestClient, one_entry: None, forge_token: Callable[..., str]
) -> None:
    token = forge_token(key=secrets.token_bytes(32))
    response = client.get(ENTRY, headers=bearer(token))
    body = assert_problem(response, UNAUTHORIZED, extensions={"error": "invalid_token"})
    assert "signature" in body["detail"]
    assert response.headers["www-authenticate"].startswith("Bearer ")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_expired_token_is_401(
    client: TestClient, one_entry: None, forge_token: Callable[..., str]
) -> None:
    now = int(time.time())
    token = forge_token(iat=now - 7200, exp=now - 3600)
    response = client.get(ENTRY, headers=bearer(token))
    body = assert_problem(response, UNAUTHORIZED, extensions={"error": "invalid_token"})
    assert "expired" in body["detail"]
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_token_of_another_issuer_is_401(
    client: TestClient, one_entry: None, forge_token: Callable[..., str]
) -> None:
    token = forge_token(iss="carbonledger.local/log-someone-else")
    response = client.get(ENTRY, headers=bearer(token))
    body = assert_problem(response, UNAUTHORIZED, extensions={"error": "invalid_token"})
    assert "issued by another log" in body["detail"]


def test_token_missing_a_claim_is_401(
    client: TestClient, one_entry: None, forge_token: Callable[..., str]
) -> None:
    for claim in ["iss", "sub", "org", "scope", "iat", "exp", "jti"]:
        response = client.get(ENTRY, headers=bearer(forge_token(drop=(claim,))))
        assert_problem(response, UNAUTHORIZED, extensions={"error": "invalid_token"}, case=claim)


def test_token_with_claims_of_the_wrong_type_is_401(
    client: TestClient, one_entry: None, forge_token: Callable[..., str]
) -> None:
    wrong_types: list[dict[str, Any]] = [
        {"org": 7},
        {"scope": ["log:read"]},
        {"sub": 1},
        {"exp": "soon"},
    ]
    for claims in wrong_types:
        response = client.get(ENTRY, headers=bearer(forge_token(**claims)))
        assert_problem(response, UNAUTHORIZED, extensions={"error": "invalid_token"}, case=claims)


def test_unsigned_token_is_401(client: TestClient, one_entry: None, registry: Registry) -> None:
    now = int(time.time())
    claims = {
        "iss": registry.signer.name,
        "sub": "cl_x",
        "org": "o",
        "scope": "log:read",
        "iat": now,
        "exp": now + 60,
        "jti": "j",
    }
    token = jwt.encode(claims, key="", algorithm="none")
    response = client.get(ENTRY, headers=bearer(token))
    assert_problem(response, UNAUTHORIZED, extensions={"error": "invalid_token"})


def test_the_forging_helper_makes_tokens_the_service_accepts(
    client: TestClient, one_entry: None, forge_token: Callable[..., str]
) -> None:
    # Guards the negative tests above: each differs from an accepted token in one claim.
    assert client.get(ENTRY, headers=bearer(forge_token())).status_code == 200


def test_missing_scope_is_403_insufficient_scope(
    client: TestClient, one_entry: None, make_api_client: MakeClient
) -> None:
    token = access_token(client, make_api_client("admin"))
    response = client.get(ENTRY, headers=bearer(token))
    body = assert_problem(response, FORBIDDEN, extensions={"error": "insufficient_scope"})
    assert "log:read" in body["detail"]
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="log:read"' in challenge


def test_narrowed_token_loses_the_dropped_scope(
    client: TestClient, one_entry: None, make_api_client: MakeClient
) -> None:
    token = access_token(client, make_api_client("log:read", "admin"), scope="admin")
    assert_problem(client.get(ENTRY, headers=bearer(token)), FORBIDDEN)


def test_authentication_comes_before_parameter_validation(
    client: TestClient, make_api_client: MakeClient
) -> None:
    # Anonymous callers learn nothing about a protected route's parameters.
    assert_problem(client.get("/v1/log/entries/-1"), UNAUTHORIZED)
    token = access_token(client, make_api_client("log:read"))
    body = assert_problem(client.get("/v1/log/entries/-1", headers=bearer(token)), VALIDATION_ERROR)
    assert [(e["location"], e["field"]) for e in body["errors"]] == [("path", "index")]
