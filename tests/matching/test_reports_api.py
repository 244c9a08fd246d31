"""`GET /v1/reports/matching` over HTTP: the report, scopes, organisations and problems."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from matching_support import HOUR, START, consumption_meter, organisation, retired_certificate
from meter_support import assert_problem

from api.problems import FORBIDDEN, NOT_FOUND, NOT_READY, RANGE_INVALID, UNAUTHORIZED
from api.schemas.reports import MatchingReportBody
from ledger.certificates.matching import matching_report
from ledger.factors.grid import packaged_factor_table
from ledger.meters.entries import GridRegion
from ledger.registry import Registry
from ledger.times import format_utc

Headers = Callable[..., tuple[dict[str, str], str]]
PATH = "/v1/reports/matching"
PERIOD = {"from": format_utc(START), "to": format_utc(START + 24 * HOUR)}


def _seed(registry: Registry, buyer: str) -> None:
    producer = organisation(registry, "Producer Co")
    consumption_meter(registry, buyer, "load-1", GridRegion.EAST, [4_000] * 24)
    consumption_meter(registry, buyer, "load-2", GridRegion.NORTH, [1_000] * 24)
    for hour in range(8, 16):
        retired_certificate(
            registry,
            producer=producer,
            beneficiary=buyer,
            hour_start=START + hour * HOUR,
            wh=6_000,
            region=GridRegion.EAST,
        )


def test_report_of_the_callers_organisation(
    reports_client: TestClient, headers_for: Headers, registry: Registry
) -> None:
    headers, buyer = headers_for("reports:read")
    _seed(registry, buyer)

    response = reports_client.get(
        PATH, params={**PERIOD, "sameRegion": "true", "hourly": "true"}, headers=headers
    )

    assert response.status_code == 200, response.text
    body = response.json()
    expected = matching_report(
        registry.database,
        buyer,
        START,
        START + 24 * HOUR,
        same_region=True,
        factors=packaged_factor_table(),
    ).to_json(include_hours=True)
    assert body == expected
    assert body["organisation"] == buyer
    assert (body["consumptionWh"], body["supplyWh"], body["matchedWh"]) == (
        120_000,
        48_000,
        32_000,
    )
    assert body["cfePercent"] == round(32_000 / 120_000 * 100, 4)
    assert body["volumeMatchPercent"] == 40.0
    assert body["gec"] == {"consumption": "0.120000", "supply": "0.048000", "matched": "0.032000"}
    assert len(body["hourly"]) == 24
    # Without hourly=true the rows stay out; pooled regions have no per-region match.
    pooled = reports_client.get(PATH, params=PERIOD, headers=headers).json()
    assert pooled["hourly"] is None
    assert pooled["matchedWh"] == 40_000
    assert all(region["matchedWh"] is None for region in pooled["regions"])


def test_scopes_and_other_organisations(
    reports_client: TestClient, headers_for: Headers, registry: Registry
) -> None:
    reader, buyer = headers_for("reports:read")
    _seed(registry, buyer)
    assert_problem(reports_client.get(PATH, params=PERIOD), UNAUTHORIZED)
    wrong_scope, _ = headers_for("readings:read")
    body = assert_problem(reports_client.get(PATH, params=PERIOD, headers=wrong_scope), FORBIDDEN)
    assert body["error"] == "insufficient_scope"

    # Another organisation's report needs admin as well.
    outsider, _ = headers_for("reports:read", organisation="Other Ltd")
    assert_problem(
        reports_client.get(PATH, params={**PERIOD, "organisation": buyer}, headers=outsider),
        FORBIDDEN,
    )
    admin, _ = headers_for("reports:read", "admin", organisation="Registry Operator")
    response = reports_client.get(PATH, params={**PERIOD, "organisation": buyer}, headers=admin)
    assert response.status_code == 200, response.text
    assert response.json()["organisation"] == buyer
    assert response.json()["consumptionWh"] == 120_000
    assert_problem(
        reports_client.get(PATH, params={**PERIOD, "organisation": "no-such-org"}, headers=admin),
        NOT_FOUND,
    )
    # Naming one's own organisation is not "another".
    own = reports_client.get(PATH, params={**PERIOD, "organisation": buyer}, headers=reader)
    assert own.status_code == 200


@pytest.mark.parametrize(
    ("period", "fragment"),
    [
        ({"from": "2026-03-02T00:30:00Z", "to": "2026-03-03T00:00:00Z"}, "whole UTC hours"),
        ({"from": "2026-03-03T00:00:00Z", "to": "2026-03-02T00:00:00Z"}, "after"),
        ({"from": "2026-03-02T00:00:00Z", "to": "2027-03-04T00:00:00Z"}, "at most 8784"),
        ({"from": "2026-03-02T00:00:00.5Z", "to": "2026-03-03T00:00:00Z"}, "whole seconds"),
    ],
)
def test_bad_periods_are_range_invalid_problems(
    reports_client: TestClient, headers_for: Headers, period: dict[str, str], fragment: str
) -> None:
    headers, _ = headers_for("reports:read")
    body = assert_problem(reports_client.get(PATH, params=period, headers=headers), RANGE_INVALID)
    assert fragment in body["detail"]
    assert body["instance"] == PATH


def test_a_broken_factor_file_is_not_ready(
    reports_client: TestClient,
    headers_for: Headers,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    headers, _ = headers_for("reports:read")
    broken = tmp_path / "secret-dir" / "factors.json"
    broken.parent.mkdir()
    broken.write_text(json.dumps({"national_average": {}}), encoding="utf-8")
    monkeypatch.setenv("CARBONLEDGER_GRID_FACTORS_FILE", str(broken))
    body = assert_problem(reports_client.get(PATH, params=PERIOD, headers=headers), NOT_READY)
    assert "secret-dir" not in body["detail"]


def test_openapi_documents_the_route(reports_client: TestClient) -> None:
    document = reports_client.get("/openapi.json").json()
    operation = document["paths"][PATH]["get"]
    assert {item["name"] for item in operation["parameters"]} >= {
        "from",
        "to",
        "sameRegion",
        "organisation",
        "hourly",
    }
    assert {"400", "401", "403", "404", "503"} <= set(operation["responses"])
    assert MatchingReportBody.__name__ in document["components"]["schemas"]
