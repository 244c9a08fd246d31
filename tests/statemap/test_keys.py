"""State-map keys and values: the namespace registry, one spelling of each key and value."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.statemap.keys import (
    MAX_IDENTIFIER_BYTES,
    MAX_VALUE_BYTES,
    Namespace,
    StateKey,
    StateKeyError,
    check_encoded_value,
    encode_value,
)

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
CERTIFICATE = StateKey(Namespace.CERTIFICATE, "urn:uuid:5a4e6f1c-0d2b-4c59-9f43-2f1b8f0c7a11")


def test_key_text_and_hash() -> None:
    assert CERTIFICATE.text == "certificate/urn:uuid:5a4e6f1c-0d2b-4c59-9f43-2f1b8f0c7a11"
    assert CERTIFICATE.hash == hashlib.sha256(CERTIFICATE.text.encode()).digest()
    assert StateKey.parse(CERTIFICATE.text) == CERTIFICATE
    # Identifiers may hold "/" (the namespace ends at the first one).
    assert StateKey.parse("device/a/b").identifier == "a/b"


def test_namespaces_are_distinct_key_spaces() -> None:
    hashes = {StateKey(namespace, "same-id").hash for namespace in Namespace}
    assert len(hashes) == len(Namespace)


@pytest.mark.parametrize(
    "identifier",
    ["", " ", "a b", "tab\t", "é", "x" * (MAX_IDENTIFIER_BYTES + 1), "new\nline"],
)
def test_identifiers_have_one_spelling(identifier: str) -> None:
    with pytest.raises(StateKeyError, match="printable ASCII"):
        StateKey(Namespace.METER, identifier)


@pytest.mark.parametrize("text", ["points/x", "certificate", "Certificate/x", "/x"])
def test_unknown_or_malformed_keys(text: str) -> None:
    with pytest.raises(StateKeyError):
        StateKey.parse(text)


def test_namespace_must_be_registered() -> None:
    with pytest.raises(StateKeyError, match="registered"):
        StateKey("certificate", "x")  # type: ignore[arg-type]


def test_values_are_jcs_objects_of_their_namespace() -> None:
    value = {"kind": "certificate.state/1", "status": "active", "b": [2, 1], "a": "é"}
    encoded = encode_value(CERTIFICATE, value)
    assert encoded == '{"a":"é","b":[2,1],"kind":"certificate.state/1","status":"active"}'.encode()
    check_encoded_value(CERTIFICATE, encoded)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"status": "active"}, "kind"),
        ({"kind": "meter.state/1"}, "certificate.state/<version>"),
        ({"kind": "certificate.state/0"}, "certificate.state/<version>"),
        ({"kind": "certificate/1"}, "certificate.state/<version>"),
        ({"kind": "certificate.state/1", "share": 0.5}, "float"),
        ({"kind": "certificate.state/1", "pad": "x" * MAX_VALUE_BYTES}, "limit"),
    ],
)
def test_values_outside_the_rules(value: dict[str, object], message: str) -> None:
    with pytest.raises(StateKeyError, match=message):
        encode_value(CERTIFICATE, value)


@pytest.mark.parametrize(
    "encoded",
    [
        b'{"kind": "certificate.state/1"}',
        b'{"status":"a","kind":"certificate.state/1"}',
        b"[1]",
        b"not json",
        b'{"kind":"certificate.state/1","pad":"' + b"x" * MAX_VALUE_BYTES + b'"}',
    ],
)
def test_encoded_values_are_checked_byte_for_byte(encoded: bytes) -> None:
    with pytest.raises(StateKeyError):
        check_encoded_value(CERTIFICATE, encoded)


@given(
    st.dictionaries(
        TEXT.filter(bool),
        st.integers(-(2**53) + 1, 2**53 - 1) | TEXT | st.booleans(),
        max_size=5,
    )
)
@settings(max_examples=100, deadline=None)
def test_encoding_round_trips(members: dict[str, object]) -> None:
    value = {**members, "kind": "certificate.state/3"}
    encoded = encode_value(CERTIFICATE, value)
    check_encoded_value(CERTIFICATE, encoded)
