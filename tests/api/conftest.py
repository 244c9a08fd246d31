"""Fixtures for the HTTP API: an initialised registry served by the real app, per backend.

The app runs through `TestClient` as a context manager, so its lifespan (migrations,
registry, token key) runs exactly as under uvicorn. Tests write to the log through the
fixture's own `registry` (a second engine on the same database), as another process would.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
from api_helpers import MAX_REQUEST_BYTES
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.security import ensure_token_secret, load_token_secret
from api.settings import ApiSettings
from ledger.access.clients import IssuedClient, create_client, current_credential
from ledger.registry import Registry
from ledger.settings import LedgerSettings

"""Small, so the 413 tests need only a few kilobytes."""


@pytest.fixture
def api_settings(settings: LedgerSettings) -> ApiSettings:
    return ApiSettings(**settings.model_dump(), max_request_bytes=MAX_REQUEST_BYTES)


@pytest.fixture
def app(registry: Registry, api_settings: ApiSettings) -> FastAPI:
    """The application over the initialised `registry` (as after `carbonledger init`)."""
    ensure_token_secret(api_settings)
    return create_app(api_settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def make_api_client(registry: Registry) -> Callable[..., IssuedClient]:
    def make(*scopes: str, organisation: str = "Acme Energy") -> IssuedClient:
        return create_client(registry.database, organisation, scopes)

    return make


@pytest.fixture
def token_key(app: FastAPI, api_settings: ApiSettings) -> bytes:
    """The service's real HS256 key, for forging tokens that differ in one claim only."""
    return load_token_secret(api_settings)


@pytest.fixture
def forge_token(registry: Registry, token_key: bytes) -> Callable[..., str]:
    """A token with valid claims for a `log:read` client; keyword arguments override them."""

    # A real, enabled client: the service checks that a token's client still stands.
    real = create_client(registry.database, "Forged Org", ["log:read"])
    credential = current_credential(registry.database, real.client_id)

    def forge(key: bytes | None = None, drop: tuple[str, ...] = (), **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": registry.signer.name,
            "sub": real.client_id,
            "org": real.organisation_id,
            "scope": "log:read",
            "iat": now,
            "exp": now + 600,
            "jti": "forged-token",
            "cred": credential,
        }
        claims.update(overrides)
        for name in drop:
            del claims[name]
        return jwt.encode(claims, key if key is not None else token_key, algorithm="HS256")

    return forge
