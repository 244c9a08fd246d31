"""Fixtures for the matching-report tests: the API app with the reports router mounted."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from meter_support import token_for

from api.app import create_app
from api.routers import reports
from api.security import ensure_token_secret
from api.settings import ApiSettings
from ledger.access.clients import create_client
from ledger.registry import Registry
from ledger.settings import LedgerSettings


@pytest.fixture
def reports_app(registry: Registry, settings: LedgerSettings) -> FastAPI:
    api_settings = ApiSettings(**settings.model_dump())
    ensure_token_secret(api_settings)
    app = create_app(api_settings)
    # Until api/app.py wires the router; afterwards the app already serves the route.
    if not any(getattr(route, "path", None) == "/v1/reports/matching" for route in app.routes):
        app.include_router(reports.router)
    return app


@pytest.fixture
def reports_client(reports_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(reports_app) as client:
        yield client


@pytest.fixture
def headers_for(
    registry: Registry, reports_client: TestClient
) -> Callable[..., tuple[dict[str, str], str]]:
    """Bearer headers of a new client of `organisation`; returns them and its organisation id."""

    def make(*scopes: str, organisation: str = "Acme Energy") -> tuple[dict[str, str], str]:
        issued = create_client(registry.database, organisation, scopes)
        return token_for(reports_client, issued), issued.organisation_id

    return make
