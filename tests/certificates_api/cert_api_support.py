"""Helpers for tests/certificates_api (imported by module name; never collected)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from meter_support import token_for
from sqlalchemy import select

from ledger.access.clients import create_client
from ledger.access.models import Organisation
from ledger.registry import Registry

Headers = dict[str, str]

RETIREMENT: dict[str, Any] = {
    "purpose": "scope2-market-based",
    "reportingPeriod": {"from": "2026-01-01T00:00:00Z", "to": "2027-01-01T00:00:00Z"},
    "consumptionLocation": {"province": "CN-GD", "gridRegion": "south"},
}


def org_headers(
    client: TestClient, registry: Registry, organisation_id: str, *scopes: str
) -> Headers:
    """A bearer token of a new client of an existing organisation (by its id)."""
    with registry.database.read() as session:
        name = session.scalar(select(Organisation.name).where(Organisation.id == organisation_id))
    assert name is not None
    return token_for(client, create_client(registry.database, name, scopes))


def log_size(registry: Registry) -> int:
    return registry.log.head().size


def device_body(device_id: str, meters: list[str], **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": device_id,
        "name": "Rooftop solar, Suzhou",
        "energySource": "solar",
        "technology": "photovoltaic",
        "capacityW": 10_000,
        "commissioningDate": "2025-03-01",
        "location": {"province": "CN-JS", "gridRegion": "east"},
        "meters": meters,
    }
    body.update(overrides)
    return body
