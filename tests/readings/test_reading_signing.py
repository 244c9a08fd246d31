"""meter_signing.signing against ledger.meters.readings: what the device signs, the registry
verifies;
any change to a signed field, the alg or a signature byte makes verification fail; the
MeterSigner never signs a seq or time that does not strictly increase."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.meters.readings import (
    MAX_REGISTER_WH,
    METER_ID_PATTERN,
    Algorithm,
    ReadingFormatError,
    ReadingPayload,
    ReadingSignatureError,
    SignedReading,
    b64url_decode,
    parse_envelope,
    verify_signed_reading,
)
from meter_signing.keys import MeterKey, generate_meter_key, meter_key_from_private
from meter_signing.signing import (
    MeterSigner,
    SequenceError,
    sign_payload,
    sign_reading,
    verify_envelope,
)

# Key generation is slow next to signing; one key per algorithm serves every example.
KEYS: dict[Algorithm, MeterKey] = {alg: generate_meter_key(alg) for alg in ("Ed25519", "ES256")}
T0 = datetime(2026, 1, 1, 0, 15, tzinfo=UTC)

payloads = st.builds(
    ReadingPayload,
    meter=st.from_regex(METER_ID_PATTERN, fullmatch=True),
    seq=st.integers(0, MAX_REGISTER_WH),
    # Years before 1000 are left out: strftime("%Y") does not zero-pad them (see report).
    time=st.datetimes(
        min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)
    ).map(lambda moment: moment.replace(microsecond=0, tzinfo=UTC)),
    import_wh=st.integers(0, MAX_REGISTER_WH),
    export_wh=st.integers(0, MAX_REGISTER_WH),
)
algs = st.sampled_from(sorted(KEYS))


def _envelope_round_trip(reading: SignedReading) -> SignedReading:
    """Through the wire format: JSON text, parsed back with the registry's parser."""
    return parse_envelope(json.loads(json.dumps(reading.to_json())))


@settings(max_examples=150, deadline=None)
@given(payload=payloads, alg=algs)
def test_random_signed_payloads_verify(payload: ReadingPayload, alg: Algorithm) -> None:
    key = KEYS[alg]
    received = _envelope_round_trip(sign_payload(payload, key))
    assert received.payload == payload
    assert received.alg == alg
    verify_signed_reading(received, key.public_spki)


def _changed(payload: ReadingPayload, field: str, data: st.DataObject) -> ReadingPayload:
    if field == "meter":
        other = data.draw(
            st.from_regex(METER_ID_PATTERN, fullmatch=True).filter(lambda m: m != payload.meter)
        )
        return replace(payload, meter=other)
    if field == "time":
        delta = data.draw(st.sampled_from([-1, 1]))
        moment = payload.time + timedelta(seconds=delta)
        if moment.year > 9999 or moment.year < 1970:
            moment = payload.time - timedelta(seconds=delta)
        return replace(payload, time=moment)
    current = {"seq": payload.seq, "importWh": payload.import_wh, "exportWh": payload.export_wh}
    value = data.draw(st.integers(0, MAX_REGISTER_WH).filter(lambda v: v != current[field]))
    if field == "seq":
        return replace(payload, seq=value)
    if field == "importWh":
        return replace(payload, import_wh=value)
    return replace(payload, export_wh=value)


@settings(max_examples=150, deadline=None)
@given(
    payload=payloads,
    alg=algs,
    field=st.sampled_from(["meter", "seq", "time", "importWh", "exportWh"]),
    data=st.data(),
)
def test_changing_any_signed_field_breaks_the_signature(
    payload: ReadingPayload, alg: Algorithm, field: str, data: st.DataObject
) -> None:
    key = KEYS[alg]
    signed = sign_payload(payload, key)
    forged = replace(signed, payload=_changed(payload, field, data))
    with pytest.raises(ReadingSignatureError):
        verify_signed_reading(_envelope_round_trip(forged), key.public_spki)


@settings(max_examples=150, deadline=None)
@given(payload=payloads, alg=algs, position=st.integers(0, 63), flip=st.integers(1, 255))
def test_changing_any_signature_byte_breaks_the_signature(
    payload: ReadingPayload, alg: Algorithm, position: int, flip: int
) -> None:
    key = KEYS[alg]
    signed = sign_payload(payload, key)
    damaged = bytearray(signed.signature)
    damaged[position] ^= flip
    with pytest.raises(ReadingSignatureError):
        verify_signed_reading(replace(signed, signature=bytes(damaged)), key.public_spki)


@settings(max_examples=50, deadline=None)
@given(payload=payloads, alg=algs)
def test_changing_the_alg_breaks_verification(payload: ReadingPayload, alg: Algorithm) -> None:
    key = KEYS[alg]
    other: Algorithm = "ES256" if alg == "Ed25519" else "Ed25519"
    relabelled = replace(sign_payload(payload, key), alg=other)
    with pytest.raises(ReadingSignatureError, match="key is an"):
        verify_signed_reading(_envelope_round_trip(relabelled), key.public_spki)
    # Nor does the signature verify under the other algorithm's key.
    with pytest.raises(ReadingSignatureError):
        verify_signed_reading(relabelled, KEYS[other].public_spki)


# --------------------------------------------------------------------------- exact bytes


def test_the_signature_covers_the_jcs_payload_bytes() -> None:
    payload = ReadingPayload("meter-1", 7, T0, 10_000, 25)
    expected = (
        b'{"exportWh":25,"importWh":10000,"meter":"meter-1","seq":7,"time":"2026-01-01T00:15:00Z"}'
    )
    assert payload.canonical_bytes() == expected == rfc8785.dumps(payload.to_json())

    ed = KEYS["Ed25519"]
    ed_signed = sign_payload(payload, ed)
    assert isinstance(ed.private_key, Ed25519PrivateKey)
    ed.private_key.public_key().verify(ed_signed.signature, expected)

    es = KEYS["ES256"]
    es_signed = sign_payload(payload, es)
    assert len(es_signed.signature) == 64  # raw r‖s, JWS style, never DER
    assert isinstance(es.private_key, ec.EllipticCurvePrivateKey)
    r = int.from_bytes(es_signed.signature[:32], "big")
    s = int.from_bytes(es_signed.signature[32:], "big")
    es.private_key.public_key().verify(
        encode_dss_signature(r, s), expected, ec.ECDSA(hashes.SHA256())
    )


def test_ed25519_signing_is_deterministic_known_answer() -> None:
    # RFC 8032 Ed25519 is deterministic: a fixed key and payload give a fixed envelope.
    key = meter_key_from_private(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
    first = sign_reading(key, "meter-1", seq=7, time=T0, import_wh=10_000, export_wh=25)
    again = sign_reading(key, "meter-1", seq=7, time=T0, import_wh=10_000, export_wh=25)
    assert first.to_json() == again.to_json()
    envelope = first.to_json()
    assert set(envelope) == {"payload", "alg", "sig"}
    assert envelope["alg"] == "Ed25519"
    assert "=" not in envelope["sig"] and "+" not in envelope["sig"] and "/" not in envelope["sig"]
    assert b64url_decode(envelope["sig"]) == first.signature


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"seq": -1}, "seq"),
        ({"seq": True}, "seq"),
        ({"import_wh": 1.5}, "importWh"),
        ({"export_wh": MAX_REGISTER_WH + 1}, "exportWh"),
        ({"time": datetime(2026, 1, 1, 0, 15, 0, 500_000, tzinfo=UTC)}, "whole seconds"),
        ({"time": datetime(2026, 1, 1, 0, 15)}, "UTC"),
    ],
)
def test_signing_refuses_bad_fields_and_names_them(kwargs: dict[str, Any], field: str) -> None:
    arguments: dict[str, Any] = {"seq": 1, "time": T0, "import_wh": 0, "export_wh": 0}
    arguments.update(kwargs)
    with pytest.raises(ReadingFormatError, match=field):
        sign_reading(KEYS["Ed25519"], "meter-1", **arguments)


# --------------------------------------------------------------------------- MeterSigner


@pytest.mark.parametrize("alg", sorted(KEYS))
def test_meter_signer_signs_increasing_readings(alg: Algorithm) -> None:
    signer = MeterSigner("meter-1", KEYS[alg])
    readings = [signer.sign_next(T0 + timedelta(minutes=15 * i), 100 * i, 0) for i in range(4)]
    assert [r.payload.seq for r in readings] == [1, 2, 3, 4]
    for reading in readings:
        verify_signed_reading(_envelope_round_trip(reading), KEYS[alg].public_spki)
    assert signer.last_seq == 4
    assert signer.last_time == T0 + timedelta(minutes=45)


@pytest.mark.parametrize(
    ("seq", "offset", "message"),
    [
        (5, timedelta(minutes=15), "seq 5 is not above"),  # same seq
        (4, timedelta(minutes=15), "seq 4 is not above"),  # lower seq
        (6, timedelta(0), "is not after"),  # same time
        (6, timedelta(seconds=-1), "is not after"),  # earlier time
    ],
)
def test_meter_signer_refuses_non_increasing_seq_or_time(
    seq: int, offset: timedelta, message: str
) -> None:
    signer = MeterSigner("meter-1", KEYS["ES256"])
    signer.sign(5, T0, 10, 0)
    with pytest.raises(SequenceError, match=message):
        signer.sign(seq, T0 + offset, 20, 0)
    # The refusal left the high-water marks alone: the next proper reading still signs.
    assert (signer.last_seq, signer.last_time) == (5, T0)
    assert signer.sign(6, T0 + timedelta(minutes=15), 20, 0).payload.seq == 6


def test_meter_signer_resumes_after_a_restart() -> None:
    signer = MeterSigner("meter-1", KEYS["Ed25519"], last_seq=41, last_time=T0)
    with pytest.raises(SequenceError):
        signer.sign(41, T0 + timedelta(hours=1), 0, 0)
    with pytest.raises(SequenceError):
        signer.sign_next(T0, 0, 0)
    assert signer.sign_next(T0 + timedelta(hours=1), 0, 0).payload.seq == 42


def test_meter_signer_rejects_a_bad_meter_id_or_resume_time_up_front() -> None:
    with pytest.raises(ReadingFormatError, match="meter"):
        MeterSigner("no spaces allowed", KEYS["Ed25519"])
    with pytest.raises(ReadingFormatError, match="UTC"):
        MeterSigner("meter-1", KEYS["Ed25519"], last_seq=1, last_time=datetime(2026, 1, 1))


def test_meter_signer_sign_json_is_the_wire_envelope() -> None:
    signer = MeterSigner("meter-1", KEYS["ES256"])
    envelope = signer.sign_json(1, T0, 5, 6)
    assert envelope["payload"] == {
        "meter": "meter-1",
        "seq": 1,
        "time": "2026-01-01T00:15:00Z",
        "importWh": 5,
        "exportWh": 6,
    }
    verify_signed_reading(parse_envelope(envelope), KEYS["ES256"].public_spki)


def test_verify_envelope_accepts_the_signer_output_and_refuses_the_wrong_key() -> None:
    envelope = MeterSigner("meter-1", KEYS["Ed25519"]).sign_json(3, T0, 1, 2)
    assert verify_envelope(envelope, KEYS["Ed25519"].public_spki).payload.seq == 3
    other = generate_meter_key("Ed25519")
    with pytest.raises(ReadingSignatureError):
        verify_envelope(envelope, other.public_spki)
    with pytest.raises(ReadingFormatError, match="sig"):
        verify_envelope({**envelope, "sig": envelope["sig"] + "="}, KEYS["Ed25519"].public_spki)
