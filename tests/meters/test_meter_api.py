"""`/v1/meters`: registration, keys and revocation over HTTP, scoped to the organisation."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from meter_support import assert_problem, new_key, snapshot

from api.problems import (
    FORBIDDEN,
    KEY_ALREADY_REVOKED,
    KEY_EXISTS,
    METER_EXISTS,
    METER_REQUEST_INVALID,
    NOT_FOUND,
    NOT_OWNER,
    VALIDATION_ERROR,
    ProblemType,
)
from ledger.log.canonical import parse_entry
from ledger.registry import Registry

Headers = Callable[..., tuple[dict[str, str], str]]

SOLAR = {
    "id": "pv-1",
    "role": "generation",
    "location": {"province": "CN-JS", "gridRegion": "east"},
    "energySource": "solar",
    "capacityW": 8_000,
}


def test_register_read_and_add_keys(
    api_client: TestClient, auth_headers: Headers, registry: Registry
) -> None:
    headers, organisation = auth_headers("meters:write", "meters:read")
    created = api_client.post("/v1/meters", json=SOLAR, headers=headers)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["organisationId"] == organisation
    assert body["capacityW"] == 8_000 and body["keys"] == []
    assert parse_entry(registry.log.entry(body["logIndex"]))["kind"] == "meter.registered/1"

    key = new_key("ES256")
    added = api_client.post(
        "/v1/meters/pv-1/keys",
        json={"publicKey": key.spki_b64, "validFrom": "2026-01-01T00:00:00Z"},
        headers=headers,
    )
    assert added.status_code == 201, added.text
    assert added.json()["keyId"] == key.key_id
    assert added.json()["alg"] == "ES256"
    assert added.json()["validFrom"] == "2026-01-01T00:00:00Z"

    revoked = api_client.post(
        f"/v1/meters/pv-1/keys/{key.key_id}/revoke",
        json={"revokedFrom": "2026-02-01T00:00:00Z"},
        headers=headers,
    )
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revokedFrom"] == "2026-02-01T00:00:00Z"
    leaf = parse_entry(registry.log.entry(revoked.json()["revokedLogIndex"]))
    assert leaf["kind"] == "meter.key-revoked/1" and leaf["keyId"] == key.key_id

    read = api_client.get("/v1/meters/pv-1", headers=headers)
    assert read.status_code == 200
    assert [k["keyId"] for k in read.json()["keys"]] == [key.key_id]
    assert read.json()["keys"][0]["revokedFrom"] == "2026-02-01T00:00:00Z"
    assert registry.log.head().size == 3


def test_another_organisation_gets_403_and_changes_nothing(
    api_client: TestClient, auth_headers: Headers, registry: Registry
) -> None:
    owner, _ = auth_headers("meters:write", "meters:read")
    intruder, _ = auth_headers("meters:write", "meters:read", organisation="Other Power")
    assert api_client.post("/v1/meters", json=SOLAR, headers=owner).status_code == 201
    key = new_key()
    assert (
        api_client.post(
            "/v1/meters/pv-1/keys", json={"publicKey": key.spki_b64}, headers=owner
        ).status_code
        == 201
    )
    before = snapshot(registry)

    assert_problem(api_client.get("/v1/meters/pv-1", headers=intruder), NOT_OWNER)
    assert_problem(
        api_client.post(
            "/v1/meters/pv-1/keys", json={"publicKey": new_key().spki_b64}, headers=intruder
        ),
        NOT_OWNER,
    )
    assert_problem(
        api_client.post(f"/v1/meters/pv-1/keys/{key.key_id}/revoke", headers=intruder),
        NOT_OWNER,
    )
    assert snapshot(registry) == before


def test_missing_scope_is_403_and_unknown_meter_404(
    api_client: TestClient, auth_headers: Headers
) -> None:
    reader, _ = auth_headers("meters:read")
    assert_problem(api_client.post("/v1/meters", json=SOLAR, headers=reader), FORBIDDEN)
    assert_problem(api_client.get("/v1/meters/nope", headers=reader), NOT_FOUND)
    writer, _ = auth_headers("meters:write")
    assert_problem(api_client.get("/v1/meters/nope", headers=writer), FORBIDDEN)
    assert api_client.get("/v1/meters/nope").status_code == 401


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        ({"energySource": None}, METER_REQUEST_INVALID),
        ({"capacityW": 0}, VALIDATION_ERROR),
        ({"role": "storage"}, VALIDATION_ERROR),
        ({"location": {"province": "Jiangsu", "gridRegion": "east"}}, VALIDATION_ERROR),
        ({"id": "has space"}, VALIDATION_ERROR),
    ],
)
def test_invalid_registrations(
    api_client: TestClient,
    auth_headers: Headers,
    registry: Registry,
    change: dict[str, object],
    kind: ProblemType,
) -> None:
    headers, _ = auth_headers("meters:write")
    before = snapshot(registry)
    response = api_client.post("/v1/meters", json={**SOLAR, **change}, headers=headers)
    assert_problem(response, kind)
    assert snapshot(registry) == before


def test_conflicts_are_409(api_client: TestClient, auth_headers: Headers) -> None:
    headers, _ = auth_headers("meters:write")
    assert api_client.post("/v1/meters", json=SOLAR, headers=headers).status_code == 201
    assert_problem(api_client.post("/v1/meters", json=SOLAR, headers=headers), METER_EXISTS)
    key = new_key()
    path = "/v1/meters/pv-1/keys"
    assert api_client.post(path, json={"publicKey": key.spki_b64}, headers=headers).is_success
    assert_problem(
        api_client.post(path, json={"publicKey": key.spki_b64}, headers=headers), KEY_EXISTS
    )
    revoke = f"/v1/meters/pv-1/keys/{key.key_id}/revoke"
    assert api_client.post(revoke, headers=headers).status_code == 200
    assert_problem(api_client.post(revoke, headers=headers), KEY_ALREADY_REVOKED)
    assert_problem(
        api_client.post(path, json={"publicKey": "bm90IGEga2V5"}, headers=headers),
        METER_REQUEST_INVALID,
    )
