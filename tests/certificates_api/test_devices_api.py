"""`/v1/devices`: registration by the owner, approval by the issuer, issuance requests."""

from __future__ import annotations

from collections.abc import Callable

from cert_api_support import device_body, log_size, org_headers
from certificate_support import producer_scenario
from fastapi.testclient import TestClient
from meter_support import T0, add_meter, assert_problem, consumption_spec, generation_spec

from api.problems import (
    CERTIFICATE_REQUEST_INVALID,
    FORBIDDEN,
    NOT_FOUND,
    NOT_OWNER,
    STATE_CONFLICT,
    UNAUTHORIZED,
    VALIDATION_ERROR,
)
from ledger.credentials.data_integrity import verify_statement
from ledger.log.canonical import parse_entry
from ledger.registry import Registry
from ledger.times import format_utc

HeaderMaker = Callable[..., tuple[dict[str, str], str]]


def test_register_list_read_and_approve(
    api_client: TestClient, auth_headers: HeaderMaker, registry: Registry
) -> None:
    owner, organisation = auth_headers("devices:write", "devices:read")
    for meter in ("pv-a", "pv-b", "pv-c"):
        add_meter(registry, organisation, generation_spec(meter))
    created = api_client.post("/v1/devices", json=device_body("dev-b", ["pv-b"]), headers=owner)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "pending" and body["organisationId"] == organisation
    assert body["approvedAt"] is None and body["meters"] == ["pv-b"]
    entry = parse_entry(registry.log.entry(body["logIndex"]))
    assert entry["kind"] == "device.registered/1" and entry["device"] == "dev-b"
    assert entry["commissioningDate"] == "2025-03-01"
    for device, meter in (("dev-a", "pv-a"), ("dev-c", "pv-c")):
        response = api_client.post("/v1/devices", json=device_body(device, [meter]), headers=owner)
        assert response.status_code == 201, response.text

    issuer, _ = auth_headers("issuer", organisation="Registry operator")
    approved = api_client.post("/v1/devices/dev-c/approve", headers=issuer)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    statement = parse_entry(registry.log.entry(approved.json()["approvedLogIndex"]))
    assert statement["kind"] == "device.approved/1"
    assert (
        verify_statement(statement, trusted_issuer=registry.issuer().did) == registry.issuer().did
    )

    first = api_client.get("/v1/devices", params={"limit": 2}, headers=owner).json()
    assert [device["id"] for device in first["devices"]] == ["dev-a", "dev-b"]
    assert first["nextAfter"] == "dev-b"
    rest = api_client.get(
        "/v1/devices", params={"limit": 2, "after": first["nextAfter"]}, headers=owner
    ).json()
    assert [device["id"] for device in rest["devices"]] == ["dev-c"] and rest["nextAfter"] is None
    pending = api_client.get("/v1/devices", params={"status": "pending"}, headers=owner).json()
    assert [device["id"] for device in pending["devices"]] == ["dev-a", "dev-b"]
    approved_only = api_client.get("/v1/devices", params={"status": "approved"}, headers=owner)
    assert [device["id"] for device in approved_only.json()["devices"]] == ["dev-c"]

    read = api_client.get("/v1/devices/dev-c", headers=owner)
    assert read.status_code == 200 and read.json()["approvedAt"] is not None


def test_other_organisations_and_scopes(
    api_client: TestClient, auth_headers: HeaderMaker, registry: Registry
) -> None:
    owner, organisation = auth_headers("devices:write", "devices:read")
    add_meter(registry, organisation, generation_spec("pv-1"))
    assert api_client.post(
        "/v1/devices", json=device_body("d1", ["pv-1"]), headers=owner
    ).is_success
    other, _ = auth_headers("devices:write", "devices:read", organisation="Other Power")
    size = log_size(registry)

    assert_problem(api_client.get("/v1/devices/d1", headers=other), NOT_OWNER)
    assert api_client.get("/v1/devices", headers=other).json()["devices"] == []
    assert_problem(api_client.get("/v1/devices/nope", headers=owner), NOT_FOUND)
    # Another organisation's meter cannot be put under one's own device.
    taken = api_client.post("/v1/devices", json=device_body("d2", ["pv-1"]), headers=other)
    assert_problem(taken, NOT_OWNER)
    assert_problem(api_client.get("/v1/devices"), UNAUTHORIZED)
    reader, _ = auth_headers("devices:read")
    assert_problem(
        api_client.post("/v1/devices", json=device_body("d3", ["pv-1"]), headers=reader), FORBIDDEN
    )
    # Approval is the issuer's: the owner's own write scope is not enough.
    assert_problem(api_client.post("/v1/devices/d1/approve", headers=owner), FORBIDDEN)
    assert log_size(registry) == size

    # The registry issuer sees every organisation's devices, to find the pending ones.
    issuer, _ = auth_headers("issuer", "devices:read", organisation="Registry operator")
    listed = api_client.get("/v1/devices", params={"status": "pending"}, headers=issuer).json()
    assert [device["id"] for device in listed["devices"]] == ["d1"]
    assert api_client.get("/v1/devices/d1", headers=issuer).json()["organisationId"] == organisation


def test_registration_refusals_change_nothing(
    api_client: TestClient, auth_headers: HeaderMaker, registry: Registry
) -> None:
    owner, organisation = auth_headers("devices:write", "devices:read")
    add_meter(registry, organisation, generation_spec("pv-1"))
    add_meter(registry, organisation, consumption_spec("load-1"))
    assert api_client.post(
        "/v1/devices", json=device_body("d1", ["pv-1"]), headers=owner
    ).is_success
    issuer, _ = auth_headers("issuer", organisation="Registry operator")
    assert api_client.post("/v1/devices/d1/approve", headers=issuer).is_success
    size = log_size(registry)

    cases = [
        (device_body("d2", ["pv-1"], energySource="nuclear"), CERTIFICATE_REQUEST_INVALID),
        (device_body("d2", ["load-1"]), CERTIFICATE_REQUEST_INVALID),
        (device_body("d2", ["unknown-meter"]), CERTIFICATE_REQUEST_INVALID),
        (device_body("d1", ["pv-1"]), STATE_CONFLICT),  # the id is taken
        (device_body("d2", ["pv-1"]), STATE_CONFLICT),  # the meter measures d1
        (device_body("bad id!", ["pv-1"]), VALIDATION_ERROR),
        (device_body("d2", []), VALIDATION_ERROR),
    ]
    for body, kind in cases:
        response = api_client.post("/v1/devices", json=body, headers=owner)
        assert_problem(response, kind)
    again = api_client.post("/v1/devices/d1/approve", headers=issuer)
    problem = assert_problem(again, STATE_CONFLICT)
    assert "rule" not in problem  # not a certificate rule: the device's own state
    assert_problem(api_client.post("/v1/devices/ghost/approve", headers=issuer), NOT_FOUND)
    assert log_size(registry) == size


def test_issuance_route_counts_only_anchored_readings_and_refuses_cleanly(
    api_client: TestClient, registry: Registry
) -> None:
    scenario = producer_scenario(registry, hours=6)
    owner = org_headers(api_client, registry, scenario.producer, "devices:write")
    buyer = org_headers(api_client, registry, scenario.buyer, "devices:write")
    request = {
        "from": format_utc(T0),
        "to": format_utc(T0 + 6 * 3600),
        "account": scenario.producer_account,
    }
    size = log_size(registry)

    # Nothing is anchored: every hour is skipped, nothing is written.
    response = api_client.post(
        f"/v1/devices/{scenario.device}/issuance", json=request, headers=owner
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["anchoredSize"] == 0 and body["issuedCount"] == 0 and body["certificates"] == []
    assert body["hoursRequested"] == 6 and body["issuedGec"] == "0.000000"
    assert body["skipped"] == {
        "notOver": 0,
        "flagged": 0,
        "waitingForAnchor": 0,
        "withoutNewProduction": 6,
    }
    assert log_size(registry) == size

    refusals = [
        (owner, {**request, "from": format_utc(T0 + 60)}, CERTIFICATE_REQUEST_INVALID),
        (owner, {**request, "to": format_utc(T0)}, CERTIFICATE_REQUEST_INVALID),
        (owner, {**request, "from": "2026-06-01T00:00:00"}, CERTIFICATE_REQUEST_INVALID),
        (owner, {**request, "account": scenario.buyer_account}, NOT_OWNER),
        (owner, {**request, "account": "00000000-0000-4000-8000-000000000000"}, NOT_FOUND),
        (buyer, request, NOT_OWNER),
    ]
    for headers, payload, kind in refusals:
        refused = api_client.post(
            f"/v1/devices/{scenario.device}/issuance", json=payload, headers=headers
        )
        assert_problem(
            refused,
            kind,
        )
    assert log_size(registry) == size


def test_issuance_needs_an_approved_device(
    api_client: TestClient, auth_headers: HeaderMaker, registry: Registry
) -> None:
    owner, organisation = auth_headers("devices:write", "certificates:write")
    add_meter(registry, organisation, generation_spec("pv-1"))
    assert api_client.post(
        "/v1/devices", json=device_body("d1", ["pv-1"]), headers=owner
    ).is_success
    account = api_client.post("/v1/accounts", json={"name": "main"}, headers=owner).json()["id"]
    size = log_size(registry)
    response = api_client.post(
        "/v1/devices/d1/issuance",
        json={"from": format_utc(T0), "to": format_utc(T0 + 3600), "account": account},
        headers=owner,
    )
    assert "not approved" in assert_problem(response, STATE_CONFLICT)["detail"]
    assert log_size(registry) == size
