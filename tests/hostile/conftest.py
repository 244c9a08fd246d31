"""Fixtures for hostile-input tests: the real app with its default body limits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.security import ensure_token_secret
from api.settings import ApiSettings
from ledger.registry import Registry
from ledger.settings import LedgerSettings


@pytest.fixture
def default_settings(settings: LedgerSettings, monkeypatch: pytest.MonkeyPatch) -> ApiSettings:
    """The service's settings with every limit at its default (1 MiB, 8 MiB for readings);
    no background anchoring or expiry sweep (nothing here needs them)."""
    monkeypatch.setenv("CARBONLEDGER_ANCHOR_ENABLED", "false")
    return ApiSettings(**settings.model_dump(), expiry_sweep_seconds=0)


@pytest.fixture
def default_app(registry: Registry, default_settings: ApiSettings) -> FastAPI:
    ensure_token_secret(default_settings)
    return create_app(default_settings)


@pytest.fixture
def default_client(default_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(default_app) as test_client:
        yield test_client
