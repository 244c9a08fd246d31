"""Helpers for the meter and ingestion tests (tests/meters, tests/ingest).

Signing uses `cryptography` with `ledger.meters.readings` directly, so these tests do not depend
on the device-side `meter_signing` package. The fixtures at the bottom are imported by the
conftest files of both folders (pytest registers imported fixture functions).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select

from api.app import create_app
from api.problems import PROBLEM_MEDIA_TYPE, ProblemType
from api.security import ensure_token_secret
from api.settings import ApiSettings
from ledger.access.clients import IssuedClient, create_client
from ledger.access.models import Organisation
from ledger.log.canonical import canonical_json
from ledger.meters.entries import EnergySource, GridRegion, MeterRole
from ledger.meters.models import Reading, ReadingEvidence
from ledger.meters.readings import b64url, key_id, public_key_spki
from ledger.meters.registration import MeterSpec, register_meter
from ledger.registry import Registry
from ledger.settings import LedgerSettings

EPOCH = datetime(2026, 6, 1, tzinfo=UTC)
T0 = int(EPOCH.timestamp())
"""A fixed start for reading streams, well in the past of any test run."""

PrivateKey = Ed25519PrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class MeterKeyPair:
    alg: str
    private: PrivateKey

    @property
    def spki(self) -> bytes:
        return public_key_spki(self.private.public_key())

    @property
    def key_id(self) -> str:
        return key_id(self.spki)

    @property
    def spki_b64(self) -> str:
        return base64.b64encode(self.spki).decode()


def new_key(alg: str = "Ed25519") -> MeterKeyPair:
    if alg == "Ed25519":
        return MeterKeyPair(alg, Ed25519PrivateKey.generate())
    assert alg == "ES256"
    return MeterKeyPair(alg, ec.generate_private_key(ec.SECP256R1()))


def payload(meter: str, seq: int, time: int, import_wh: int, export_wh: int = 0) -> dict[str, Any]:
    return {
        "meter": meter,
        "seq": seq,
        "time": datetime.fromtimestamp(time, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "importWh": import_wh,
        "exportWh": export_wh,
    }


def sign_payload(key: MeterKeyPair, body: dict[str, Any]) -> dict[str, Any]:
    """A DESIGN §4.3 envelope over any payload object (also malformed ones, for tests)."""
    message = canonical_json(body)
    if isinstance(key.private, Ed25519PrivateKey):
        signature = key.private.sign(message)
    else:
        r, s = decode_dss_signature(key.private.sign(message, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return {"payload": body, "alg": key.alg, "sig": b64url(signature)}


def sign(
    key: MeterKeyPair, meter: str, seq: int, time: int, import_wh: int, export_wh: int = 0
) -> dict[str, Any]:
    return sign_payload(key, payload(meter, seq, time, import_wh, export_wh))


def stream(
    key: MeterKeyPair,
    meter: str,
    count: int,
    *,
    start_seq: int = 1,
    start: int = T0,
    step: int = 900,
) -> list[dict[str, Any]]:
    """`count` valid readings, 15 minutes and 100 Wh apart."""
    return [
        sign(key, meter, start_seq + n, start + n * step, 100 * (start_seq + n))
        for n in range(count)
    ]


# --------------------------------------------------------------------------- state


@dataclass(frozen=True)
class Snapshot:
    """Everything an ingestion may change: the log head and the reading rows."""

    size: int
    root: bytes
    readings: int
    evidence: int


def snapshot(registry: Registry) -> Snapshot:
    head = registry.log.head()
    with registry.database.read() as session:
        readings = session.execute(select(func.count()).select_from(Reading)).scalar_one()
        evidence = session.execute(select(func.count()).select_from(ReadingEvidence)).scalar_one()
    return Snapshot(head.size, head.root, readings, evidence)


def new_organisation(registry: Registry, name: str | None = None) -> str:
    issued = create_client(registry.database, name or f"org-{uuid.uuid4().hex[:8]}", ["log:read"])
    with registry.database.read() as session:
        assert session.get(Organisation, issued.organisation_id) is not None
    return issued.organisation_id


def generation_spec(meter_id: str, capacity_w: int = 10_000) -> MeterSpec:
    return MeterSpec(
        meter_id=meter_id,
        role=MeterRole.GENERATION,
        province="CN-JS",
        grid_region=GridRegion.EAST,
        energy_source=EnergySource.SOLAR,
        capacity_w=capacity_w,
    )


def consumption_spec(meter_id: str) -> MeterSpec:
    return MeterSpec(
        meter_id=meter_id,
        role=MeterRole.CONSUMPTION,
        province="CN-GD",
        grid_region=GridRegion.SOUTH,
    )


def add_meter(registry: Registry, organisation_id: str, spec: MeterSpec) -> str:
    return register_meter(registry.log, organisation_id, spec).meter_id


# ------------------------------------------------------------------------------ API


def token_for(client: TestClient, issued: IssuedClient) -> dict[str, str]:
    response = client.post(
        "/auth/token",
        auth=(issued.client_id, issued.client_secret),
        data={"grant_type": "client_credentials"},
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def assert_problem(response: Response, kind: ProblemType) -> dict[str, Any]:
    assert response.status_code == kind.status, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE, response.text
    body: dict[str, Any] = response.json()
    assert body["type"] == kind.uri, response.text
    assert isinstance(body.get("detail"), str) and body["detail"], response.text
    return body


@pytest.fixture
def api_app(registry: Registry, settings: LedgerSettings) -> FastAPI:
    api_settings = ApiSettings(**settings.model_dump())
    ensure_token_secret(api_settings)
    return create_app(api_settings)


@pytest.fixture
def api_client(api_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(api_app) as test_client:
        yield test_client


@pytest.fixture
def auth_headers(
    registry: Registry, api_client: TestClient
) -> Callable[..., tuple[dict[str, str], str]]:
    """Headers with a bearer token of a new client; returns them and the organisation id."""

    def make(*scopes: str, organisation: str = "Acme Energy") -> tuple[dict[str, str], str]:
        issued = create_client(registry.database, organisation, scopes)
        return token_for(api_client, issued), issued.organisation_id

    return make
