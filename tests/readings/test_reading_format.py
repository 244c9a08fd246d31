"""ledger.meters.readings parse_payload / parse_envelope (DESIGN §4.3): every format error is a
ReadingFormatError whose message names the offending field; nothing else escapes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.meters.readings import (
    MAX_REGISTER_WH,
    ReadingFormatError,
    b64url,
    load_meter_public_key,
    parse_envelope,
    parse_payload,
)

VALID_PAYLOAD: dict[str, Any] = {
    "meter": "meter-1",
    "seq": 7,
    "time": "2026-01-01T00:15:00Z",
    "importWh": 10_000,
    "exportWh": 25,
}
SIG = b64url(bytes(64))


def _with(**changes: Any) -> dict[str, Any]:
    return {**VALID_PAYLOAD, **changes}


def test_the_valid_payload_parses_and_round_trips() -> None:
    payload = parse_payload(VALID_PAYLOAD)
    assert payload.to_json() == VALID_PAYLOAD
    envelope = {"payload": VALID_PAYLOAD, "alg": "ES256", "sig": SIG}
    assert parse_envelope(envelope).to_json() == envelope


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        # bool is an int subclass in Python; JSON true must not count as 1
        (_with(seq=True), "seq"),
        (_with(importWh=False), "importWh"),
        (_with(exportWh=True), "exportWh"),
        # floats, even integral ones: no floats in signed payloads (DESIGN §4.1)
        (_with(importWh=1.0), "importWh"),
        (_with(exportWh=0.5), "exportWh"),
        (_with(seq=7.0), "seq"),
        # numbers as strings
        (_with(seq="7"), "seq"),
        (_with(importWh="10000"), "importWh"),
        # range: negative, above the JCS-safe bound
        (_with(seq=-1), "seq"),
        (_with(importWh=-1), "importWh"),
        (_with(exportWh=MAX_REGISTER_WH + 1), "exportWh"),
        (_with(seq=2**53), "seq"),
        (_with(importWh=None), "importWh"),
        # meter ids
        (_with(meter=""), "meter"),
        (_with(meter="has space"), "meter"),
        (_with(meter="-leading-dash"), "meter"),
        (_with(meter="m" * 129), "meter"),
        (_with(meter="zähler"), "meter"),
        (_with(meter=12), "meter"),
        # times: UTC "Z", whole seconds, RFC 3339 only
        (_with(time="2026-01-01T01:15:00+01:00"), "time"),
        (_with(time="2026-01-01T00:15:00+00:00"), "time"),
        (_with(time="2026-01-01T00:15:00.000Z"), "time"),
        (_with(time="2026-01-01T00:15:00z"), "time"),
        (_with(time="2026-01-01 00:15:00Z"), "time"),
        (_with(time="2026-01-01T00:15:00"), "time"),
        (_with(time="2026-02-30T00:15:00Z"), "time"),
        (_with(time="2026-01-01T24:00:00Z"), "time"),
        (_with(time=1767226500), "time"),
    ],
    ids=lambda value: "" if isinstance(value, dict) else value,
)
def test_payload_errors_name_the_field(payload: dict[str, Any], field: str) -> None:
    with pytest.raises(ReadingFormatError, match=field):
        parse_payload(payload)


@pytest.mark.parametrize(
    ("payload", "names"),
    [
        ({k: v for k, v in VALID_PAYLOAD.items() if k != "exportWh"}, ["missing ['exportWh']"]),
        ({k: v for k, v in VALID_PAYLOAD.items() if k not in ("seq", "time")}, ["'seq'", "'time'"]),
        (_with(importKWh=10), ["unexpected ['importKWh']"]),
        (_with(kind="reading/1"), ["'kind'"]),
    ],
)
def test_missing_and_extra_payload_fields_are_named(
    payload: dict[str, Any], names: list[str]
) -> None:
    with pytest.raises(ReadingFormatError) as caught:
        parse_payload(payload)
    for name in names:
        assert name in str(caught.value)


@pytest.mark.parametrize("value", [None, [], "payload", 7, [VALID_PAYLOAD]])
def test_payload_must_be_an_object(value: Any) -> None:
    with pytest.raises(ReadingFormatError, match="payload must be a JSON object"):
        parse_payload(value)


@pytest.mark.parametrize(
    ("envelope", "field"),
    [
        ({"payload": VALID_PAYLOAD, "alg": "ES256"}, "missing \\['sig'\\]"),
        ({"payload": VALID_PAYLOAD, "alg": "ES256", "sig": SIG, "kid": "x"}, "unexpected"),
        ({"payload": VALID_PAYLOAD, "alg": "EdDSA", "sig": SIG}, "alg"),
        ({"payload": VALID_PAYLOAD, "alg": "es256", "sig": SIG}, "alg"),
        ({"payload": VALID_PAYLOAD, "alg": None, "sig": SIG}, "alg"),
        ({"payload": VALID_PAYLOAD, "alg": ["ES256"], "sig": SIG}, "alg"),
        ({"payload": VALID_PAYLOAD, "alg": {"ES256": 1}, "sig": SIG}, "alg"),
        # base64url without padding only: a padded or standard-alphabet sig is refused
        ({"payload": VALID_PAYLOAD, "alg": "ES256", "sig": SIG + "=="}, "sig"),
        ({"payload": VALID_PAYLOAD, "alg": "ES256", "sig": SIG[:-2] + "+/"}, "sig"),
        ({"payload": VALID_PAYLOAD, "alg": "ES256", "sig": "!!!!"}, "sig"),
        ({"payload": VALID_PAYLOAD, "alg": "ES256", "sig": SIG[:40] + " " + SIG[40:]}, "sig"),
        # 64 bytes leave 2 spare bits in the last character: "B" sets one, same bytes.
        ({"payload": VALID_PAYLOAD, "alg": "ES256", "sig": SIG[:-1] + "B"}, "sig"),
        ({"payload": VALID_PAYLOAD, "alg": "ES256", "sig": 12}, "sig"),
        ({"payload": VALID_PAYLOAD, "alg": "ES256", "sig": b64url(bytes(63))}, "64 bytes"),
        ({"payload": VALID_PAYLOAD, "alg": "Ed25519", "sig": b64url(bytes(72))}, "64 bytes"),
        ({"payload": _with(seq=True), "alg": "ES256", "sig": SIG}, "seq"),
        ({"payload": "{}", "alg": "ES256", "sig": SIG}, "payload"),
    ],
)
def test_envelope_errors_name_the_field(envelope: dict[str, Any], field: str) -> None:
    with pytest.raises(ReadingFormatError, match=field):
        parse_envelope(envelope)


def test_padded_signature_message_says_why() -> None:
    envelope = {"payload": VALID_PAYLOAD, "alg": "ES256", "sig": b64url(bytes(64)) + "="}
    with pytest.raises(ReadingFormatError, match="without padding"):
        parse_envelope(envelope)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    envelope=st.fixed_dictionaries(
        {},
        optional={
            "payload": st.one_of(
                json_values,
                st.fixed_dictionaries(
                    {k: st.one_of(st.just(v), json_values) for k, v in VALID_PAYLOAD.items()}
                ),
            ),
            "alg": st.sampled_from(["Ed25519", "ES256", "RS256", ""]) | json_values,
            "sig": st.just(SIG) | st.text(max_size=100) | json_values,
        },
    )
)
def test_arbitrary_envelopes_raise_only_reading_format_errors(envelope: dict[str, Any]) -> None:
    try:
        reading = parse_envelope(json.loads(json.dumps(envelope)))
    except ReadingFormatError as error:
        assert str(error)
    else:
        # Whatever parses must canonicalise: the bytes to verify always exist.
        assert reading.payload.canonical_bytes()


def test_a_key_on_a_curve_openssl_does_not_know_is_a_format_error() -> None:
    # A brainpoolP256r1 SPKI whose curve OID's last arc was changed: well-formed DER that
    # cryptography answers with UnsupportedAlgorithm, which must not escape as a crash.
    unknown_curve_spki = bytes.fromhex(
        "305a301406072a8648ce3d020106092b2403030208010178034200040d3c75e1b27939e6554bc1f62e"
        "d3036c06196fb254899b25828178f457dbe2258b7d9f2a886ff06cae2e3222800d3ca13f41b88eb1b9"
        "20a0d131e864fc03d0d2"
    )
    with pytest.raises(ReadingFormatError, match="Ed25519 or ECDSA P-256"):
        load_meter_public_key(unknown_curve_spki)
