"""Waiting for an anchor, over HTTP: issuance says which readings wait and what they will
issue, and the 409 of a bundle says when to retry, with the due time only a running
scheduler can give (on SQLite and PostgreSQL)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from cert_api_support import log_size, org_headers
from certificate_support import Scenario, producer_scenario, solar_export_wh
from fastapi import FastAPI
from fastapi.testclient import TestClient
from meter_support import T0, assert_problem, sign

from api.problems import NOT_ANCHORED
from attestation.anchoring.anchor import anchor_now, anchor_records
from attestation.anchoring.scheduler import AnchorService, StepResult
from attestation.chain.client import CarbonAnchor, ChainSettings
from attestation.chain.deployment import resolve_contract
from attestation.chain.embedded import open_embedded_chain
from ledger.certificates.rules import HOUR
from ledger.meters.ingest import ingest
from ledger.registry import Registry
from ledger.times import format_utc

STEP = 900


@pytest.fixture
def contract(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CarbonAnchor]:
    """A CarbonAnchor on a throw-away embedded chain (the app's own anchoring is off)."""
    chain = open_embedded_chain(None)
    try:
        yield resolve_contract(chain, ChainSettings(), tmp_path_factory.mktemp("chain"))
    finally:
        chain.close()


def _more_readings(
    registry: Registry, scenario: Scenario, first_seq: int, first_hour: float, count: int
) -> None:
    """`count` quarter-hour readings from `first_hour` (after T0) continuing the scenario's
    meter: the same register curve, the next seqs."""
    times = [T0 + round(first_hour * HOUR) + n * STEP for n in range(count)]
    envelopes = [
        sign(scenario.meter_key, scenario.meter, first_seq + n, at, 0, solar_export_wh(at - T0))
        for n, at in enumerate(times)
    ]
    result = ingest(registry.log, envelopes, organisation_id=scenario.producer)
    assert all(item.status == "accepted" for item in result.items), result.items


def _issue(client: TestClient, scenario: Scenario, headers: dict[str, str], hours: range) -> Any:
    request = {
        "from": format_utc(T0 + hours.start * HOUR),
        "to": format_utc(T0 + hours.stop * HOUR),
        "account": scenario.producer_account,
    }
    response = client.post(f"/v1/devices/{scenario.device}/issuance", json=request, headers=headers)
    assert response.status_code == 201, response.text
    body = response.json()
    skipped = body["skipped"]
    # Every requested hour is accounted for exactly once.
    assert body["hoursRequested"] == body["issuedCount"] + sum(skipped.values()), body
    return body


def _export(at_hour: float) -> int:
    return solar_export_wh(round(at_hour * HOUR))


def test_issuance_names_what_waits_for_an_anchor_and_issues_it_once_anchored(
    api_client: TestClient, registry: Registry, contract: CarbonAnchor
) -> None:
    # Quarter-hour readings 00:00-12:00 UTC; the plant produces from 06:00.
    scenario = producer_scenario(registry, hours=12)
    owner = org_headers(api_client, registry, scenario.producer, "devices:write")
    size = log_size(registry)

    before = _issue(api_client, scenario, owner, range(6, 12))
    assert before["anchoredSize"] == 0 and before["issuedCount"] == 0
    assert before["skipped"] == {
        "notOver": 0,
        "flagged": 0,
        "waitingForAnchor": 6,
        "withoutNewProduction": 0,
    }
    waiting = before["waitingForAnchor"]
    # 06:00 (before the period), 23 inside, and 12:00 (the first at its end) bound its hours.
    assert waiting["readings"] == 25 and waiting["hours"] == 6
    assert waiting["wh"] == _export(12) - _export(6) > 0
    assert waiting["logSize"] == size
    # No scheduler in this service: no due time, and the sentence says who anchors.
    assert waiting["nextAnchorDueAt"] is None and waiting["retryAfterSeconds"] is None
    detail = waiting["detail"]
    assert detail.startswith("25 readings of this device in the period are not anchored yet")
    assert "nothing is anchored yet" in detail and "6 completed hours" in detail
    assert "no anchoring scheduler" in detail and "carbonledger anchor now" in detail
    assert log_size(registry) == size, "a request that issues nothing writes nothing"

    anchored = anchor_now(registry.log, contract)
    assert anchored is not None
    after = _issue(api_client, scenario, owner, range(6, 12))
    assert after["issuedCount"] == 6 and after["issuedWh"] == waiting["wh"]
    assert after["waitingForAnchor"] is None and after["skipped"]["waitingForAnchor"] == 0

    # Readings 12:15-14:15 arrive: three more hours wait; the six issued ones do not.
    _more_readings(registry, scenario, 50, 12.25, 9)
    later = _issue(api_client, scenario, owner, range(6, 15))
    assert later["issuedCount"] == 0
    assert later["skipped"]["waitingForAnchor"] == 3
    assert later["skipped"]["withoutNewProduction"] == 6
    assert later["waitingForAnchor"]["readings"] == 9 and later["waitingForAnchor"]["hours"] == 3
    assert later["waitingForAnchor"]["wh"] == _export(14.25) - _export(12)
    assert f"up to size {anchored.size}" in later["waitingForAnchor"]["detail"]

    # Anchor those, then one more reading: hour 14 issues its anchored part now and still
    # waits for the rest, so it is issued, not skipped, and named as waiting.
    anchor_now(registry.log, contract)
    _more_readings(registry, scenario, 59, 14.5, 1)
    partly = _issue(api_client, scenario, owner, range(6, 15))
    assert [c["productionStart"] for c in partly["certificates"]] == [
        format_utc(T0 + hour * HOUR) for hour in (12, 13, 14)
    ]
    assert partly["skipped"]["waitingForAnchor"] == 0
    rest = partly["waitingForAnchor"]
    assert rest["readings"] == 1 and rest["hours"] == 1
    assert rest["wh"] == _export(14.5) - _export(14.25)
    anchor_now(registry.log, contract)
    last = _issue(api_client, scenario, owner, range(6, 15))
    assert last["issuedWh"] == rest["wh"] and last["waitingForAnchor"] is None


# ------------------------------------------------------------- with the scheduler of serve

INTERVAL = 3600


@pytest.fixture
def scheduled_client(monkeypatch: pytest.MonkeyPatch, api_app: FastAPI) -> Iterator[TestClient]:
    """The app with its anchoring scheduler on the embedded chain: the first entry is anchored
    at once, then only every hour, so the test sees a long, exactly known wait."""
    monkeypatch.delenv("CARBONLEDGER_CHAIN_RPC", raising=False)
    monkeypatch.setenv("CARBONLEDGER_ANCHOR_ENABLED", "true")
    monkeypatch.setenv("CARBONLEDGER_ANCHOR_INTERVAL_SECONDS", str(INTERVAL))
    monkeypatch.setenv("CARBONLEDGER_ANCHOR_EVERY_ENTRIES", str(10**6))
    monkeypatch.setenv("CARBONLEDGER_ANCHOR_TICK_SECONDS", "0.05")
    with TestClient(api_app) as client:
        yield client


def _service(client: TestClient) -> AnchorService:
    service = client.app.state.anchoring  # type: ignore[attr-defined]
    assert isinstance(service, AnchorService)
    return service


def test_due_time_and_retry_after_come_from_the_running_scheduler(
    scheduled_client: TestClient, registry: Registry
) -> None:
    client = scheduled_client
    # One entry, anchored at once (never anchored: due now); the next anchor is an hour later.
    registry.log.append([{"kind": "test.waiting/1"}])
    deadline = time.monotonic() + 30
    while not anchor_records(registry.database):
        assert time.monotonic() < deadline, _service(client).last_error
        time.sleep(0.05)
    first = anchor_records(registry.database)[0]
    scenario = producer_scenario(registry, hours=12)
    due = format_utc(math.ceil((first.anchored_at + timedelta(seconds=INTERVAL)).timestamp()))
    headers = org_headers(client, registry, scenario.producer, "devices:write", "log:read")

    before = _issue(client, scenario, headers, range(6, 12))
    assert before["anchoredSize"] == first.size == 1
    waiting = before["waitingForAnchor"]
    assert waiting["readings"] == 25 and waiting["hours"] == 6
    assert waiting["nextAnchorDueAt"] == due
    assert INTERVAL - 60 <= waiting["retryAfterSeconds"] <= INTERVAL
    assert f"the next anchor is due at {due} (in " in waiting["detail"]

    # A bundle of the newest entry: 409 with Retry-After, its due time and what it waits for.
    newest = log_size(registry) - 1
    response = client.get(f"/v1/log/entries/{newest}/bundle", headers=headers)
    problem = assert_problem(response, NOT_ANCHORED)
    assert response.headers["retry-after"] == str(problem["retryAfterSeconds"])
    assert INTERVAL - 60 <= problem["retryAfterSeconds"] <= INTERVAL
    assert problem["nextAnchorDueAt"] == due
    assert problem["anchoredSize"] == first.size and problem["logSize"] == newest + 1
    assert f"need an anchored size of at least {newest + 1}" in problem["detail"]
    assert f"the next anchor is due at {due}" in problem["detail"]

    # The scheduler's own step, forced (what `anchor now` runs): then it issues and proves.
    scheduler = _service(client).scheduler
    assert scheduler is not None
    assert scheduler.run_once(force=True).result is StepResult.ANCHORED
    after = _issue(client, scenario, headers, range(6, 12))
    assert after["issuedWh"] == waiting["wh"] and after["waitingForAnchor"] is None
    assert client.get(f"/v1/log/entries/{newest}/bundle", headers=headers).status_code == 200


def test_without_a_scheduler_the_409_gives_no_retry_time(
    api_client: TestClient, registry: Registry
) -> None:
    scenario = producer_scenario(registry, hours=1)
    headers = org_headers(api_client, registry, scenario.producer, "log:read")
    response = api_client.get(f"/v1/log/entries/{log_size(registry) - 1}/bundle", headers=headers)
    problem = assert_problem(response, NOT_ANCHORED)
    assert "retry-after" not in response.headers
    assert problem["retryAfterSeconds"] is None and problem["nextAnchorDueAt"] is None
    assert "nothing is anchored yet" in problem["detail"]
    assert "no anchoring scheduler" in problem["detail"]
