"""Service start-up: it refuses to run half-configured, and says what to do."""

from __future__ import annotations

import stat

import pytest
from api_helpers import access_token, bearer
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import StartupError, create_app
from api.security import TOKEN_SECRET_BYTES, ensure_token_secret
from api.settings import ApiSettings
from ledger.access.clients import create_client
from ledger.registry import Registry


def test_start_on_an_uninitialised_registry_names_init(api_settings: ApiSettings) -> None:
    app = create_app(api_settings)
    with pytest.raises(StartupError, match=r"carbonledger init"), TestClient(app):
        pass


def test_start_without_a_token_key_names_init(
    registry: Registry, api_settings: ApiSettings
) -> None:
    assert not api_settings.resolved_token_secret_file().exists()
    with (
        pytest.raises(StartupError, match=r"carbonledger init"),
        TestClient(create_app(api_settings)),
    ):
        pass


def test_start_refuses_a_token_key_readable_by_others(
    registry: Registry, api_settings: ApiSettings
) -> None:
    path = ensure_token_secret(api_settings)
    assert path is not None
    path.chmod(0o644)
    with (
        pytest.raises(StartupError, match=r"readable by others"),
        TestClient(create_app(api_settings)),
    ):
        pass


def test_ensure_token_secret_creates_a_private_key_once(api_settings: ApiSettings) -> None:
    path = ensure_token_secret(api_settings)

    assert path == api_settings.resolved_token_secret_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    content = path.read_bytes()
    assert len(bytes.fromhex(content.decode())) == TOKEN_SECRET_BYTES
    assert ensure_token_secret(api_settings) == path
    assert path.read_bytes() == content, "an existing key is never replaced"


def test_token_key_from_the_environment_needs_no_file(
    registry: Registry, api_settings: ApiSettings
) -> None:
    settings = api_settings.model_copy(update={"token_secret": SecretStr("k" * 40)})
    assert ensure_token_secret(settings) is None
    assert not settings.resolved_token_secret_file().exists()
    issued = create_client(registry.database, "Acme", ["log:read"])
    registry.log.append([{"kind": "test/1"}])

    with TestClient(create_app(settings)) as client:
        token = access_token(client, issued)
        assert client.get("/v1/log/entries/0", headers=bearer(token)).status_code == 200

    # Tokens are bound to the key: a service with another key refuses them.
    other = api_settings.model_copy(update={"token_secret": SecretStr("z" * 40)})
    with TestClient(create_app(other)) as client:
        assert client.get("/v1/log/entries/0", headers=bearer(token)).status_code == 401


def test_a_short_token_key_is_refused(registry: Registry, api_settings: ApiSettings) -> None:
    settings = api_settings.model_copy(update={"token_secret": SecretStr("too-short")})
    with pytest.raises(StartupError, match=r"at least 32"), TestClient(create_app(settings)):
        pass


def test_shutdown_releases_the_database(registry: Registry, api_settings: ApiSettings) -> None:
    ensure_token_secret(api_settings)
    app = create_app(api_settings)
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200
        engine = app.state.registry.database.engine
        assert engine.pool.checkedin() >= 1
    assert engine.pool.checkedin() == 0
