"""Disabled and rotated clients: their tokens stop working within seconds, not at expiry.

A stolen token used to be good for 24 hours whatever the operator did. Tokens now name
the secret they were issued for (`cred`), and the service re-reads each client's standing
every CARBONLEDGER_CLIENT_CHECK_SECONDS (`api.security.ClientCheck`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError
from typer.testing import CliRunner

from api.app import create_app
from api.cli.main import app as cli_app
from api.security import ensure_token_secret
from api.settings import ApiSettings
from ledger.access.clients import create_client
from ledger.registry import Registry
from ledger.settings import LedgerSettings

CHECK_SECONDS = 1.0
ENTRY = "/v1/log/entries/0"


@pytest.fixture
def quick_app(
    registry: Registry, settings: LedgerSettings, monkeypatch: pytest.MonkeyPatch
) -> FastAPI:
    monkeypatch.setenv("CARBONLEDGER_ANCHOR_ENABLED", "false")
    api_settings = ApiSettings(
        **settings.model_dump(), expiry_sweep_seconds=0, client_check_seconds=CHECK_SECONDS
    )
    ensure_token_secret(api_settings)
    return create_app(api_settings)


@pytest.fixture
def quick_client(quick_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(quick_app) as test_client:
        yield test_client


def _token(client: TestClient, client_id: str, secret: str) -> str:
    response = client.post(
        "/auth/token", auth=(client_id, secret), data={"grant_type": "client_credentials"}
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def _cli(settings: LedgerSettings, *args: str) -> str:
    env = {
        "CARBONLEDGER_DATA_DIR": str(settings.data_dir),
        "CARBONLEDGER_DATABASE_URL": settings.resolved_database_url(),
    }
    result = CliRunner().invoke(cli_app, list(args), env=env)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout


def _refused_within(client: TestClient, token: str, seconds: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        response = client.get(ENTRY, headers={"Authorization": f"Bearer {token}"})
        if response.status_code == 401:
            assert response.json()["error"] == "invalid_token"
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"the token still worked {seconds} s later")


def _seed(registry: Registry) -> None:
    registry.log.append([{"kind": "test.reading/1", "meter": "m-1", "seq": 0}])


def test_a_disabled_client_is_refused_within_seconds(
    registry: Registry, settings: LedgerSettings, quick_client: TestClient
) -> None:
    _seed(registry)
    thief = create_client(registry.database, "Acme Energy", ["log:read"])
    token = _token(quick_client, thief.client_id, thief.client_secret)
    assert quick_client.get(ENTRY, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    listed = json.loads(_cli(settings, "admin", "client", "list", "--json"))
    assert [row["disabledAt"] for row in listed if row["clientId"] == thief.client_id] == [None]
    _cli(settings, "admin", "client", "disable", thief.client_id)
    assert _refused_within(quick_client, token, CHECK_SECONDS + 2) <= CHECK_SECONDS + 1
    refused = quick_client.post(
        "/auth/token",
        auth=(thief.client_id, thief.client_secret),
        data={"grant_type": "client_credentials"},
    )
    assert refused.status_code == 401
    listed = json.loads(_cli(settings, "admin", "client", "list", "--json"))
    assert [
        row["disabledAt"] is not None for row in listed if row["clientId"] == thief.client_id
    ] == [True]


def test_rotating_ends_the_old_secret_and_its_tokens(
    registry: Registry, settings: LedgerSettings, quick_client: TestClient
) -> None:
    _seed(registry)
    client = create_client(registry.database, "Acme Energy", ["log:read"])
    old_token = _token(quick_client, client.client_id, client.client_secret)
    rotated = json.loads(_cli(settings, "admin", "client", "rotate", client.client_id, "--json"))
    assert rotated["clientSecret"] != client.client_secret
    _refused_within(quick_client, old_token, CHECK_SECONDS + 2)
    old_secret = quick_client.post(
        "/auth/token",
        auth=(client.client_id, client.client_secret),
        data={"grant_type": "client_credentials"},
    )
    assert old_secret.status_code == 401
    new_token = _token(quick_client, client.client_id, rotated["clientSecret"])
    response = quick_client.get(ENTRY, headers={"Authorization": f"Bearer {new_token}"})
    assert response.status_code == 200


def test_token_lifetime_is_at_most_one_hour(tmp_path: Path) -> None:
    assert ApiSettings(data_dir=tmp_path).token_ttl_seconds <= 3600
    with pytest.raises(ValidationError):
        ApiSettings(data_dir=tmp_path, token_ttl_seconds=3601)
