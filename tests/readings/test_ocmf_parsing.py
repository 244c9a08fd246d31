"""ledger.meters.ocmf beyond the real records: every supported curve and spelling, refusals with
their reason codes, exact kWh/Wh conversion, TM parsing, the meter id, and robustness
(arbitrary input only ever raises OcmfError)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.meters.ocmf import (
    MAX_OCMF_BYTES,
    OcmfError,
    ocmf_readings,
    ocmf_value_to_wh,
    parse_ocmf,
    parse_ocmf_time,
    verify_ocmf,
)

CURVE_SPELLINGS: list[tuple[str, ec.EllipticCurve]] = [
    ("secp256r1", ec.SECP256R1()),
    ("secp256k1", ec.SECP256K1()),
    ("secp384r1", ec.SECP384R1()),
    ("brainpoolP256r1", ec.BrainpoolP256R1()),
    ("brainpool256r1", ec.BrainpoolP256R1()),
    ("brainpoolP384r1", ec.BrainpoolP384R1()),
    ("brainpool384r1", ec.BrainpoolP384R1()),
]


def _payload(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "FV": "1.0",
        "GI": "TEST GATEWAY",
        "GS": "GW-1",
        "PG": "T7",
        "MS": "METER-1",
        "IS": False,
        "RD": [
            {
                "TM": "2024-03-01T12:00:00,000+0100 S",
                "TX": "B",
                "RV": "12.345",
                "RI": "1-b:1.8.0",
                "RU": "kWh",
                "ST": "G",
            }
        ],
    }
    payload.update(overrides)
    return payload


def _spki(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _sign(
    key: ec.EllipticCurvePrivateKey,
    payload_text: str,
    header: dict[str, Any],
    *,
    encoding: str = "hex",
) -> str:
    der = key.sign(payload_text.encode(), ec.ECDSA(hashes.SHA256()))
    data = der.hex().upper() if encoding == "hex" else base64.b64encode(der).decode()
    return f"OCMF|{payload_text}|{json.dumps({**header, 'SD': data})}"


@pytest.mark.parametrize(
    ("spelling", "curve"), CURVE_SPELLINGS, ids=[s for s, _ in CURVE_SPELLINGS]
)
@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_every_supported_curve_and_spelling_verifies(
    spelling: str, curve: ec.EllipticCurve, encoding: str
) -> None:
    key = ec.generate_private_key(curve)
    header = {"SA": f"ECDSA-{spelling}-SHA256"}
    if encoding == "base64":
        header["SE"] = "base64"
    record = _sign(key, json.dumps(_payload()), header, encoding=encoding)
    parsed = verify_ocmf(record, _spki(key))
    assert parsed.signature.curve == curve.name
    # A raw uncompressed point on the same curve is accepted as the same key.
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    verify_ocmf(record, point)
    # And another key on the same curve does not verify it.
    with pytest.raises(OcmfError) as caught:
        verify_ocmf(record, _spki(ec.generate_private_key(curve)))
    assert caught.value.reason == "bad-signature"


def test_missing_sa_means_secp256r1() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    record = _sign(key, json.dumps(_payload()), {})
    assert verify_ocmf(record, _spki(key)).signature.algorithm == "ECDSA-secp256r1-SHA256"
    with pytest.raises(OcmfError) as caught:
        verify_ocmf(record, _spki(ec.generate_private_key(ec.SECP256K1())))
    assert caught.value.reason == "key-curve-mismatch"


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ({"SA": "ECDSA-secp192k1-SHA256"}, "unsupported-curve"),
        ({"SA": "ECDSA-secp192r1-SHA256"}, "unsupported-curve"),
        ({"SA": "ECDSA-secp521r1-SHA256"}, "unsupported-curve"),
        ({"SA": "ECDSA-secp256r1-MD5"}, "unsupported-algorithm"),
        ({"SA": "RSA-2048-SHA256"}, "unsupported-algorithm"),
        ({"SA": 256}, "malformed"),
        ({"SE": "base32"}, "unsupported-encoding"),
        ({"SM": "application/x-raw"}, "unsupported-algorithm"),
    ],
    ids=str,
)
def test_unsupported_signature_headers_are_refused_with_a_reason(
    header: dict[str, Any], reason: str
) -> None:
    record = f"OCMF|{json.dumps(_payload())}|{json.dumps({**header, 'SD': '3006020101020101'})}"
    with pytest.raises(OcmfError) as caught:
        parse_ocmf(record)
    assert caught.value.reason == reason
    assert caught.value.detail  # a human-readable explanation beside the code


def test_unsupported_curve_keys_are_refused_not_leaked() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    record = _sign(key, json.dumps(_payload()), {"SA": "ECDSA-secp256r1-SHA256"})
    # An Ed25519 key and a P-521 key for a secp256r1 record: a reason, no cryptography error.
    ed_spki = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for wrong in (ed_spki, _spki(ec.generate_private_key(ec.SECP521R1()))):
        with pytest.raises(OcmfError) as caught:
            verify_ocmf(record, wrong)
        assert caught.value.reason == "key-curve-mismatch"
    for garbage, reason in [
        (b"\x30\x03\x02\x01\x00", "bad-public-key"),
        (b"\x04" + b"\x01" * 64, "bad-public-key"),  # right length, not on the curve
        (b"\x04\x01", "bad-public-key"),
        (b"", "missing-public-key"),
    ]:
        with pytest.raises(OcmfError) as caught:
            verify_ocmf(record, garbage)
        assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ("", "malformed"),
        ("OCMF|", "malformed"),
        ("OCMX|{}|{}", "malformed"),
        ('OCMF|{"RD":[]}', "malformed"),  # one section only: the "|" found is the prefix's
        ('OCMF|{"RD":[]|{"SD":"00"}', "malformed"),
        ('OCMF|[]|{"SD":"3000"}', "malformed"),
        ('OCMF|{"RD":{}}|{"SD":"3000"}', "malformed"),
        ('OCMF|{"RD":[1]}|{"SD":"3000"}', "malformed"),
        ('OCMF|{"RD":[],"RD":[]}|{"SD":"3000"}', "malformed"),  # duplicate key
        ('OCMF|{"RD":[],"X":NaN}|{"SD":"3000"}', "malformed"),
        ('OCMF|{"RD":[]}|{"SD":"zz"}', "bad-signature-encoding"),
        ('OCMF|{"RD":[]}|{"SD":"@@@@","SE":"base64"}', "bad-signature-encoding"),
        ('OCMF|{"RD":[]}|{"SD":""}', "malformed"),
        ('OCMF|{"RD":[]}|{}', "malformed"),
        ("OCMF|" + " " * MAX_OCMF_BYTES + '{"RD":[]}|{"SD":"00"}', "too-large"),
    ],
)
def test_structural_errors_have_reasons(record: str, reason: str) -> None:
    with pytest.raises(OcmfError) as caught:
        parse_ocmf(record)
    assert caught.value.reason == reason


def test_invalid_utf8_is_malformed() -> None:
    with pytest.raises(OcmfError) as caught:
        parse_ocmf(b'OCMF|{"RD":[],"GI":"\xff"}|{"SD":"3000"}')
    assert caught.value.reason == "malformed"


def test_undecodable_signature_is_named() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    record = f'OCMF|{json.dumps(_payload())}|{{"SD":"0102030405"}}'
    with pytest.raises(OcmfError) as caught:
        verify_ocmf(record, _spki(key))
    assert caught.value.reason == "bad-signature-encoding"


_FUZZ_KEY = _spki(ec.generate_private_key(ec.SECP256R1()))


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_arbitrary_input_raises_only_ocmf_error(data: str | bytes) -> None:
    key = _FUZZ_KEY
    for candidate in (data, b"OCMF|" + (data.encode() if isinstance(data, str) else data)):
        try:
            verify_ocmf(candidate, key)
        except OcmfError as error:
            assert error.reason
        else:
            pytest.fail("random input verified")


@settings(max_examples=200, deadline=None)
@given(
    header=st.dictionaries(
        st.sampled_from(["SA", "SE", "SM", "SD"]),
        st.one_of(st.text(max_size=20), st.integers(), st.none(), st.booleans()),
    ),
    readings=st.lists(
        st.dictionaries(
            st.sampled_from(["TM", "TX", "RV", "RI", "RU", "ST"]),
            st.one_of(st.text(max_size=30), st.integers(), st.none(), st.floats()),
        ),
        max_size=3,
    ),
)
def test_structured_garbage_raises_only_ocmf_error(
    header: dict[str, Any], readings: list[dict[str, Any]]
) -> None:
    record = f"OCMF|{json.dumps(_payload(RD=readings))}|{json.dumps(header)}"
    try:
        ocmf_readings(verify_ocmf(record, _FUZZ_KEY))
    except OcmfError as error:
        assert error.reason


# --------------------------------------------------------------------------- kWh / Wh


@pytest.mark.parametrize(
    ("value", "unit", "wh"),
    [
        (1833, "Wh", 1833),
        (Decimal("1833.0"), "Wh", 1833),
        ("       9.038", "kWh", 9038),  # DZG: padded string
        ("00000000.000", "kWh", 0),  # ISA: zero-padded
        ("1.606848e7", "kWh", 16_068_480_000),  # Enercharge: exponent form
        (Decimal("1234.56"), "kWh", 1_234_560),
        (Decimal("0.001"), "kWh", 1),
        (0, "kWh", 0),
        # The largest register (2**53 - 1 Wh); float(...) * 1000 would not give it exactly.
        (Decimal("9007199254740.991"), "kWh", 9_007_199_254_740_991),
        ("9007199254740991", "Wh", 9_007_199_254_740_991),
    ],
)
def test_values_convert_exactly_to_wh(value: Any, unit: str, wh: int) -> None:
    assert ocmf_value_to_wh(value, unit) == wh


@pytest.mark.parametrize(
    ("value", "unit", "reason"),
    [
        (Decimal("0.2596"), "kWh", "fractional-wh"),  # KEBA: 0.1 Wh resolution
        (Decimal("0.0001"), "kWh", "fractional-wh"),
        ("1.5", "Wh", "fractional-wh"),
        (True, "Wh", "bad-value"),
        (None, "Wh", "bad-value"),
        (1.5, "kWh", "bad-value"),  # a Python float never reaches here from parse_ocmf
        ("-1", "Wh", "bad-value"),
        ("abc", "kWh", "bad-value"),
        ("", "kWh", "bad-value"),
        ("NaN", "kWh", "bad-value"),
        ("Infinity", "Wh", "bad-value"),
        ("1e999999999", "kWh", "bad-value"),
        (str(2**53), "Wh", "bad-value"),  # beyond what JCS can carry in a leaf
        (Decimal("9007199254740.992"), "kWh", "bad-value"),
        (30, "sec", "bad-value"),
    ],
)
def test_values_that_are_not_whole_wh_are_refused(value: Any, unit: str, reason: str) -> None:
    with pytest.raises(OcmfError) as caught:
        ocmf_value_to_wh(value, unit)
    assert caught.value.reason == reason


def test_json_decimals_are_never_floats() -> None:
    # 0.1 + 0.2 style: "1.001" kWh parsed as float and multiplied gives 1000.9999999999999.
    key = ec.generate_private_key(ec.SECP256R1())
    payload = json.dumps(_payload()).replace('"12.345"', "1.001")
    (reading,) = ocmf_readings(verify_ocmf(_sign(key, payload, {}), _spki(key)))
    assert reading.wh == 1001


# --------------------------------------------------------------------------- TM and mapping


@pytest.mark.parametrize(
    ("text", "moment", "status"),
    [
        (
            "2021-10-07T15:29:55,000+0200 S",
            datetime(2021, 10, 7, 13, 29, 55, tzinfo=UTC),
            "synchronised",
        ),
        (
            "2019-04-02T17:28:45,867+0200 I",
            datetime(2019, 4, 2, 15, 28, 45, 867_000, tzinfo=UTC),
            "informative",
        ),
        ("1970-01-01T03:25:16,000+0100 U", datetime(1970, 1, 1, 2, 25, 16, tzinfo=UTC), "unknown"),
        (
            "2019-08-13T10:03:36,000-0330 R",
            datetime(2019, 8, 13, 13, 33, 36, tzinfo=UTC),
            "relative",
        ),
    ],
)
def test_ocmf_time_and_sync_flag(text: str, moment: datetime, status: str) -> None:
    parsed, flag = parse_ocmf_time(text)
    assert parsed == moment
    assert flag == status


def test_ocmf_time_keeps_its_offset() -> None:
    parsed, _ = parse_ocmf_time("2021-10-07T15:29:55,000+0200 S")
    assert parsed.utcoffset() == timedelta(hours=2)
    assert parsed.tzinfo == timezone(timedelta(hours=2))


@pytest.mark.parametrize(
    "text",
    [
        "2021-10-07T15:29:55+0200 S",  # no milliseconds
        "2021-10-07T15:29:55,000+0200",  # no flag
        "2021-10-07T15:29:55,000+0200 X",  # unknown flag
        "2021-10-07T15:29:55.000+02:00 S",
        "2021-13-07T15:29:55,000+0200 S",  # month 13
        "2021-02-30T15:29:55,000+0200 S",
        "2021-10-07T15:29:55,000+2400 S",  # offset of a full day
        None,
        1633613395,
    ],
)
def test_bad_ocmf_times_are_refused(text: Any) -> None:
    with pytest.raises(OcmfError) as caught:
        parse_ocmf_time(text)
    assert caught.value.reason == "bad-time"


def test_readings_map_registers_units_and_inherited_time() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    readings = [
        {
            "TM": "2024-03-01T12:00:00,000+0100 S",
            "TX": "B",
            "ST": "G",
            "RV": "12.345",
            "RI": "1-b:1.8.0",
            "RU": "kWh",
        },
        # no TM: the same instant as the entry before (ISA, KEBA do this)
        {"RV": 500, "RI": "01-00:02.08.00.FF", "RU": "Wh"},
        {"RV": "30", "RI": "01-00:00.08.06.FF", "RU": "sec"},  # a duration: not energy
        {
            "TM": "2024-03-01T12:15:00,000+0100 S",
            "TX": "E",
            "ST": "E",
            "RV": 12.5,
            "RI": "1-0:98.8.0.FF",
            "RU": "kWh",
        },
    ]
    payload = json.dumps(_payload(RD=readings))
    record = verify_ocmf(_sign(key, payload, {}), _spki(key))
    mapped = ocmf_readings(record)
    assert [(r.register, r.wh) for r in mapped] == [
        ("import", 12_345),
        ("export", 500),
        ("other", 12_500),
    ]
    assert {r.meter for r in mapped} == {"METER-1"}
    assert mapped[0].time == mapped[1].time == datetime(2024, 3, 1, 11, 0, tzinfo=UTC)
    assert (mapped[1].transaction, mapped[1].status) == ("B", "G")
    assert (mapped[2].transaction, mapped[2].status, mapped[2].time_status) == (
        "E",
        "E",
        "synchronised",
    )
    assert record.pagination == ("T", 7)


def test_first_reading_without_time_is_refused() -> None:
    payload = _payload(RD=[{"RV": 1, "RI": "1-b:1.8.0", "RU": "Wh"}])
    record = parse_ocmf(f'OCMF|{json.dumps(payload)}|{{"SD":"3000"}}')
    with pytest.raises(OcmfError) as caught:
        ocmf_readings(record)
    assert caught.value.reason == "bad-time"


@pytest.mark.parametrize(
    ("fields", "meter"),
    [
        ({"MS": "1DZG0033016824", "GS": "060643"}, "1DZG0033016824"),  # the meter's serial
        ({"MS": "", "GS": "17619300"}, "17619300"),  # KEBA: the device itself
        ({"GS": " 17619300 "}, "17619300"),
    ],
)
def test_meter_id_prefers_the_meter_serial(fields: dict[str, Any], meter: str) -> None:
    payload = {k: v for k, v in _payload().items() if k not in ("MS", "GS")} | fields
    assert parse_ocmf(f'OCMF|{json.dumps(payload)}|{{"SD":"3000"}}').meter_id == meter


@pytest.mark.parametrize("fields", [{}, {"MS": "", "GS": ""}, {"MS": "has space"}, {"MS": 12}])
def test_missing_or_unusable_meter_id(fields: dict[str, Any]) -> None:
    payload = {k: v for k, v in _payload().items() if k not in ("MS", "GS")} | fields
    record = parse_ocmf(f'OCMF|{json.dumps(payload)}|{{"SD":"3000"}}')
    with pytest.raises(OcmfError) as caught:
        _ = record.meter_id
    assert caught.value.reason == "missing-meter-id"


@pytest.mark.parametrize(
    "point_format",
    [serialization.PublicFormat.UncompressedPoint, serialization.PublicFormat.CompressedPoint],
)
def test_raw_point_encodings_are_accepted(point_format: serialization.PublicFormat) -> None:
    key = ec.generate_private_key(ec.BrainpoolP384R1())
    record = _sign(key, json.dumps(_payload()), {"SA": "ECDSA-brainpool384r1-SHA256"})
    point = key.public_key().public_bytes(serialization.Encoding.X962, point_format)
    verify_ocmf(record, point)
    if point_format is serialization.PublicFormat.UncompressedPoint:
        verify_ocmf(record, point[1:])  # bare X‖Y, as Isabellenhütte publishes it


def test_bare_point_starting_like_der_is_still_a_point() -> None:
    # X‖Y whose first byte is 0x30 looks like the start of DER; it must still load.
    for _ in range(20_000):
        key = ec.generate_private_key(ec.SECP256R1())
        bare = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )[1:]
        if bare[0] == 0x30:
            break
    else:
        pytest.fail("no key with X starting 0x30 in 20,000 tries (p < 1e-30)")
    record = _sign(key, json.dumps(_payload()), {})
    verify_ocmf(record, bare)
