"""The spliced `certificate.issued/1` leaf is exactly the canonical entry of its content."""

from __future__ import annotations

import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.certificates.entries import ISSUED_KIND
from ledger.certificates.issuance import issued_leaf
from ledger.credentials.data_integrity import (
    ProofOptions,
    did_key,
    did_key_verification_method,
    public_bytes,
    sign_credential_jcs,
    verify_credential,
)
from ledger.log.canonical import canonical_entry

_KEY = Ed25519PrivateKey.generate()
_DID = did_key(public_bytes(_KEY))


@settings(max_examples=200, deadline=None)
@given(
    name=st.text(max_size=40),
    volume=st.integers(min_value=0, max_value=10**12),
    extra_key=st.text(min_size=1, max_size=6),
)
def test_spliced_leaf_equals_canonical_entry(name: str, volume: int, extra_key: str) -> None:
    unsigned = {
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "id": "urn:uuid:00000000-0000-4000-8000-000000000000",
        "type": ["VerifiableCredential"],
        "issuer": _DID,
        "credentialSubject": {"name": name, "volumeWh": volume, extra_key: [1, "x"]},
    }
    try:
        signed, encoded = sign_credential_jcs(
            unsigned, _KEY, ProofOptions("2026-01-01T00:00:00Z", did_key_verification_method(_DID))
        )
    except ValueError:
        # Lone surrogates cannot be canonicalised at all (either path).
        return
    assert json.loads(encoded) == signed
    account = "0f532a45-ab66-4d5a-85a4-c634b12819d1"
    for anchored in (None, 0, volume):
        leaf = issued_leaf(encoded, account=account, anchored_size=anchored)
        entry = {"kind": ISSUED_KIND, "account": account, "credential": signed}
        if anchored is not None:
            entry["anchoredSize"] = anchored
        assert leaf == canonical_entry(entry)
    assert verify_credential(signed).issuer == _DID
