"""eddsa-jcs-2022 against the specification's test vectors (DESIGN §4.6), byte for byte.

The vector file (tests/data/vc-di-eddsa) holds the w3c/vc-di-eddsa key pair, the
unsigned and signed credential and every intermediate value; each is reproduced here.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from testdata_support import require_testdata

from ledger.credentials.data_integrity import (
    CRYPTOSUITE,
    CredentialFormatError,
    ProofOptions,
    base58_length_bound,
    base58btc_decode,
    base58btc_encode,
    did_key,
    did_key_verification_method,
    ed25519_public_from_multibase,
    ed25519_public_multibase,
    ed25519_seed_from_private_multibase,
    proof_hashes,
    public_bytes,
    public_key_from_did_key,
    sign_credential,
    verify_credential,
)
from ledger.log.canonical import canonical_json


@pytest.fixture(scope="module")
def vectors() -> dict[str, Any]:
    path: Path = require_testdata("vc-di-eddsa", "vc_di_eddsa_vectors.json")
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def jcs(vectors: dict[str, Any]) -> dict[str, Any]:
    section: dict[str, Any] = vectors["eddsa_jcs_2022"]
    return section


@pytest.fixture(scope="module")
def private_key(vectors: dict[str, Any]) -> Ed25519PrivateKey:
    seed = ed25519_seed_from_private_multibase(vectors["keyPair"]["privateKeyMultibase"])
    return Ed25519PrivateKey.from_private_bytes(seed)


def test_key_pair_private_multibase_gives_the_public_multibase(
    vectors: dict[str, Any], private_key: Ed25519PrivateKey
) -> None:
    public = public_bytes(private_key)
    assert ed25519_public_multibase(public) == vectors["keyPair"]["publicKeyMultibase"]
    assert ed25519_public_from_multibase(vectors["keyPair"]["publicKeyMultibase"]) == public


def test_did_key_matches_the_verification_method(
    vectors: dict[str, Any], jcs: dict[str, Any], private_key: Ed25519PrivateKey
) -> None:
    did = did_key(public_bytes(private_key))
    assert did == "did:key:" + vectors["keyPair"]["publicKeyMultibase"]
    assert did.startswith("did:key:z6Mk")
    method = jcs["proofConfig"]["verificationMethod"]
    assert did_key_verification_method(did) == method
    assert public_key_from_did_key(method) == public_bytes(private_key)
    assert public_key_from_did_key(did) == public_bytes(private_key)


def test_canonical_document_and_proof_configuration(
    vectors: dict[str, Any], jcs: dict[str, Any]
) -> None:
    assert canonical_json(vectors["unsigned"]) == jcs["canonDoc"].encode("utf-8")
    assert canonical_json(jcs["proofConfig"]) == jcs["proofCanon"].encode("utf-8")


def test_hashes_and_signature(
    vectors: dict[str, Any], jcs: dict[str, Any], private_key: Ed25519PrivateKey
) -> None:
    proof_hash, doc_hash = proof_hashes(vectors["unsigned"], jcs["proofConfig"])
    assert doc_hash.hex() == jcs["docHashHex"]
    assert proof_hash.hex() == jcs["proofHashHex"]
    assert (proof_hash + doc_hash).hex() == jcs["combinedHashHex"]
    assert hashlib.sha256(jcs["canonDoc"].encode()).digest() == doc_hash
    signature = private_key.sign(proof_hash + doc_hash)
    assert signature.hex() == jcs["sigHex"]
    assert "z" + base58btc_encode(signature) == jcs["sigBase58btc"]
    assert base58btc_decode(jcs["sigBase58btc"][1:]) == signature


def test_sign_credential_reproduces_the_signed_vector_byte_for_byte(
    vectors: dict[str, Any], jcs: dict[str, Any], private_key: Ed25519PrivateKey
) -> None:
    config = jcs["proofConfig"]
    options = ProofOptions(config["created"], config["verificationMethod"])
    unsigned_before = json.dumps(vectors["unsigned"])
    signed = sign_credential(vectors["unsigned"], private_key, options)
    assert signed == jcs["signed"]
    assert json.dumps(signed) == json.dumps(jcs["signed"])
    assert signed["proof"]["cryptosuite"] == CRYPTOSUITE
    # A new dict: the caller's document is untouched.
    assert json.dumps(vectors["unsigned"]) == unsigned_before
    assert "proof" not in vectors["unsigned"]


def test_signed_vector_verifies_when_its_issuer_is_known_to_be_controlled_by_the_key(
    vectors: dict[str, Any], jcs: dict[str, Any]
) -> None:
    issuer = vectors["unsigned"]["issuer"]
    method = jcs["proofConfig"]["verificationMethod"]
    did = method.partition("#")[0]
    verified = verify_credential(jcs["signed"], issuer_controllers={issuer: did})
    assert verified.issuer == issuer == "https://vc.example/issuers/5678"
    assert verified.verification_method == method
    assert verified.created == jcs["proofConfig"]["created"]
    assert verified.public_key == public_key_from_did_key(method)
    assert verified.credential == jcs["signed"]
    assert (
        verify_credential(
            jcs["signed"], trusted_issuer=issuer, issuer_controllers={issuer: did}
        ).issuer
        == issuer
    )


def test_signed_vector_without_issuer_binding_is_refused_by_default(jcs: dict[str, Any]) -> None:
    # The vector's issuer is an https URL: nothing offline says that did:key controls it, so
    # by default the verifier must not attribute the credential to that issuer.
    with pytest.raises(CredentialFormatError, match="not controlled by the issuer"):
        verify_credential(jcs["signed"])


def test_vector_credential_re_signed_with_a_did_key_issuer_verifies(
    vectors: dict[str, Any], jcs: dict[str, Any], private_key: Ed25519PrivateKey
) -> None:
    did = did_key(public_bytes(private_key))
    unsigned = {**vectors["unsigned"], "issuer": did}
    options = ProofOptions(jcs["proofConfig"]["created"], did_key_verification_method(did))
    signed = sign_credential(unsigned, private_key, options)
    assert verify_credential(signed).issuer == did
    assert verify_credential(signed, trusted_issuer=did).issuer == did
    as_object = sign_credential({**unsigned, "issuer": {"id": did}}, private_key, options)
    assert verify_credential(as_object).issuer == did


@given(st.binary(max_size=80), st.integers(min_value=0, max_value=5))
def test_base58btc_round_trip_keeps_leading_zero_bytes(data: bytes, zeros: int) -> None:
    padded = b"\0" * zeros + data
    text = base58btc_encode(padded)
    assert base58btc_decode(text, max_bytes=len(padded)) == padded
    assert len(text) <= base58_length_bound(len(padded))
    leading = len(padded) - len(padded.lstrip(b"\0"))
    assert len(text) - len(text.lstrip("1")) == leading


@given(st.integers(min_value=0, max_value=2**520))
def test_base58btc_matches_digit_by_digit_reference(number: int) -> None:
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    data = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    digits = ""
    while number:
        number, remainder = divmod(number, 58)
        digits = alphabet[remainder] + digits
    assert base58btc_encode(data) == digits


def test_base58btc_known_values() -> None:
    assert base58btc_encode(b"") == ""
    assert base58btc_encode(b"\0") == "1"
    assert base58btc_encode(b"\0\0\x01") == "112"
    assert base58btc_encode(b"hello world") == "StV1DL6CwTryKyV"
    assert base58btc_decode("StV1DL6CwTryKyV") == b"hello world"
    assert base58btc_decode("111") == b"\0\0\0"


def test_base58btc_decode_checks_the_length_before_decoding() -> None:
    # 60,000 characters took 1.15 s to decode (the big-number loop is quadratic); the length
    # bound refuses them before the first digit is read.
    started = time.perf_counter()
    with pytest.raises(CredentialFormatError, match="longer than any value of at most 64"):
        base58btc_decode("z" * 60_000)
    assert time.perf_counter() - started < 0.01
    longest = base58btc_encode(b"\xff" * 64)
    assert base58btc_decode(longest) == b"\xff" * 64
    with pytest.raises(CredentialFormatError, match="longer"):
        base58btc_decode("1" * (base58_length_bound(64) + 1))


@pytest.mark.parametrize("bad", ["0", "O", "I", "l", "abc+", " z", "é"])
def test_base58btc_decode_refuses_characters_outside_the_alphabet(bad: str) -> None:
    with pytest.raises(CredentialFormatError, match="not in the Bitcoin alphabet"):
        base58btc_decode(bad)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2",  # no multibase prefix
        "z3u2en7t5LR2WtQH5PfFqMqwVHBeXouLzo6haApm8XHqvjxq",  # a private key
        "z" + base58btc_encode(b"\xed\x01" + bytes(31)),  # too short
        "z" + base58btc_encode(b"\xed\x01" + bytes(33)),  # too long
        "z" + base58btc_encode(b"\xec\x01" + bytes(32)),  # another codec
    ],
)
def test_public_multibase_is_strict(bad: str) -> None:
    with pytest.raises(CredentialFormatError):
        ed25519_public_from_multibase(bad)


def test_private_multibase_is_strict(vectors: dict[str, Any]) -> None:
    with pytest.raises(CredentialFormatError):
        ed25519_seed_from_private_multibase(vectors["keyPair"]["publicKeyMultibase"])
    with pytest.raises(CredentialFormatError):
        ed25519_seed_from_private_multibase("z" + base58btc_encode(b"\x80\x26" + bytes(31)))


@pytest.mark.parametrize(
    "bad",
    [
        "did:web:example.com",
        "did:key:",
        "did:key:z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2#key-1",
        "did:key:z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2#",
        "did:key:z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2?x=1",
        "DID:KEY:z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2",
    ],
)
def test_public_key_from_did_key_is_strict(bad: str) -> None:
    with pytest.raises(CredentialFormatError):
        public_key_from_did_key(bad)


def test_ed25519_public_multibase_needs_32_bytes() -> None:
    with pytest.raises(CredentialFormatError, match="32 bytes"):
        ed25519_public_multibase(bytes(31))
