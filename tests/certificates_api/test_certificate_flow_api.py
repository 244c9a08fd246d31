"""End to end over HTTP: register → approve → anchor → issue → transfer part → retire → list
→ withdraw, and the public proof bundle of a certificate, on the embedded chain."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from cert_api_support import RETIREMENT, device_body, log_size
from certificate_support import add_readings
from fastapi.testclient import TestClient
from meter_support import EPOCH, T0, add_meter, assert_problem, generation_spec, new_key

from api.problems import NOT_ANCHORED, NOT_FOUND, STATE_CONFLICT
from attestation.anchoring.anchor import anchor_now
from attestation.bundles.format import BUNDLE_MEDIA_TYPE, parse_bundle
from attestation.chain.client import CarbonAnchor, ChainSettings, open_embedded_chain
from attestation.chain.deployment import resolve_contract
from ledger.certificates.rules import HOUR
from ledger.log.canonical import parse_entry
from ledger.meters.registration import register_key
from ledger.registry import Registry
from ledger.times import format_utc

HeaderMaker = Callable[..., tuple[dict[str, str], str]]
HOURS = 12


@pytest.fixture
def contract(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CarbonAnchor]:
    """A CarbonAnchor on a throw-away embedded chain (the app's own anchoring is off)."""
    chain = open_embedded_chain(None)
    try:
        yield resolve_contract(chain, ChainSettings(), tmp_path_factory.mktemp("chain"))
    finally:
        chain.close()


def _producer_with_readings(
    api_client: TestClient, auth_headers: HeaderMaker, registry: Registry
) -> tuple[dict[str, str], str]:
    scopes = ("devices:write", "devices:read", "certificates:read", "certificates:write")
    headers, organisation = auth_headers(*scopes, organisation="Suzhou Solar")
    add_meter(registry, organisation, generation_spec("gen-1"))
    key = new_key()
    register_key(registry.log, "gen-1", key.spki, organisation_id=organisation, valid_from=EPOCH)
    add_readings(
        registry, organisation, key_pair=key, meter="gen-1", start=T0, hours=HOURS, step=900
    )
    return headers, organisation


def test_full_flow(
    api_client: TestClient,
    auth_headers: HeaderMaker,
    registry: Registry,
    contract: CarbonAnchor,
) -> None:
    producer, producer_org = _producer_with_readings(api_client, auth_headers, registry)
    buyer_scopes = ("certificates:read", "certificates:write")
    buyer, buyer_org = auth_headers(*buyer_scopes, organisation="Guangzhou Factory")
    issuer, _ = auth_headers("issuer", organisation="Registry operator")

    device = api_client.post(
        "/v1/devices", json=device_body("solar-1", ["gen-1"]), headers=producer
    )
    assert device.status_code == 201, device.text
    approved = api_client.post("/v1/devices/solar-1/approve", headers=issuer)
    assert approved.json()["status"] == "approved", approved.text
    trading = api_client.post("/v1/accounts", json={"name": "trading"}, headers=producer).json()
    claims = api_client.post("/v1/accounts", json={"name": "claims"}, headers=buyer).json()

    anchored = anchor_now(registry.log, contract)
    assert anchored is not None and anchored.size == log_size(registry)
    request = {
        "from": format_utc(T0),
        "to": format_utc(T0 + HOURS * HOUR),
        "account": trading["id"],
    }
    issued = api_client.post("/v1/devices/solar-1/issuance", json=request, headers=producer)
    assert issued.status_code == 201, issued.text
    summary = issued.json()
    assert summary["anchoredSize"] == anchored.size
    certificates = summary["certificates"]
    assert summary["issuedCount"] == len(certificates) == HOURS - 6  # sunrise is at 6:00 UTC
    assert summary["issuedWh"] == sum(item["volumeWh"] for item in certificates) > 0
    wh = summary["issuedWh"]
    assert summary["issuedGec"] == f"{wh // 10**6}.{wh % 10**6:06d}"
    assert summary["skipped"] == {
        "notOver": 0,
        "flagged": 0,
        "waitingForAnchor": 0,
        "withoutNewProduction": 6,
    }
    assert summary["waitingForAnchor"] is None, "every reading was anchored"
    for item in certificates:
        assert item["gecEquivalent"] == f"0.{item['volumeWh']:06d}"  # 10 kW: < 1 MWh an hour
        leaf = parse_entry(registry.log.entry(item["logIndex"]))
        assert leaf["credential"]["credentialSubject"]["volumeWh"] == item["volumeWh"]
    # Asking again issues nothing: every anchored Wh has its certificate.
    size = log_size(registry)
    again = api_client.post("/v1/devices/solar-1/issuance", json=request, headers=producer).json()
    assert again["issuedCount"] == 0 and again["skipped"]["withoutNewProduction"] == HOURS
    assert log_size(registry) == size

    noon = max(certificates, key=lambda item: item["volumeWh"])
    sold = api_client.post(
        f"/v1/certificates/{noon['id']}/transfer",
        json={"toAccount": claims["id"], "volumeWh": 2_500},
        headers=producer,
    )
    assert sold.status_code == 200, sold.text
    part, rest = sold.json()["certificate"], sold.json()["remainder"]
    assert part["holder"] == buyer_org and part["gecEquivalent"] == "0.002500"
    retired = api_client.post(
        f"/v1/certificates/{part['id']}/retire", json=RETIREMENT, headers=buyer
    )
    assert retired.status_code == 200, retired.text
    assert retired.json()["certificate"]["retirement"]["beneficiary"] == buyer_org

    bought = api_client.get("/v1/certificates", params={"status": "retired"}, headers=buyer)
    assert [item["id"] for item in bought.json()["certificates"]] == [part["id"]]
    holdings = api_client.get(f"/v1/accounts/{claims['id']}", headers=buyer).json()["holdings"]
    assert holdings["retiredWh"] == 2_500 and holdings["retiredGec"] == "0.002500"
    mine = api_client.get(
        "/v1/certificates", params={"account": trading["id"], "status": "active"}, headers=producer
    )
    assert rest["id"] in [item["id"] for item in mine.json()["certificates"]]
    assert producer_org == trading["organisationId"]

    reason = "gen-1 failed its calibration check"
    withdrawn = api_client.post(
        f"/v1/certificates/{noon['id']}/withdraw", json={"reason": reason}, headers=issuer
    )
    assert withdrawn.status_code == 200, withdrawn.text
    # Every live part goes: the remainder held and the part retired (its claim is void).
    assert sorted(withdrawn.json()["withdrawn"]) == sorted([part["id"], rest["id"]])
    void = api_client.get(f"/v1/certificates/{part['id']}", headers=buyer).json()
    assert void["status"] == "withdrawn" and void["retirement"]["beneficiary"] == buyer_org
    remainder = api_client.get(f"/v1/certificates/{rest['id']}", headers=producer).json()
    assert remainder["status"] == "withdrawn" and remainder["statusReason"] == reason
    moved = api_client.post(
        f"/v1/certificates/{rest['id']}/transfer",
        json={"toAccount": claims["id"]},
        headers=producer,
    )
    assert assert_problem(moved, STATE_CONFLICT)["rule"] == "withdrawn"


def test_certificate_bundle_is_public(
    api_client: TestClient,
    auth_headers: HeaderMaker,
    registry: Registry,
    contract: CarbonAnchor,
) -> None:
    producer, _ = _producer_with_readings(api_client, auth_headers, registry)
    issuer, _ = auth_headers("issuer", organisation="Registry operator")
    assert api_client.post(
        "/v1/devices", json=device_body("solar-1", ["gen-1"]), headers=producer
    ).is_success
    assert api_client.post("/v1/devices/solar-1/approve", headers=issuer).is_success
    account = api_client.post("/v1/accounts", json={"name": "main"}, headers=producer).json()["id"]
    assert anchor_now(registry.log, contract) is not None
    request = {"from": format_utc(T0), "to": format_utc(T0 + HOURS * HOUR), "account": account}
    issued = api_client.post("/v1/devices/solar-1/issuance", json=request, headers=producer)
    certificate = issued.json()["certificates"][0]
    path = f"/v1/certificates/{certificate['id']}/bundle"

    # Issued after the newest anchor: nothing can prove it yet.
    size = log_size(registry)
    early = assert_problem(api_client.get(path), NOT_ANCHORED)
    assert early["logSize"] == size and early["anchoredSize"] <= certificate["logIndex"]

    anchored = anchor_now(registry.log, contract)
    assert anchored is not None and anchored.size == size
    response = api_client.get(path)  # no token: the id is the capability
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(BUNDLE_MEDIA_TYPE)
    bundle = parse_bundle(response.content)
    assert bundle.anchor.size == anchored.size
    indices = {entry.index for entry in bundle.entries}
    assert certificate["logIndex"] in indices
    issued_leaf = next(e for e in bundle.entries if e.index == certificate["logIndex"])
    assert parse_entry(issued_leaf.leaf_bytes())["credential"]["id"] == certificate["id"]

    unknown = "/v1/certificates/urn:uuid:00000000-0000-4000-8000-000000000000/bundle"
    assert_problem(api_client.get(unknown), NOT_FOUND)

    # The issuer a verifier pins is published with the log head, as the log declares it.
    declared = api_client.get("/v1/log").json()["issuers"]
    assert declared == [{"id": registry.issuer().did, "logIndex": declared[0]["logIndex"]}]
    declaration = parse_entry(registry.log.entry(declared[0]["logIndex"]))
    assert declaration["kind"] == "issuer.key/1"
