"""`/v1/accounts`: opening, listing and the holdings summary, scoped to the organisation."""

from __future__ import annotations

from collections.abc import Callable

from cert_api_support import RETIREMENT, log_size, org_headers
from certificate_support import issue_all, producer_scenario
from fastapi.testclient import TestClient
from meter_support import assert_problem

from api.problems import (
    CERTIFICATE_REQUEST_INVALID,
    FORBIDDEN,
    NOT_FOUND,
    NOT_OWNER,
    STATE_CONFLICT,
    UNAUTHORIZED,
    VALIDATION_ERROR,
)
from ledger.log.canonical import parse_entry
from ledger.registry import Registry

HeaderMaker = Callable[..., tuple[dict[str, str], str]]


def test_open_list_and_read_accounts(
    api_client: TestClient, auth_headers: HeaderMaker, registry: Registry
) -> None:
    headers, organisation = auth_headers("certificates:write", "certificates:read")
    names = ["trading", "claims"]
    created = [api_client.post("/v1/accounts", json={"name": n}, headers=headers) for n in names]
    assert [response.status_code for response in created] == [201, 201], created[0].text
    body = created[0].json()
    assert body["organisationId"] == organisation and body["name"] == "trading"
    entry = parse_entry(registry.log.entry(body["logIndex"]))
    assert entry == {**entry, "kind": "account.opened/1", "account": body["id"]}

    listed = api_client.get("/v1/accounts", headers=headers).json()["accounts"]
    assert [account["name"] for account in listed] == ["claims", "trading"]

    detail = api_client.get(f"/v1/accounts/{body['id']}", headers=headers)
    assert detail.status_code == 200, detail.text
    assert detail.json()["holdings"] == {
        "activeWh": 0,
        "activeGec": "0.000000",
        "retiredWh": 0,
        "retiredGec": "0.000000",
        "certificates": {"active": 0, "split": 0, "retired": 0, "expired": 0, "withdrawn": 0},
    }

    other, _ = auth_headers("certificates:write", "certificates:read", organisation="Other Co")
    assert api_client.get("/v1/accounts", headers=other).json()["accounts"] == []
    # Same name in another organisation is fine; in the same one it is a conflict.
    assert api_client.post("/v1/accounts", json={"name": "trading"}, headers=other).is_success
    size = log_size(registry)
    assert_problem(api_client.get(f"/v1/accounts/{body['id']}", headers=other), NOT_OWNER)
    assert_problem(
        api_client.get("/v1/accounts/00000000-0000-4000-8000-000000000000", headers=headers),
        NOT_FOUND,
    )
    duplicate = api_client.post("/v1/accounts", json={"name": "trading"}, headers=headers)
    assert_problem(duplicate, STATE_CONFLICT)
    blank = api_client.post("/v1/accounts", json={"name": "   "}, headers=headers)
    assert_problem(blank, CERTIFICATE_REQUEST_INVALID)
    assert_problem(
        api_client.post("/v1/accounts", json={"name": "x" * 201}, headers=headers),
        VALIDATION_ERROR,
    )
    reader, _ = auth_headers("certificates:read")
    assert_problem(api_client.post("/v1/accounts", json={"name": "r"}, headers=reader), FORBIDDEN)
    assert_problem(api_client.get("/v1/accounts"), UNAUTHORIZED)
    assert log_size(registry) == size


def test_holdings_summarise_active_and_retired_volumes(
    api_client: TestClient, registry: Registry
) -> None:
    scenario = producer_scenario(registry)
    issued = issue_all(registry, scenario)
    assert len(issued.issued) >= 3
    headers = org_headers(
        api_client, registry, scenario.producer, "certificates:read", "certificates:write"
    )
    first, second = issued.issued[0], issued.issued[1]
    # Retire all of the first and 1,000 Wh of the second (which splits it in two).
    whole = api_client.post(
        f"/v1/certificates/{first.certificate_id}/retire", json=RETIREMENT, headers=headers
    )
    assert whole.status_code == 200, whole.text
    part = api_client.post(
        f"/v1/certificates/{second.certificate_id}/retire",
        json={**RETIREMENT, "volumeWh": 1_000},
        headers=headers,
    )
    assert part.status_code == 200, part.text

    summary = api_client.get(f"/v1/accounts/{scenario.producer_account}", headers=headers)
    holdings = summary.json()["holdings"]
    retired = first.volume_wh + 1_000
    active = issued.issued_wh - retired
    assert holdings["retiredWh"] == retired
    assert holdings["activeWh"] == active
    assert holdings["activeGec"] == f"{active // 10**6}.{active % 10**6:06d}"
    assert holdings["retiredGec"] == f"{retired // 10**6}.{retired % 10**6:06d}"
    assert holdings["certificates"] == {
        "active": len(issued.issued) - 2 + 1,  # the untouched ones and the remainder
        "split": 1,
        "retired": 2,
        "expired": 0,
        "withdrawn": 0,
    }
