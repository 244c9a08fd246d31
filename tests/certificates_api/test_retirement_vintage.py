"""The vintage rule: a certificate is retired only for a reporting period that contains its
production hour (decision 82); otherwise 422 `retirement-vintage` and nothing is written.

Before, a retirement for 7 to 21 November of a certificate produced on 2 December was accepted.
"""

from __future__ import annotations

import pytest
from cert_api_support import RETIREMENT, log_size, org_headers
from certificate_support import Scenario, issue_all, producer_scenario
from fastapi.testclient import TestClient
from meter_support import assert_problem

from api.problems import RETIREMENT_VINTAGE
from ledger.certificates.issuance import IssuanceResult
from ledger.certificates.rules import HOUR
from ledger.registry import Registry
from ledger.times import format_utc

READ_WRITE = ("certificates:read", "certificates:write")


@pytest.fixture
def scenario(registry: Registry) -> Scenario:
    return producer_scenario(registry)


@pytest.fixture
def issued(registry: Registry, scenario: Scenario) -> IssuanceResult:
    return issue_all(registry, scenario)


def _period(start: int, end: int) -> dict[str, object]:
    return {**RETIREMENT, "reportingPeriod": {"from": format_utc(start), "to": format_utc(end)}}


def test_a_period_that_misses_the_production_hour_is_refused(
    api_client: TestClient, registry: Registry, scenario: Scenario, issued: IssuanceResult
) -> None:
    producer = org_headers(api_client, registry, scenario.producer, *READ_WRITE)
    certificate = issued.issued[0]
    hour = certificate.hour_start
    path = f"/v1/certificates/{certificate.certificate_id}/retire"
    misses = {
        "two weeks before": (hour - 25 * 86_400, hour - 11 * 86_400),
        "ends inside the hour": (hour - 86_400, hour + HOUR // 2),
        "starts inside the hour": (hour + 1, hour + 86_400),
        "the next year": (hour + 365 * 86_400, hour + 2 * 365 * 86_400),
        "ends as the hour starts": (hour - 86_400, hour),
    }
    size = log_size(registry)
    for case, (start, end) in misses.items():
        response = api_client.post(path, json=_period(start, end), headers=producer)
        assert response.status_code == 422, (case, response.text)
        body = assert_problem(response, RETIREMENT_VINTAGE)
        assert format_utc(hour) in body["detail"], case
        assert log_size(registry) == size, case
    # The hour exactly, and a reporting year around it, are both fine.
    exact = api_client.post(path, json=_period(hour, hour + HOUR), headers=producer)
    assert exact.status_code == 200, exact.text
    second = issued.issued[1]
    year = api_client.post(
        f"/v1/certificates/{second.certificate_id}/retire",
        json=_period(second.hour_start - 100 * 86_400, second.hour_start + 200 * 86_400),
        headers=producer,
    )
    assert year.status_code == 200, year.text
