"""Signed statements: a log entry carrying its signer (did:key) and an Ed25519 signature."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.credentials.data_integrity import (
    StatementError,
    did_key,
    did_key_verification_method,
    public_bytes,
    sign_statement,
    verify_statement,
)
from ledger.log.canonical import canonical_json

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
DID = did_key(public_bytes(KEY))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
OTHER_DID = did_key(public_bytes(OTHER_KEY))

ENTRY: dict[str, Any] = {
    "kind": "certificate.issued/1",
    "certificate": "urn:uuid:0b0e9a7e-3f6c-4b8e-9a55-5d1f1b6f0c11",
    "meter": "meter-0001",
    "energyWh": 1_000_000,
    "interval": {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T01:00:00Z"},
    "readings": [17, 18, 19],
}


def _statement() -> dict[str, Any]:
    return sign_statement(ENTRY, KEY, DID)


def test_round_trip() -> None:
    statement = _statement()
    assert statement == {**ENTRY, "issuer": DID, "sig": statement["sig"]}
    assert list(statement)[: len(ENTRY)] == list(ENTRY)
    assert verify_statement(statement) == DID
    assert verify_statement(statement, trusted_issuer=DID) == DID
    assert "sig" not in ENTRY and "issuer" not in ENTRY
    # The signature covers JCS of the entry with the issuer, without the signature.
    signature = base64.urlsafe_b64decode(statement["sig"] + "==")
    KEY.public_key().verify(signature, canonical_json({**ENTRY, "issuer": DID}))


def test_signature_is_unpadded_base64url_of_64_bytes() -> None:
    sig = _statement()["sig"]
    assert len(sig) == 86
    assert "=" not in sig and "+" not in sig and "/" not in sig


def _leaf_changes(value: Any) -> list[Any]:
    if isinstance(value, bool) or value is None:
        return ["x"]
    if isinstance(value, int):
        return [value + 1, -value, str(value)]
    if isinstance(value, str):
        return [value + "x", value[:-1]]
    if isinstance(value, list):
        return [value[:-1], [*value, 0]]
    return [{}]


@pytest.mark.parametrize("member", [*ENTRY, "issuer"])
def test_changing_any_field_fails(member: str) -> None:
    statement = _statement()
    for changed in _leaf_changes(statement[member]):
        with pytest.raises(StatementError):
            verify_statement({**statement, member: changed})


def test_changing_a_nested_value_adding_or_removing_a_member_fails() -> None:
    statement = _statement()
    nested = {**statement, "interval": {**statement["interval"], "end": "2026-01-01T02:00:00Z"}}
    with pytest.raises(StatementError, match="does not verify"):
        verify_statement(nested)
    with pytest.raises(StatementError, match="does not verify"):
        verify_statement({**statement, "extra": True})
    with pytest.raises(StatementError, match="does not verify"):
        verify_statement({k: v for k, v in statement.items() if k != "meter"})


def test_missing_signature_or_issuer() -> None:
    statement = _statement()
    with pytest.raises(StatementError, match='no "sig"'):
        verify_statement({k: v for k, v in statement.items() if k != "sig"})
    with pytest.raises(StatementError, match='no string "issuer"'):
        verify_statement({k: v for k, v in statement.items() if k != "issuer"})
    with pytest.raises(StatementError, match="JSON object"):
        verify_statement([statement])  # type: ignore[arg-type]


def test_padded_or_standard_base64_is_refused() -> None:
    statement = _statement()
    raw = base64.urlsafe_b64decode(statement["sig"] + "==")
    padded = statement["sig"] + "=="
    standard = base64.b64encode(raw).decode()
    with pytest.raises(StatementError, match="without padding"):
        verify_statement({**statement, "sig": padded})
    if standard.rstrip("=") != statement["sig"]:
        with pytest.raises(StatementError, match="base64url"):
            verify_statement({**statement, "sig": standard})
    with pytest.raises(StatementError, match="base64url"):
        verify_statement({**statement, "sig": statement["sig"].replace("-", "+").replace("_", "/")})
    # Standard alphabet without padding but containing '+' or '/' is refused by alphabet.
    with pytest.raises(StatementError, match="base64url"):
        verify_statement({**statement, "sig": "+" + statement["sig"][1:]})


def test_non_canonical_trailing_bits_are_refused() -> None:
    statement = _statement()
    sig = statement["sig"]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(sig[-1])
    # The last of 86 characters carries 2 data bits; setting one of the 4 spare bits
    # decodes to the same bytes but is a second spelling of the signature.
    twin = sig[:-1] + alphabet[last | 1]
    if twin == sig:
        twin = sig[:-1] + alphabet[last & ~1 | 2]
    assert base64.urlsafe_b64decode(twin + "==") == base64.urlsafe_b64decode(sig + "==")
    with pytest.raises(StatementError, match="not canonical"):
        verify_statement({**statement, "sig": twin})


@pytest.mark.parametrize(
    "sig", ["", "AAAA", "A" * 85, "A" * 87, "A" * 88, 12, None, ["x"], "A" * 85 + "é"]
)
def test_wrong_length_or_type_is_refused(sig: Any) -> None:
    with pytest.raises(StatementError):
        verify_statement({**_statement(), "sig": sig})


def test_statement_signed_by_another_key_with_issuer_swapped_fails() -> None:
    by_other = sign_statement(ENTRY, OTHER_KEY, OTHER_DID)
    assert verify_statement(by_other) == OTHER_DID
    with pytest.raises(StatementError, match="does not verify"):
        verify_statement({**by_other, "issuer": DID})
    # And a genuine signature moved onto a statement by another issuer fails too.
    with pytest.raises(StatementError, match="does not verify"):
        verify_statement({**_statement(), "issuer": OTHER_DID})


def test_trusted_issuer_mismatch() -> None:
    with pytest.raises(StatementError, match="not the trusted"):
        verify_statement(_statement(), trusted_issuer=OTHER_DID)


@pytest.mark.parametrize(
    "issuer",
    [
        "did:web:example.com",
        "did:key:z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2x",
        did_key_verification_method(DID),
        7,
    ],
)
def test_issuer_must_be_a_did_key_did(issuer: Any) -> None:
    with pytest.raises(StatementError):
        verify_statement({**_statement(), "issuer": issuer})


def test_sign_statement_refusals() -> None:
    with pytest.raises(StatementError, match="'sig'"):
        sign_statement({**ENTRY, "sig": "x"}, KEY, DID)
    with pytest.raises(StatementError, match="'issuer'"):
        sign_statement({**ENTRY, "issuer": DID}, KEY, DID)
    with pytest.raises(StatementError, match="not the DID of the signing key"):
        sign_statement(ENTRY, KEY, OTHER_DID)
    with pytest.raises(StatementError, match="not a DID URL"):
        sign_statement(ENTRY, KEY, did_key_verification_method(DID))
    with pytest.raises(StatementError, match="did:key"):
        sign_statement(ENTRY, KEY, "did:web:example.com")
    with pytest.raises(StatementError, match="canonicalised"):
        sign_statement({**ENTRY, "energyWh": 2**60}, KEY, DID)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=100)
@given(st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=6))
def test_any_entry_round_trips(entry: dict[str, Any]) -> None:
    entry = {k: v for k, v in entry.items() if k not in ("sig", "issuer")}
    statement = sign_statement(entry, KEY, DID)
    assert verify_statement(statement, trusted_issuer=DID) == DID


@settings(max_examples=200)
@given(JSON_VALUES)
def test_junk_raises_only_statement_errors(junk: Any) -> None:
    with pytest.raises(StatementError):
        verify_statement(junk)
    if isinstance(junk, dict):
        with pytest.raises(StatementError):
            verify_statement({**junk, "sig": _statement()["sig"], "issuer": DID})
