"""Real OCMF records from tests/data/ocmf get exactly their recorded verdicts.

Two files, one table each:
- ocmf_examples.json: 11 curated records with notes (upstream: SAFE-eV transparenzsoftware
  test resources and pyocmf); `valid` is true, false, or null where the recorder could not
  check the curve (secp192k1).
- ocmf_all_raw.json: 250 records; `valid` is true, false, null (no public key in the source)
  or "ERR:<message>" where the recorder's own attempt failed before verification.

Verdict mapping (every record must land exactly here):
  true                          -> verify_ocmf succeeds
  false                         -> OcmfError "bad-signature" or "key-curve-mismatch"
  null/ERR with unsupported SA  -> OcmfError "unsupported-curve"
  null/ERR with no key given    -> OcmfError "missing-public-key"
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from testdata_support import TESTDATA, require_testdata

from ledger.meters.ocmf import OcmfError, ocmf_readings, parse_ocmf, verify_ocmf

OCMF_DIR = TESTDATA / "ocmf"
SIGNATURE_FAILURES = {"bad-signature", "key-curve-mismatch"}


def _load(name: str) -> Any:
    path = OCMF_DIR / name
    return json.loads(path.read_text("utf-8")) if path.exists() else None


EXAMPLES_FILE: dict[str, Any] | None = _load("ocmf_examples.json")
RAW_FILE: list[dict[str, Any]] | None = _load("ocmf_all_raw.json")
CURATED: list[dict[str, Any]] = EXAMPLES_FILE["examples"] if EXAMPLES_FILE else []
RAW: list[dict[str, Any]] = RAW_FILE or []


def _curated_id(record: dict[str, Any]) -> str:
    return f"{Path(record['source_file']).stem}#{record['index_in_file']}"


def _raw_id(position: int, record: dict[str, Any]) -> str:
    payload = parse_ocmf(record["ocmf"]).payload if "secp192k1" not in record["ocmf"] else {}
    return f"{position:03d}-{Path(record['file']).stem}-{payload.get('PG', 'unsupported')}"


def _key(record: dict[str, Any]) -> bytes | None:
    text = record["public_key_der_hex"]
    return bytes.fromhex(text) if text else None


def _expected(record: dict[str, Any]) -> str:
    """'valid', 'invalid', or the OcmfError reason the record must be refused with."""
    verdict = record["valid"]
    if verdict is True:
        return "valid"
    if verdict is False:
        return "invalid"
    # null or "ERR:..": the recorder did not get to a verdict; we must say why, clearly.
    if "secp192k1" in record["ocmf"]:
        return "unsupported-curve"
    assert record["public_key_der_hex"] is None, "a recorded non-verdict always lacks a key"
    return "missing-public-key"


def _outcome(record: dict[str, Any]) -> str:
    try:
        verify_ocmf(record["ocmf"], _key(record))
    except OcmfError as error:
        return "invalid" if error.reason in SIGNATURE_FAILURES else error.reason
    return "valid"


def test_the_tables_hold_what_the_issue_promises() -> None:
    require_testdata("ocmf", "ocmf_examples.json")
    require_testdata("ocmf", "ocmf_all_raw.json")
    assert len(CURATED) == 11
    assert len(RAW) == 250
    # The raw file must exercise every supported curve we have real data for, and failures.
    curves = {record["curve"] for record in RAW if record["valid"] is True}
    assert curves == {"secp256r1", "secp256k1", "secp384r1", "brainpoolP256r1"}
    assert sum(record["valid"] is False for record in RAW) == 3


@pytest.mark.parametrize("record", CURATED, ids=[_curated_id(r) for r in CURATED])
def test_curated_record_gets_its_recorded_verdict(record: dict[str, Any]) -> None:
    assert _outcome(record) == _expected(record), record["note"]


@pytest.mark.parametrize(
    "record", RAW, ids=[_raw_id(position, record) for position, record in enumerate(RAW)]
)
def test_raw_record_gets_its_recorded_verdict(record: dict[str, Any]) -> None:
    assert _outcome(record) == _expected(record)


def test_curve_mismatch_is_named_as_such() -> None:
    # second_key_fail_ocmf.xml #1: SA says secp256k1, the paired key is a P-256 key.
    record = next(
        r
        for r in CURATED
        if r["source_file"] == "second_key_fail_ocmf.xml" and r["index_in_file"] == 1
    )
    with pytest.raises(OcmfError) as caught:
        verify_ocmf(record["ocmf"], _key(record))
    assert caught.value.reason == "key-curve-mismatch"
    assert "secp256k1" in str(caught.value)


def test_tampered_real_records_fail_as_bad_signature() -> None:
    tampered = [r for r in CURATED if r["valid"] is False and "tampered" in r["note"]]
    assert len(tampered) == 2
    for record in tampered:
        with pytest.raises(OcmfError) as caught:
            verify_ocmf(record["ocmf"], _key(record))
        assert caught.value.reason == "bad-signature"


VALID_CURATED = [r for r in CURATED if r["valid"] is True]


@pytest.mark.parametrize("record", VALID_CURATED, ids=[_curated_id(r) for r in VALID_CURATED])
def test_one_changed_payload_byte_breaks_every_valid_record(record: dict[str, Any]) -> None:
    text: str = record["ocmf"]
    # Change the digit of the pagination counter: still valid JSON, different signed bytes.
    position = text.index('"PG"')
    digit = next(i for i in range(position, len(text)) if text[i].isdigit())
    changed = text[:digit] + str((int(text[digit]) + 1) % 10) + text[digit + 1 :]
    with pytest.raises(OcmfError) as caught:
        verify_ocmf(changed, _key(record))
    assert caught.value.reason == "bad-signature"


def test_the_original_bytes_are_kept_verbatim() -> None:
    require_testdata("ocmf", "ocmf_examples.json")
    record = CURATED[0]  # DZG: spaces around ':' and RV as a padded string
    parsed = verify_ocmf(record["ocmf"], _key(record))
    assert parsed.raw == record["ocmf"].encode()
    assert parsed.text == record["ocmf"]
    assert b'"RV" : "       9.038"' in parsed.payload_bytes


# Isabellenhütte (ISA) publishes its key as a bare X‖Y point and signs with raw r‖s. The
# raw table has no key for these records (the recorder could not load it); the key below is
# the <publicKey> element of transparenzsoftware's
# src/test/resources/xml/isa-ocmf/OCMF-receipt-with_publickey_and_data.xml.
ISA_PUBLIC_POINT = bytes.fromhex(
    "B27CDB498504606CA3ACA2BA05A61F30D443B36CADD6F00C881F3469FBB08B8C"
    "2F498C314A035BDADCC83EA731A8B65CACD0A39A32C88AE444431E990F9E84ED"
)


def _isa_record() -> str:
    require_testdata("ocmf", "ocmf_all_raw.json")
    text: str = next(r["ocmf"] for r in RAW if "with_publickey_and_data" in r["file"])
    return text


def test_isa_record_verifies_with_its_raw_point_key_and_raw_signature() -> None:
    parsed = verify_ocmf(_isa_record(), ISA_PUBLIC_POINT)
    assert len(parsed.signature.data) == 64  # raw r‖s, not DER
    # The same point with the SEC1 0x04 prefix is the same key.
    verify_ocmf(_isa_record(), b"\x04" + ISA_PUBLIC_POINT)


def test_isa_record_fails_when_its_value_is_changed() -> None:
    changed = _isa_record().replace('"TX":"E"', '"TX":"B"', 1)
    with pytest.raises(OcmfError) as caught:
        verify_ocmf(changed, ISA_PUBLIC_POINT)
    assert caught.value.reason == "bad-signature"


def test_records_that_verify_map_to_readings_or_refuse_fractional_wh() -> None:
    """Every valid real record either maps to integer-Wh readings or is refused only
    because its register has sub-Wh resolution (KEBA: 0.1 Wh), never with another error."""
    require_testdata("ocmf", "ocmf_all_raw.json")
    mapped = fractional = 0
    for record in [r for r in RAW + CURATED if r["valid"] is True]:
        try:
            readings = ocmf_readings(parse_ocmf(record["ocmf"]))
        except OcmfError as error:
            assert error.reason == "fractional-wh", record["ocmf"]
            fractional += 1
            continue
        assert readings, "a valid record has at least one energy reading"
        mapped += 1
    assert mapped > 200
    assert fractional > 0
