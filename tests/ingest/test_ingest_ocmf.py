"""OCMF records in ingestion (decision 31): real records from tests/data/ocmf, and
records signed here to exercise the sequence rules on the OCMF mapping."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from meter_support import add_meter, consumption_spec, new_key, new_organisation, sign, snapshot
from testdata_support import require_testdata

from ledger.log.canonical import parse_entry
from ledger.meters.energy import meter_readings
from ledger.meters.ingest import IngestResult, ingest
from ledger.meters.ocmf import load_ocmf_public_key
from ledger.meters.readings import public_key_spki
from ledger.meters.registration import register_key
from ledger.registry import Registry

KEYS_FROM = datetime(2020, 1, 1, tzinfo=UTC)
NOW = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())


def _examples() -> list[dict[str, Any]]:
    source = require_testdata("ocmf", "ocmf_examples.json")
    examples: list[dict[str, Any]] = json.loads(source.read_text())["examples"]
    return examples


def example(meter: str, pagination: str, *, valid: bool = True) -> dict[str, Any]:
    for item in _examples():
        text = item["ocmf"]
        if f'"PG":"{pagination}"' in text and f'"{meter}"' in text and item["valid"] is valid:
            return item
    raise LookupError((meter, pagination, valid))


def spki_of(item: dict[str, Any]) -> bytes:
    # The API registers SPKI DER; some vendors publish bare points, which convert losslessly.
    return public_key_spki(
        load_ocmf_public_key(bytes.fromhex(item["public_key_der_hex"]), item["curve"])
    )


def run(registry: Registry, organisation: str, items: list[Any]) -> IngestResult:
    return ingest(registry.log, items, organisation_id=organisation, clock=lambda: NOW)


def meter_with_key(registry: Registry, meter: str, spki: bytes) -> str:
    organisation = new_organisation(registry)
    add_meter(registry, organisation, consumption_spec(meter))
    register_key(registry.log, meter, spki, organisation_id=organisation, valid_from=KEYS_FROM)
    return organisation


def test_a_real_p256_record_is_accepted_verbatim(registry: Registry) -> None:
    item = example("000001", "T51")
    organisation = meter_with_key(registry, "000001", spki_of(item))
    size = registry.log.head().size

    result = run(registry, organisation, [item["ocmf"]])

    (outcome,) = result.items
    assert (outcome.status, outcome.meter, outcome.seq, outcome.index) == (
        "accepted",
        "000001",
        51,
        size,
    )
    leaf = parse_entry(registry.log.entry(size))
    assert leaf["kind"] == "reading.ocmf/2"
    assert leaf["ocmf"] == item["ocmf"]  # the signed bytes, unchanged
    # The last of the four RD readings (TX E, 17:29:27+02:00), 1.6086276e7 Wh.
    assert leaf["payload"] == {
        "meter": "000001",
        "seq": 51,
        "time": "2023-04-03T15:29:27Z",
        "importWh": 16_086_276,
        "exportWh": 0,
    }
    page, _ = meter_readings(
        registry.database, "000001", start=None, end=None, after_seq=None, limit=10
    )
    assert [reading.envelope for reading in page] == [{"ocmf": item["ocmf"]}]

    before = snapshot(registry)
    again = run(registry, organisation, [item["ocmf"]])
    assert (again.items[0].status, again.items[0].index) == ("duplicate", size)
    assert snapshot(registry) == before


def test_a_tampered_real_record_is_a_bad_signature(registry: Registry) -> None:
    tampered = example("000033022620", "T28", valid=False)
    genuine = example("000033022620", "T29")
    organisation = meter_with_key(registry, "000033022620", spki_of(genuine))
    before = snapshot(registry)

    result = run(registry, organisation, [tampered["ocmf"]])

    assert result.items[0].reason == "bad-signature"
    assert snapshot(registry) == before
    assert run(registry, organisation, [genuine["ocmf"]]).items[0].status == "accepted"


@pytest.mark.parametrize(
    ("curve", "reason", "fragment"),
    [
        ("secp256k1", "unsupported-format", "ECDSA-secp256k1-SHA256"),
        ("brainpoolP256r1", "unsupported-format", "brainpool"),
        ("secp384r1", "unsupported-format", "secp384r1"),
        ("secp192k1", "unsupported-format", "unsupported-curve"),
    ],
)
def test_other_curves_are_refused_with_a_reason(
    registry: Registry, curve: str, reason: str, fragment: str
) -> None:
    # The secp192k1 record names its curve only in SA (the file's "curve" is null).
    item = next(e for e in _examples() if e["curve"] == curve or f"-{curve}-" in e["ocmf"])
    organisation = new_organisation(registry)
    before = snapshot(registry)
    (outcome,) = run(registry, organisation, [item["ocmf"]]).items
    assert (outcome.status, outcome.reason) == ("rejected", reason)
    assert outcome.detail is not None and fragment in outcome.detail
    assert snapshot(registry) == before


def test_a_record_that_is_not_whole_wh_is_malformed(registry: Registry) -> None:
    item = next(e for e in _examples() if e["valid"] and "0.2596" in e["ocmf"])
    organisation = meter_with_key(registry, "17619300", spki_of(item))
    before = snapshot(registry)
    (outcome,) = run(registry, organisation, [item["ocmf"]]).items
    assert outcome.reason == "malformed"
    assert outcome.detail is not None and "fractional-wh" in outcome.detail
    assert snapshot(registry) == before


# ------------------------------------------------------------- records signed here


def ocmf_record(private: ec.EllipticCurvePrivateKey, meter: str, pg: int, tm: str, wh: int) -> str:
    payload = json.dumps(
        {
            "FV": "1.0",
            "MS": meter,
            "PG": f"T{pg}",
            "RD": [{"TM": f"{tm},000+0000 S", "TX": "E", "RV": wh, "RI": "1-0:1.8.0", "RU": "Wh"}],
        },
        separators=(",", ":"),
    )
    signature = private.sign(payload.encode(), ec.ECDSA(hashes.SHA256())).hex().upper()
    return f'OCMF|{payload}|{{"SA":"ECDSA-secp256r1-SHA256","SD":"{signature}"}}'


def test_sequence_rules_apply_to_ocmf_records(registry: Registry) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    organisation = meter_with_key(registry, "wb-1", public_key_spki(private.public_key()))
    first = ocmf_record(private, "wb-1", 1, "2025-03-01T10:00:00", 1_000)
    second = ocmf_record(private, "wb-1", 2, "2025-03-01T11:00:00", 2_000)
    assert [i.status for i in run(registry, organisation, [first, second]).items] == [
        "accepted",
        "accepted",
    ]
    before = snapshot(registry)
    stranger = ec.generate_private_key(ec.SECP256R1())

    outcomes = run(
        registry,
        organisation,
        [
            ocmf_record(private, "wb-1", 2, "2025-03-01T11:00:00", 2_001),  # same PG, new content
            ocmf_record(private, "wb-1", 3, "2025-03-01T12:00:00", 1_500),  # register fell
            ocmf_record(private, "wb-1", 4, "2025-03-01T10:30:00", 2_500),  # time went back
            ocmf_record(stranger, "wb-1", 5, "2025-03-01T13:00:00", 3_000),  # another key
            first,  # the same record again
        ],
    ).items

    assert [(o.status, o.reason) for o in outcomes] == [
        ("rejected", "equivocation"),
        ("rejected", "register-decreased"),
        ("rejected", "time-not-increasing"),
        ("rejected", "bad-signature"),
        ("duplicate", None),
    ]
    after = snapshot(registry)
    # No new reading; the equivocation evidence is kept, in the log as well (decision 98),
    # with both records verbatim.
    assert (after.size, after.readings) == (before.size + 1, before.readings)
    assert after.evidence == before.evidence + 1
    entry = parse_entry(registry.log.entry(before.size))
    assert entry["kind"] == "reading.equivocation/1"
    assert set(entry["conflicting"]) == {"ocmf"} and set(entry["accepted"]["reading"]) == {"ocmf"}


def test_envelopes_and_ocmf_records_share_one_batch_over_http(
    registry: Registry,
    api_client: TestClient,
    auth_headers: Callable[..., tuple[dict[str, str], str]],
) -> None:
    headers, organisation = auth_headers("readings:write", "readings:read")
    private = ec.generate_private_key(ec.SECP256R1())
    add_meter(registry, organisation, consumption_spec("wb-2"))
    register_key(
        registry.log,
        "wb-2",
        public_key_spki(private.public_key()),
        organisation_id=organisation,
        valid_from=KEYS_FROM,
    )
    add_meter(registry, organisation, consumption_spec("home-1"))
    key = new_key()
    register_key(
        registry.log, "home-1", key.spki, organisation_id=organisation, valid_from=KEYS_FROM
    )
    record = ocmf_record(private, "wb-2", 7, "2025-03-01T10:00:00", 42)
    envelope = sign(key, "home-1", 1, int(datetime(2025, 3, 1, tzinfo=UTC).timestamp()), 5)

    response = api_client.post(
        "/v1/readings", json={"readings": [record, envelope, "OCMF|{}|{}"]}, headers=headers
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["status"] for r in body["results"]] == ["accepted", "accepted", "rejected"]
    assert body["results"][2]["reason"] == "malformed"
    listed = api_client.get("/v1/meters/wb-2/readings", headers=headers).json()["readings"]
    assert [(r["seq"], r["envelope"]) for r in listed] == [(7, {"ocmf": record})]
