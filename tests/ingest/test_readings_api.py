"""`POST /v1/readings`, `GET /v1/meters/{id}/readings|energy|evidence` over HTTP."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from meter_support import T0, MeterKeyPair, assert_problem, new_key, sign, snapshot, stream

from api.problems import (
    BATCH_TOO_LARGE,
    FORBIDDEN,
    NOT_OWNER,
    PAYLOAD_TOO_LARGE,
    RANGE_INVALID,
    VALIDATION_ERROR,
)
from ledger.log.canonical import parse_entry
from ledger.registry import Registry

Headers = Callable[..., tuple[dict[str, str], str]]

ALL = ("meters:write", "meters:read", "readings:write", "readings:read", "audit:read")
SOLAR = {
    "id": "pv-1",
    "role": "generation",
    "location": {"province": "CN-JS", "gridRegion": "east"},
    "energySource": "solar",
    "capacityW": 10_000,
}


def _setup(client: TestClient, headers: dict[str, str]) -> MeterKeyPair:
    assert client.post("/v1/meters", json=SOLAR, headers=headers).status_code == 201
    key = new_key()
    response = client.post(
        "/v1/meters/pv-1/keys",
        json={"publicKey": key.spki_b64, "validFrom": "2026-01-01T00:00:00Z"},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return key


def test_batch_answers_per_item(
    api_client: TestClient, auth_headers: Headers, registry: Registry
) -> None:
    headers, _ = auth_headers(*ALL)
    key = _setup(api_client, headers)
    items = stream(key, "pv-1", 3)
    size = registry.log.head().size
    bad = sign(key, "pv-1", 9, T0 + 9000, 50)

    response = api_client.post(
        "/v1/readings", json={"readings": [*items, items[0], bad]}, headers=headers
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["duplicate"], body["rejected"]) == (3, 1, 1)
    results = body["results"]
    assert [r["status"] for r in results] == ["accepted"] * 3 + ["duplicate", "rejected"]
    assert [r["index"] for r in results[:4]] == [size, size + 1, size + 2, size]
    assert results[4]["reason"] == "register-decreased"
    assert results[0]["implausible"] is False
    assert parse_entry(registry.log.entry(size))["payload"] == items[0]["payload"]


def test_scopes_and_organisations(
    api_client: TestClient, auth_headers: Headers, registry: Registry
) -> None:
    owner, _ = auth_headers(*ALL)
    key = _setup(api_client, owner)
    items = stream(key, "pv-1", 2)
    reader_only, _ = auth_headers("readings:read")
    assert_problem(
        api_client.post("/v1/readings", json={"readings": items}, headers=reader_only), FORBIDDEN
    )

    other, _ = auth_headers(*ALL, organisation="Other Power")
    before = snapshot(registry)
    response = api_client.post("/v1/readings", json={"readings": items}, headers=other)
    assert [r["reason"] for r in response.json()["results"]] == ["meter-not-owned"] * 2
    assert snapshot(registry) == before
    for path in (
        "readings",
        "energy?from=2026-06-01T00:00:00Z&to=2026-06-02T00:00:00Z",
        "evidence",
    ):
        assert_problem(api_client.get(f"/v1/meters/pv-1/{path}", headers=other), NOT_OWNER)


def test_readings_are_paginated_and_filtered_by_time(
    api_client: TestClient, auth_headers: Headers
) -> None:
    headers, _ = auth_headers(*ALL)
    key = _setup(api_client, headers)
    items = stream(key, "pv-1", 7)
    assert (
        api_client.post("/v1/readings", json={"readings": items}, headers=headers).json()[
            "accepted"
        ]
        == 7
    )

    seen, after = [], None
    while True:
        params: dict[str, object] = {"limit": 3}
        if after is not None:
            params["after"] = after
        page = api_client.get("/v1/meters/pv-1/readings", params=params, headers=headers).json()
        seen += [r["envelope"] for r in page["readings"]]
        after = page["nextAfter"]
        if after is None:
            break
    assert seen == items

    window = api_client.get(
        "/v1/meters/pv-1/readings",
        params={"from": "2026-06-01T00:15:00Z", "to": "2026-06-01T00:45:00Z"},
        headers=headers,
    ).json()
    assert [r["seq"] for r in window["readings"]] == [2, 3]


def test_energy_per_hour(api_client: TestClient, auth_headers: Headers) -> None:
    headers, _ = auth_headers(*ALL)
    key = _setup(api_client, headers)
    # 00:30 → 01:30 adds 90 Wh: 45 Wh fall in each hour.
    items = [sign(key, "pv-1", 1, T0 + 1800, 1000), sign(key, "pv-1", 2, T0 + 5400, 1090)]
    api_client.post("/v1/readings", json={"readings": items}, headers=headers)
    response = api_client.get(
        "/v1/meters/pv-1/energy",
        params={"from": "2026-06-01T00:00:00Z", "to": "2026-06-01T03:00:00Z", "interval": "hour"},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    intervals = response.json()["intervals"]
    assert [(i["start"], i["importWh"], i["coveredSeconds"]) for i in intervals] == [
        ("2026-06-01T00:00:00Z", 45, 1800),
        ("2026-06-01T01:00:00Z", 45, 1800),
        ("2026-06-01T02:00:00Z", 0, 0),
    ]
    misaligned = api_client.get(
        "/v1/meters/pv-1/energy",
        params={"from": "2026-06-01T00:10:00Z", "to": "2026-06-01T03:00:00Z"},
        headers=headers,
    )
    assert_problem(misaligned, RANGE_INVALID)
    assert_problem(
        api_client.get(
            "/v1/meters/pv-1/energy",
            params={
                "from": "2026-06-01T00:00:00Z",
                "to": "2026-06-01T03:00:00Z",
                "interval": "week",
            },
            headers=headers,
        ),
        VALIDATION_ERROR,
    )


def test_evidence_is_listed_for_auditors(api_client: TestClient, auth_headers: Headers) -> None:
    headers, _ = auth_headers(*ALL)
    key = _setup(api_client, headers)
    api_client.post(
        "/v1/readings", json={"readings": [sign(key, "pv-1", 1, T0, 10)]}, headers=headers
    )
    conflicting = sign(key, "pv-1", 1, T0, 11)
    result = api_client.post(
        "/v1/readings", json={"readings": [conflicting]}, headers=headers
    ).json()
    assert result["results"][0]["reason"] == "equivocation"

    no_audit, _ = auth_headers("readings:read")
    assert_problem(api_client.get("/v1/meters/pv-1/evidence", headers=no_audit), FORBIDDEN)
    listed = api_client.get("/v1/meters/pv-1/evidence", headers=headers).json()
    assert [e["envelope"] for e in listed["evidence"]] == [conflicting]
    regulator, _ = auth_headers("audit:read", "admin", organisation="Regulator")
    assert api_client.get("/v1/meters/pv-1/evidence", headers=regulator).json() == listed


def test_the_batch_limit_is_a_problem(
    api_client: TestClient, auth_headers: Headers, registry: Registry
) -> None:
    headers, _ = auth_headers(*ALL)
    key = _setup(api_client, headers)
    registry_settings = api_client.app.state.registry.settings  # type: ignore[attr-defined]
    registry_settings.max_readings_per_batch = 2
    before = snapshot(registry)
    response = api_client.post(
        "/v1/readings", json={"readings": stream(key, "pv-1", 3)}, headers=headers
    )
    assert_problem(response, BATCH_TOO_LARGE)
    assert snapshot(registry) == before


def test_the_readings_route_has_its_own_body_limit(
    api_client: TestClient, auth_headers: Headers, registry: Registry
) -> None:
    headers, _ = auth_headers(*ALL)
    # ~1.2 MB: over the general 1 MiB limit, under the 8 MiB limit of POST /v1/readings.
    items = ["x" * 300] * 4000
    before = snapshot(registry)
    assert_problem(
        api_client.post("/v1/meters", json={**SOLAR, "pad": items}, headers=headers),
        PAYLOAD_TOO_LARGE,
    )
    response = api_client.post("/v1/readings", json={"readings": items}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["rejected"] == 4000
    assert {r["reason"] for r in response.json()["results"]} == {"unsupported-format"}
    assert snapshot(registry) == before
