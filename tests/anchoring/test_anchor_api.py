"""The API of anchoring: the scheduler started by the app lifespan (embedded chain), the
public anchor routes, and proof bundles (`log:read`) that verify against the chain."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from meter_support import assert_problem, token_for
from metered_log_support import MeteredLog

from api.app import StartupError, create_app
from api.problems import (
    BUNDLE_REQUEST_INVALID,
    NOT_ANCHORED,
    NOT_FOUND,
    UNAUTHORIZED,
)
from api.security import ensure_token_secret
from api.settings import ApiSettings
from attestation.anchoring.scheduler import AnchorService
from attestation.bundles.chain_reader import ChainAnchorReader
from attestation.bundles.format import BUNDLE_MEDIA_TYPE, parse_bundle
from attestation.bundles.verify import verify_bundle
from attestation.chain.deployment import recorded_deployments
from ledger.access.clients import create_client


def _client(metered: MeteredLog) -> TestClient:
    settings = ApiSettings(**metered.settings.model_dump())
    ensure_token_secret(settings)
    return TestClient(create_app(settings))


@pytest.fixture
def anchoring_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scheduler of `serve`, on the embedded chain, anchoring every 2 entries quickly."""
    monkeypatch.delenv("CARBONLEDGER_CHAIN_RPC", raising=False)
    monkeypatch.delenv("CARBONLEDGER_ANCHOR_ENABLED", raising=False)
    monkeypatch.setenv("CARBONLEDGER_ANCHOR_EVERY_ENTRIES", "2")
    monkeypatch.setenv("CARBONLEDGER_ANCHOR_TICK_SECONDS", "0.05")


@pytest.fixture
def served(anchoring_env: None, metered: MeteredLog) -> Iterator[TestClient]:
    with _client(metered) as client:
        yield client


def _wait_for_anchor(client: TestClient, size: int) -> dict[str, object]:
    deadline = time.monotonic() + 20
    while True:
        response = client.get("/v1/anchors/latest")
        if response.status_code == 200 and response.json()["size"] >= size:
            body: dict[str, object] = response.json()
            return body
        assert time.monotonic() < deadline, response.text
        time.sleep(0.05)


def _service(client: TestClient) -> AnchorService:
    service = client.app.state.anchoring  # type: ignore[attr-defined]
    assert isinstance(service, AnchorService)
    return service


def test_lifespan_scheduler_anchors_and_routes_list_it(
    served: TestClient, metered: MeteredLog
) -> None:
    head = metered.registry.log.head()
    latest = _wait_for_anchor(served, head.size)
    chain = _service(served).chain
    assert chain is not None
    deployed = recorded_deployments(metered.settings.data_dir)[chain.chain_id]
    assert latest["contract"] == deployed.address
    assert latest["chainId"] == chain.chain_id
    assert latest["root"] == "0x" + head.root.hex()
    assert latest["size"] == head.size

    metered.add_readings(2)
    second = _wait_for_anchor(served, head.size + 2)
    assert second["id"] != latest["id"]

    first_page = served.get("/v1/anchors", params={"limit": 1})
    assert first_page.status_code == 200
    body = first_page.json()
    assert [a["size"] for a in body["anchors"]] == [head.size + 2]
    assert body["next"] == f"/v1/anchors?limit=1&before={second['id']}"
    older = served.get(body["next"]).json()
    assert [a["size"] for a in older["anchors"]] == [head.size]
    everything = served.get("/v1/anchors").json()
    assert [a["size"] for a in everything["anchors"]] == [head.size + 2, head.size]
    assert everything.get("next") is None


def test_bundles_need_log_read_and_verify_against_the_chain(
    served: TestClient, metered: MeteredLog
) -> None:
    _wait_for_anchor(served, metered.registry.log.head().size)
    index = metered.readings[1]
    path = f"/v1/log/entries/{index}/bundle"
    assert_problem(served.get(path), UNAUTHORIZED)

    issued = create_client(metered.registry.database, "Auditor Ltd", ["log:read"])
    headers = token_for(served, issued)
    response = served.get(path, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == BUNDLE_MEDIA_TYPE
    assert f'filename="bundle-{index}.json"' in response.headers["content-disposition"]
    bundle = parse_bundle(response.content)
    # The reading, plus the key registration that proves the meter key.
    assert [e.index for e in bundle.entries] == [metered.key_index, index]

    chain = _service(served).chain
    assert chain is not None
    reader = ChainAnchorReader(chain.w3)
    key = metered.registry.signer.verifier
    report = verify_bundle(response.content, anchor_reader=reader, log_verifier_key=key)
    assert report.ok and report.check("chain") is not None, report.failures

    several = served.get(
        "/v1/log/bundle", params={"indices": ",".join(map(str, metered.readings))}, headers=headers
    )
    assert several.status_code == 200, several.text
    entries = [e.index for e in parse_bundle(several.content).entries]
    assert entries == [metered.key_index, *metered.readings]
    assert verify_bundle(several.content, anchor_reader=reader, log_verifier_key=key).ok

    for bad in ("", "1,,2", "x", "-1", ",".join(str(i) for i in range(33))):
        problem = served.get("/v1/log/bundle", params={"indices": bad}, headers=headers)
        assert_problem(problem, BUNDLE_REQUEST_INVALID)
    size = metered.registry.log.head().size
    assert_problem(served.get(f"/v1/log/entries/{size + 5}/bundle", headers=headers), NOT_FOUND)


def test_bundle_of_an_entry_not_anchored_yet_is_a_409(
    monkeypatch: pytest.MonkeyPatch, metered: MeteredLog
) -> None:
    monkeypatch.setenv("CARBONLEDGER_ANCHOR_ENABLED", "false")
    with _client(metered) as client:
        assert _service_or_none(client) is None
        assert_problem(client.get("/v1/anchors/latest"), NOT_FOUND)
        assert client.get("/v1/anchors").json() == {"anchors": [], "next": None}
        issued = create_client(metered.registry.database, "Auditor Ltd", ["log:read"])
        response = client.get(
            f"/v1/log/entries/{metered.readings[0]}/bundle", headers=token_for(client, issued)
        )
        body = assert_problem(response, NOT_ANCHORED)
        assert body["anchoredSize"] is None
        assert body["logSize"] == metered.registry.log.head().size


def _service_or_none(client: TestClient) -> object:
    return client.app.state.anchoring  # type: ignore[attr-defined]


def test_anchor_routes_are_public_in_openapi(
    monkeypatch: pytest.MonkeyPatch, metered: MeteredLog
) -> None:
    monkeypatch.setenv("CARBONLEDGER_ANCHOR_ENABLED", "false")
    with _client(metered) as client:
        paths = client.get("/openapi.json").json()["paths"]
    for public in ("/v1/anchors", "/v1/anchors/latest"):
        assert "security" not in paths[public]["get"], public
    for protected in ("/v1/log/entries/{index}/bundle", "/v1/log/bundle"):
        operation = paths[protected]["get"]
        assert operation["security"] == [{"clientCredentials": ["log:read"]}]
        assert BUNDLE_MEDIA_TYPE in operation["responses"]["200"]["content"]
        assert "409" in operation["responses"]


def test_serve_refuses_to_start_anchoring_on_rpc_without_a_contract(
    monkeypatch: pytest.MonkeyPatch, metered: MeteredLog
) -> None:
    monkeypatch.setenv("CARBONLEDGER_CHAIN_RPC", "http://127.0.0.1:9")
    monkeypatch.setenv("CARBONLEDGER_CHAIN_ANCHORER_KEY", "0x" + "11" * 32)
    monkeypatch.setenv("CARBONLEDGER_ANCHOR_INTERVAL_SECONDS", "60")
    with (
        pytest.raises(StartupError, match=r"anchoring cannot start: .*chain deploy"),
        _client(metered),
    ):
        pass
    # With the schedule unset, a JSON-RPC chain is not anchored and the API starts.
    monkeypatch.delenv("CARBONLEDGER_ANCHOR_INTERVAL_SECONDS")
    with _client(metered) as client:
        assert _service_or_none(client) is None
        assert client.get("/v1/anchors").status_code == 200
