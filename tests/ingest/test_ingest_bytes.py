"""The hand-assembled canonical bytes of ingestion equal the general JCS canonicaliser's."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from meter_support import new_key, sign_payload

from ledger.log.canonical import canonical_entry, canonical_json
from ledger.meters.entries import PreviousReading, parse_reading
from ledger.meters.ingest import envelope_bytes, payload_bytes, reading_leaf
from ledger.meters.readings import MAX_REGISTER_WH, parse_envelope

KEYS = [new_key("Ed25519"), new_key("ES256")]

payloads = st.fixed_dictionaries(
    {
        "meter": st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z"),
        "seq": st.integers(0, MAX_REGISTER_WH),
        "time": st.integers(0, 4 * 10**9).map(
            lambda t: datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        ),
        "importWh": st.integers(0, MAX_REGISTER_WH),
        "exportWh": st.integers(0, MAX_REGISTER_WH),
    }
)


@settings(max_examples=300, deadline=None)
@given(
    body=payloads,
    key_index=st.sampled_from([0, 1]),
    prev=st.none()
    | st.builds(
        PreviousReading, st.integers(0, MAX_REGISTER_WH), st.binary(min_size=32, max_size=32)
    ),
)
def test_direct_bytes_match_jcs(
    body: dict[str, object], key_index: int, prev: PreviousReading | None
) -> None:
    envelope = sign_payload(KEYS[key_index], body)
    reading = parse_envelope(envelope)
    message = payload_bytes(reading.payload)
    assert message == reading.payload.canonical_bytes() == canonical_json(body)
    kid = KEYS[key_index].key_id
    leaf = reading_leaf(reading, message, kid, prev)
    entry = {
        "kind": "reading/2",
        "keyId": kid,
        **envelope,
        "prev": None if prev is None else prev.to_json(),
    }
    assert leaf == canonical_entry(entry)
    # The signed bytes appear in the leaf verbatim, and the strict parser reads the link back.
    assert b'"payload":' + message + b',"prev":' in leaf
    assert parse_reading(entry, leaf).prev == prev
    assert envelope_bytes(reading, message) == canonical_json(envelope)
