"""Hostile times on the routes that write them into leaves: refused, or stored so that the
offline verifier's parser (`ledger.times.parse_utc`) reads back the same moment.

`POST /v1/meters/{id}/keys` with `validFrom: 0001-01-01T00:00:00Z` used to return 201 and
write `1-01-01T00:00:00Z`, which the project's own verifier refused.
"""

from __future__ import annotations

from datetime import datetime

from fastapi.testclient import TestClient
from meter_support import new_key, token_for
from pydantic import TypeAdapter

from ledger.access.clients import create_client
from ledger.log.canonical import parse_entry
from ledger.registry import Registry
from ledger.times import parse_utc

HOSTILE_TIMES = {
    "year 0001": "0001-01-01T00:00:00Z",
    "year 0999": "0999-12-31T23:59:59Z",
    "year 10000": "10000-01-01T00:00:00Z",
    "before the epoch": "1969-12-31T23:59:59Z",
    "Arabic-Indic digits": "\u0662\u0660\u0662\u0666-06-01T00:00:00Z",
    "full-width digits": "\uff12\uff10\uff12\uff16-06-01T00:00:00Z",
    "leap second": "2016-12-31T23:59:60Z",
    "offset +08:00": "2026-06-01T08:00:00+08:00",
    "offset -00:30": "2026-05-31T23:30:00-00:30",
    "fractional seconds": "2026-06-01T00:00:00.5Z",
    "no zone": "2026-06-01T00:00:00",
    "lower-case z": "2026-06-01t00:00:00z",
    "epoch number": "1780272000",
}
METER = {
    "role": "generation",
    "location": {"province": "CN-ZJ", "gridRegion": "east"},
    "energySource": "solar",
    "capacityW": 5000,
}


def _leaf_times(registry: Registry, index: int) -> list[str]:
    entry = parse_entry(registry.log.entry(index))
    return [
        value
        for name, value in entry.items()
        if isinstance(value, str) and name in ("validFrom", "revokedFrom", "at", "time")
    ]


def test_key_times_are_refused_or_stored_as_the_verifier_reads_them(
    default_client: TestClient, registry: Registry
) -> None:
    headers = token_for(
        default_client, create_client(registry.database, "Acme Energy", ["meters:write"])
    )
    for number, (case, text) in enumerate(HOSTILE_TIMES.items()):
        meter = f"m-{number}"
        created = default_client.post("/v1/meters", json={"id": meter, **METER}, headers=headers)
        assert created.status_code == 201, created.text
        for route, field, extra in (
            (f"/v1/meters/{meter}/keys", "validFrom", {"publicKey": new_key().spki_b64}),
        ):
            size = registry.log.head().size
            response = default_client.post(route, json={field: text, **extra}, headers=headers)
            if response.status_code >= 400:
                assert response.status_code in (400, 422), (case, response.text)
                assert response.headers["content-type"] == "application/problem+json", case
                assert registry.log.head().size == size, case
                continue
            assert response.status_code == 201, (case, response.text)
            # Accepted: the leaf must hold a time the verifier parses, at the same moment.
            moment = TypeAdapter(datetime).validate_python(text)  # the moment the API read
            leaf_times = _leaf_times(registry, registry.log.head().size - 1)
            assert leaf_times, case
            for stored in leaf_times:
                assert parse_utc(stored) == int(moment.timestamp()), (case, stored)
        # Revocation times of the meter's key, when it has one.
        key = new_key()
        registered = default_client.post(
            f"/v1/meters/{meter}/keys", json={"publicKey": key.spki_b64}, headers=headers
        )
        assert registered.status_code == 201, registered.text
        size = registry.log.head().size
        response = default_client.post(
            f"/v1/meters/{meter}/keys/{key.key_id}/revoke",
            json={"revokedFrom": text},
            headers=headers,
        )
        if response.status_code >= 400:
            assert response.status_code in (400, 409, 422), (case, response.text)
            assert registry.log.head().size == size, case
        else:
            for stored in _leaf_times(registry, registry.log.head().size - 1):
                parse_utc(stored)
