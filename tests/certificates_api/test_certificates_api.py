"""`/v1/certificates`: listing with filters and pages, the credential, and the lifecycle
(split, transfer, retire, withdraw, expire) with its refusals, each of which writes nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from cert_api_support import RETIREMENT, log_size, org_headers
from certificate_support import CAPACITY_W, Scenario, add_readings, issue_all, producer_scenario
from fastapi.testclient import TestClient
from meter_support import EPOCH, T0, add_meter, assert_problem, generation_spec, new_key

from api.problems import (
    CERTIFICATE_REQUEST_INVALID,
    FORBIDDEN,
    NOT_FOUND,
    NOT_OWNER,
    STATE_CONFLICT,
    UNAUTHORIZED,
    VALIDATION_ERROR,
)
from ledger.certificates.devices import DeviceSpec, approve_device, register_device
from ledger.certificates.issuance import IssuanceResult, issue_certificates
from ledger.certificates.rules import HOUR
from ledger.credentials.data_integrity import verify_credential, verify_statement
from ledger.log.canonical import parse_entry
from ledger.meters.entries import EnergySource, GridRegion
from ledger.meters.registration import register_key
from ledger.registry import Registry
from ledger.times import format_utc

HeaderMaker = Callable[..., tuple[dict[str, str], str]]
UNKNOWN = "urn:uuid:00000000-0000-4000-8000-000000000000"
READ_WRITE = ("certificates:read", "certificates:write")


@pytest.fixture
def scenario(registry: Registry) -> Scenario:
    return producer_scenario(registry)


@pytest.fixture
def issued(registry: Registry, scenario: Scenario) -> IssuanceResult:
    result = issue_all(registry, scenario)
    assert len(result.issued) >= 6, result
    return result


def _wind_device(registry: Registry, scenario: Scenario, hours: int) -> IssuanceResult:
    """A second device of the producer, wind this time, issued into the same account."""
    add_meter(registry, scenario.producer, generation_spec("gen-wind", capacity_w=CAPACITY_W))
    key = new_key()
    register_key(
        registry.log, "gen-wind", key.spki, organisation_id=scenario.producer, valid_from=EPOCH
    )
    add_readings(
        registry, scenario.producer, key_pair=key, meter="gen-wind", start=T0, hours=hours, step=900
    )
    spec = DeviceSpec(
        device_id="wind-1",
        name="Coastal wind",
        energy_source=EnergySource.WIND,
        technology="onshore turbine",
        capacity_w=CAPACITY_W,
        commissioning_date=date(2024, 1, 1),
        province="CN-JS",
        grid_region=GridRegion.EAST,
        meters=("gen-wind",),
    )
    register_device(registry.log, scenario.producer, spec)
    approve_device(registry.log, registry.issuer(), "wind-1")
    return issue_certificates(
        registry.log,
        registry.issuer(),
        organisation_id=scenario.producer,
        device_id="wind-1",
        account_id=scenario.producer_account,
        start=T0,
        end=T0 + hours * HOUR,
        anchored_size=registry.log.head().size,
        validity_months=12,
    )


def _ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["certificates"]]


def test_listing_filters_and_pages(
    api_client: TestClient, registry: Registry, scenario: Scenario, issued: IssuanceResult
) -> None:
    wind = _wind_device(registry, scenario, hours=24)
    headers = org_headers(api_client, registry, scenario.producer, *READ_WRITE)
    solar_ids = [item.certificate_id for item in issued.issued]
    wind_ids = [item.certificate_id for item in wind.issued]
    everything = solar_ids + wind_ids  # issuance order is log order

    def listed(**params: Any) -> list[str]:
        return _ids(api_client.get("/v1/certificates", params=params, headers=headers))

    assert listed() == everything
    assert listed(device="solar-1") == solar_ids
    assert listed(device="wind-1") == wind_ids
    assert listed(energySource="wind") == wind_ids
    assert listed(energySource="hydro") == []
    noon = T0 + 12 * HOUR
    in_afternoon = [item.certificate_id for item in issued.issued if item.hour_start >= noon]
    assert listed(device="solar-1", **{"from": format_utc(noon)}) == in_afternoon
    morning = [item.certificate_id for item in issued.issued if item.hour_start < noon]
    assert listed(device="solar-1", to=format_utc(noon)) == morning
    assert listed(account=scenario.producer_account, status="active") == everything
    assert listed(status="retired") == []

    pages: list[str] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 5} | ({"after": after} if after is not None else {})
        page = api_client.get("/v1/certificates", params=params, headers=headers).json()
        assert len(page["certificates"]) <= 5
        pages += [item["id"] for item in page["certificates"]]
        after = page["nextAfter"]
        if after is None:
            break
        assert after == page["certificates"][-1]["logIndex"]
    assert pages == everything

    # A buyer sees none of it, and may not filter by the producer's account.
    buyer = org_headers(api_client, registry, scenario.buyer, *READ_WRITE)
    assert _ids(api_client.get("/v1/certificates", headers=buyer)) == []
    foreign = api_client.get(
        "/v1/certificates", params={"account": scenario.producer_account}, headers=buyer
    )
    assert_problem(foreign, NOT_OWNER)
    for params in ({"limit": 501}, {"status": "lost"}, {"energySource": "coal"}):
        assert_problem(
            api_client.get("/v1/certificates", params=params, headers=headers), VALIDATION_ERROR
        )
    naive = api_client.get(
        "/v1/certificates", params={"from": "2026-06-01T00:00:00"}, headers=headers
    )
    assert_problem(naive, CERTIFICATE_REQUEST_INVALID)
    assert_problem(api_client.get("/v1/certificates"), UNAUTHORIZED)


def test_detail_carries_the_signed_credential_and_gec(
    api_client: TestClient, registry: Registry, scenario: Scenario, issued: IssuanceResult
) -> None:
    headers = org_headers(api_client, registry, scenario.producer, "certificates:read")
    item = max(issued.issued, key=lambda certificate: certificate.volume_wh)
    response = api_client.get(f"/v1/certificates/{item.certificate_id}", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "active" and body["holder"] == scenario.producer
    assert body["volumeWh"] == item.volume_wh == body["serialEnd"] - body["serialStart"]
    assert body["gecEquivalent"] == f"{item.volume_wh // 10**6}.{item.volume_wh % 10**6:06d}"
    assert body["productionStart"] == format_utc(item.hour_start)
    assert body["energySource"] == "solar" and body["retirement"] is None
    verified = verify_credential(body["credential"], trusted_issuer=registry.issuer().did)
    subject = verified.credential["credentialSubject"]
    assert verified.credential["id"] == item.certificate_id
    assert subject["volumeWh"] == body["volumeWh"]
    assert subject["gecEquivalent"] == body["gecEquivalent"]
    assert subject["serial"] == body["serial"]
    assert verified.credential["validUntil"] == body["validUntil"]

    buyer = org_headers(api_client, registry, scenario.buyer, "certificates:read")
    assert_problem(
        api_client.get(f"/v1/certificates/{item.certificate_id}", headers=buyer), NOT_OWNER
    )
    assert_problem(api_client.get(f"/v1/certificates/{UNKNOWN}", headers=headers), NOT_FOUND)
    assert_problem(api_client.get("/v1/certificates/not-an-id", headers=headers), VALIDATION_ERROR)
    issuer = org_headers(api_client, registry, scenario.buyer, "certificates:read", "issuer")
    as_issuer = api_client.get(f"/v1/certificates/{item.certificate_id}", headers=issuer)
    assert as_issuer.status_code == 200 and as_issuer.json()["holder"] == scenario.producer


def test_split_transfer_and_retire(
    api_client: TestClient, registry: Registry, scenario: Scenario, issued: IssuanceResult
) -> None:
    producer = org_headers(api_client, registry, scenario.producer, *READ_WRITE)
    buyer = org_headers(api_client, registry, scenario.buyer, *READ_WRITE)
    item = max(issued.issued, key=lambda certificate: certificate.volume_wh)
    volume = item.volume_wh

    split = api_client.post(
        f"/v1/certificates/{item.certificate_id}/split",
        json={"volumesWh": [1_000, 2_000, volume - 3_000]},
        headers=producer,
    )
    assert split.status_code == 200, split.text
    children = split.json()["children"]
    assert [child["volumeWh"] for child in children] == [1_000, 2_000, volume - 3_000]
    assert all(child["splitFrom"] == item.certificate_id for child in children)
    assert [child["serialStart"] for child in children] == [
        item.serial_start,
        item.serial_start + 1_000,
        item.serial_start + 3_000,
    ]
    parent = api_client.get(f"/v1/certificates/{item.certificate_id}", headers=producer).json()
    assert parent["status"] == "split"
    child_detail = api_client.get(f"/v1/certificates/{children[0]['id']}", headers=producer).json()
    assert child_detail["credential"]["credentialSubject"]["splitFrom"] == item.certificate_id

    # Whole transfer of a part to the buyer.
    moved = api_client.post(
        f"/v1/certificates/{children[1]['id']}/transfer",
        json={"toAccount": scenario.buyer_account},
        headers=producer,
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["remainder"] is None
    assert moved.json()["certificate"]["account"] == scenario.buyer_account
    assert moved.json()["certificate"]["holder"] == scenario.buyer
    statement = parse_entry(registry.log.entry(registry.log.head().size - 1))
    assert statement["kind"] == "certificate.transferred/1"
    assert statement["toOrganisation"] == scenario.buyer
    verify_statement(statement, trusted_issuer=registry.issuer().did)
    assert_problem(
        api_client.get(f"/v1/certificates/{children[1]['id']}", headers=producer), NOT_OWNER
    )

    # Partial transfer of the big part: 500 Wh go, the rest stays.
    partial = api_client.post(
        f"/v1/certificates/{children[2]['id']}/transfer",
        json={"toAccount": scenario.buyer_account, "volumeWh": 500},
        headers=producer,
    )
    assert partial.status_code == 200, partial.text
    sent, kept = partial.json()["certificate"], partial.json()["remainder"]
    assert sent["volumeWh"] == 500 and sent["account"] == scenario.buyer_account
    assert kept["volumeWh"] == volume - 3_500 and kept["account"] == scenario.producer_account
    assert sent["serialEnd"] == kept["serialStart"]

    # The buyer retires what it received; the beneficiary defaults to the buyer.
    retired = api_client.post(
        f"/v1/certificates/{sent['id']}/retire", json=RETIREMENT, headers=buyer
    )
    assert retired.status_code == 200, retired.text
    record = retired.json()["certificate"]
    assert record["status"] == "retired"
    assert record["retirement"] == {
        **record["retirement"],
        "beneficiary": scenario.buyer,
        "purpose": "scope2-market-based",
        "reportingPeriod": {"from": "2026-01-01T00:00:00Z", "to": "2027-01-01T00:00:00Z"},
        "consumptionLocation": {"province": "CN-GD", "gridRegion": "south"},
    }
    entry = parse_entry(registry.log.entry(record["retirement"]["logIndex"]))
    assert entry["kind"] == "certificate.retired/1" and entry["consumptionProvince"] == "CN-GD"
    # For another beneficiary, a partial retirement.
    for_producer = api_client.post(
        f"/v1/certificates/{children[1]['id']}/retire",
        json={**RETIREMENT, "beneficiary": scenario.producer, "purpose": "re100", "volumeWh": 10},
        headers=buyer,
    )
    assert for_producer.status_code == 200, for_producer.text
    assert for_producer.json()["certificate"]["retirement"]["beneficiary"] == scenario.producer
    assert for_producer.json()["remainder"]["volumeWh"] == 1_990

    bought = api_client.get(
        "/v1/certificates", params={"account": scenario.buyer_account}, headers=buyer
    ).json()["certificates"]
    assert {item["status"] for item in bought} == {"retired", "split", "active"}


def test_refusals_name_their_rule_and_change_nothing(
    api_client: TestClient,
    auth_headers: HeaderMaker,
    registry: Registry,
    scenario: Scenario,
    issued: IssuanceResult,
) -> None:
    producer = org_headers(api_client, registry, scenario.producer, *READ_WRITE)
    buyer = org_headers(api_client, registry, scenario.buyer, *READ_WRITE)
    first, second, third = issued.issued[0], issued.issued[1], issued.issued[2]
    assert api_client.post(
        f"/v1/certificates/{first.certificate_id}/retire", json=RETIREMENT, headers=producer
    ).is_success
    assert api_client.post(
        f"/v1/certificates/{second.certificate_id}/split",
        json={"volumesWh": [1, second.volume_wh - 1]},
        headers=producer,
    ).is_success
    size = log_size(registry)
    path = "/v1/certificates/{}/{}".format

    conflicts: list[tuple[str, dict[str, Any], str]] = [
        (path(first.certificate_id, "retire"), RETIREMENT, "retired-is-final"),
        (
            path(first.certificate_id, "transfer"),
            {"toAccount": scenario.buyer_account},
            "retired-is-final",
        ),
        (
            path(first.certificate_id, "split"),
            {"volumesWh": [1, first.volume_wh - 1]},
            "retired-is-final",
        ),
        (
            path(second.certificate_id, "transfer"),
            {"toAccount": scenario.buyer_account},
            "split-holds-nothing",
        ),
        (
            path(third.certificate_id, "transfer"),
            {"toAccount": scenario.producer_account},
            "same-account",
        ),
        (
            path(third.certificate_id, "split"),
            {"volumesWh": [1, third.volume_wh]},
            "split-partition",
        ),
    ]
    for url, body, rule in conflicts:
        problem = assert_problem(api_client.post(url, json=body, headers=producer), STATE_CONFLICT)
        assert problem["rule"] == rule, problem

    invalid: list[tuple[str, dict[str, Any]]] = [
        (
            path(third.certificate_id, "transfer"),
            {"toAccount": scenario.buyer_account, "volumeWh": third.volume_wh + 1},
        ),
        (
            path(third.certificate_id, "retire"),
            {
                **RETIREMENT,
                "reportingPeriod": {"from": "2027-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
            },
        ),
        (path(third.certificate_id, "retire"), {**RETIREMENT, "beneficiary": "no-such-org"}),
    ]
    for url, body in invalid:
        assert_problem(
            api_client.post(url, json=body, headers=producer), CERTIFICATE_REQUEST_INVALID
        )

    not_found = [
        (path(UNKNOWN, "transfer"), {"toAccount": scenario.buyer_account}),
        (
            path(third.certificate_id, "transfer"),
            {"toAccount": "00000000-0000-4000-8000-000000000000"},
        ),
    ]
    for url, body in not_found:
        assert_problem(api_client.post(url, json=body, headers=producer), NOT_FOUND)
    for action, body in (
        ("transfer", {"toAccount": scenario.buyer_account}),
        ("retire", RETIREMENT),
        ("split", {"volumesWh": [1, third.volume_wh - 1]}),
    ):
        assert_problem(
            api_client.post(path(third.certificate_id, action), json=body, headers=buyer), NOT_OWNER
        )
    malformed = [
        (path(third.certificate_id, "split"), {"volumesWh": [third.volume_wh]}),
        (path(third.certificate_id, "split"), {"volumesWh": [0, third.volume_wh]}),
        (path(third.certificate_id, "retire"), {**RETIREMENT, "purpose": "bragging"}),
        (path(third.certificate_id, "transfer"), {"toAccount": scenario.buyer_account, "x": 1}),
    ]
    for url, body in malformed:
        assert_problem(api_client.post(url, json=body, headers=producer), VALIDATION_ERROR)
    reader = org_headers(api_client, registry, scenario.producer, "certificates:read")
    assert_problem(
        api_client.post(path(third.certificate_id, "retire"), json=RETIREMENT, headers=reader),
        FORBIDDEN,
    )
    assert_problem(
        api_client.post(path(third.certificate_id, "retire"), json=RETIREMENT), UNAUTHORIZED
    )
    assert log_size(registry) == size
    still = api_client.get(f"/v1/certificates/{third.certificate_id}", headers=producer).json()
    assert still["status"] == "active" and still["account"] == scenario.producer_account


def test_withdrawal_by_the_issuer(
    api_client: TestClient, registry: Registry, scenario: Scenario, issued: IssuanceResult
) -> None:
    producer = org_headers(api_client, registry, scenario.producer, *READ_WRITE)
    issuer = org_headers(api_client, registry, scenario.buyer, "issuer")
    item = issued.issued[0]
    split = api_client.post(
        f"/v1/certificates/{item.certificate_id}/split",
        json={"volumesWh": [1, item.volume_wh - 1]},
        headers=producer,
    ).json()["children"]
    size = log_size(registry)
    assert_problem(
        api_client.post(
            f"/v1/certificates/{item.certificate_id}/withdraw",
            json={"reason": "meter fault"},
            headers=producer,
        ),
        FORBIDDEN,
    )
    assert_problem(
        api_client.post(
            f"/v1/certificates/{UNKNOWN}/withdraw", json={"reason": "x"}, headers=issuer
        ),
        NOT_FOUND,
    )
    blank = api_client.post(
        f"/v1/certificates/{item.certificate_id}/withdraw", json={"reason": "  "}, headers=issuer
    )
    assert_problem(blank, CERTIFICATE_REQUEST_INVALID)
    assert log_size(registry) == size

    reason = "meter gen-1 found miscalibrated on 2026-07-01"
    response = api_client.post(
        f"/v1/certificates/{item.certificate_id}/withdraw", json={"reason": reason}, headers=issuer
    )
    assert response.status_code == 200, response.text
    assert sorted(response.json()["withdrawn"]) == sorted(child["id"] for child in split)
    for child in split:
        detail = api_client.get(f"/v1/certificates/{child['id']}", headers=producer).json()
        assert detail["status"] == "withdrawn" and detail["statusReason"] == reason
    statement = parse_entry(registry.log.entry(registry.log.head().size - 1))
    assert statement["kind"] == "certificate.withdrawn/1" and statement["reason"] == reason

    size = log_size(registry)
    again = api_client.post(
        f"/v1/certificates/{split[0]['id']}/withdraw", json={"reason": reason}, headers=issuer
    )
    assert assert_problem(again, STATE_CONFLICT)["rule"] == "withdraw"
    moved = api_client.post(
        f"/v1/certificates/{split[1]['id']}/transfer",
        json={"toAccount": scenario.buyer_account},
        headers=producer,
    )
    assert assert_problem(moved, STATE_CONFLICT)["rule"] == "withdrawn"
    assert log_size(registry) == size


def test_expiry_route_and_the_expired_rule(
    api_client: TestClient, registry: Registry, scenario: Scenario
) -> None:
    # One month of validity after production in June 2026: already past.
    result = issue_certificates(
        registry.log,
        registry.issuer(),
        organisation_id=scenario.producer,
        device_id=scenario.device,
        account_id=scenario.producer_account,
        start=T0,
        end=T0 + 24 * HOUR,
        anchored_size=registry.log.head().size,
        validity_months=1,
    )
    producer = org_headers(api_client, registry, scenario.producer, *READ_WRITE)
    issuer = org_headers(api_client, registry, scenario.buyer, "issuer")
    item = result.issued[0]
    size = log_size(registry)
    late = api_client.post(
        f"/v1/certificates/{item.certificate_id}/retire", json=RETIREMENT, headers=producer
    )
    assert assert_problem(late, STATE_CONFLICT)["rule"] == "expired"
    assert_problem(api_client.post("/v1/certificates/expire", headers=producer), FORBIDDEN)
    assert log_size(registry) == size

    swept = api_client.post("/v1/certificates/expire", headers=issuer)
    assert swept.status_code == 200, swept.text
    assert sorted(swept.json()["expired"]) == sorted(c.certificate_id for c in result.issued)
    assert log_size(registry) == size + len(result.issued)
    expired = api_client.get("/v1/certificates", params={"status": "expired"}, headers=producer)
    assert len(_ids(expired)) == len(result.issued)
    again = api_client.post("/v1/certificates/expire", headers=issuer)
    assert again.json()["expired"] == []
    assert log_size(registry) == size + len(result.issued)


def test_issuer_routes_on_a_fresh_registry_write_nothing(
    api_client: TestClient, auth_headers: HeaderMaker, registry: Registry
) -> None:
    """The issuer key is declared in the log on first use; a refused or empty request must
    not be that first use."""
    issuer, _ = auth_headers("issuer")
    size = log_size(registry)
    assert api_client.post("/v1/certificates/expire", headers=issuer).json() == {"expired": []}
    assert_problem(api_client.post("/v1/devices/ghost/approve", headers=issuer), NOT_FOUND)
    assert_problem(
        api_client.post(
            f"/v1/certificates/{UNKNOWN}/withdraw", json={"reason": "x"}, headers=issuer
        ),
        NOT_FOUND,
    )
    assert log_size(registry) == size
