"""Trust inputs: every input parsed strictly, its source kept, flags over a trust file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from attestation.bundles.trust import (
    TRUST_FORMAT,
    Source,
    TrustError,
    TrustInputs,
    load_trust_file,
    parse_contract,
    parse_issuers,
    parse_log_key,
    trust_document,
    write_trust_file,
)
from ledger.credentials.data_integrity import did_key, public_bytes
from ledger.log.checkpoint import NoteSigner

CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def _log_key() -> str:
    return NoteSigner(
        "test.carbonledger.local/trust", Ed25519PrivateKey.generate()
    ).verifier.encode()


def _did() -> str:
    return did_key(public_bytes(Ed25519PrivateKey.generate()))


def _file(tmp_path: Path, **members: object) -> Path:
    path = tmp_path / "trust.json"
    path.write_text(json.dumps({"trust": TRUST_FORMAT, **members}))
    return path


def test_a_trust_file_round_trips_with_its_sources(tmp_path: Path) -> None:
    key, issuer = _log_key(), _did()
    path = _file(tmp_path, chainId=31337, contract=CONTRACT, logKey=key, issuers=[issuer])
    inputs = load_trust_file(path)
    assert inputs.missing() == ()
    assert inputs.chain_id is not None and inputs.chain_id.value == 31337
    assert inputs.chain_id.source is Source.TRUST_FILE and inputs.chain_id.where == str(path)
    assert inputs.log_verifier is not None and inputs.log_verifier.encode() == key
    assert inputs.issuer_dids == (issuer,)
    copy = tmp_path / "copy.json"
    write_trust_file(copy, inputs)
    assert trust_document(load_trust_file(copy)) == trust_document(inputs)


def test_flags_win_over_the_file_and_missing_inputs_are_named(tmp_path: Path) -> None:
    from_file = load_trust_file(_file(tmp_path, chainId=1, contract=CONTRACT))
    flags = TrustInputs(
        chain_id=None, contract=parse_contract(CONTRACT.lower(), Source.FLAG, "--contract")
    )
    merged = flags.merged_over(from_file)
    assert merged.chain_id is not None and merged.chain_id.source is Source.TRUST_FILE
    assert merged.contract is not None and merged.contract.source is Source.FLAG
    assert merged.contract.value == CONTRACT  # normalised to EIP-55
    assert merged.missing() == ("--log-key", "--issuer")


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"chainId": "31337"}, "positive integer"),
        ({"chainId": True}, "positive integer"),
        ({"contract": CONTRACT[:-1]}, "40 hex digits"),
        ({"contract": CONTRACT[:-1] + "A"}, "checksum"),
        ({"logKey": "nope"}, "verifier key"),
        ({"issuers": []}, "issuer DIDs"),
        ({"issuers": ["did:key:z6Mk" + "1" * 44]}, "did:key"),
        ({"issuers": ["did:web:example.com"]}, "did:web:example.com"),
        ({"extra": 1}, "unknown members"),
    ],
)
def test_malformed_inputs_are_refused_by_name(
    tmp_path: Path, members: dict[str, object], message: str
) -> None:
    with pytest.raises(TrustError, match=message):
        load_trust_file(_file(tmp_path, **members))


def test_files_that_are_not_trust_files(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    for text in (
        '{"trust": "carbonledger/trust/2"}',
        "[1]",
        '{"trust":1,"trust":2}',
        "[" * 100_000,
    ):
        path.write_text(text)
        with pytest.raises(TrustError):
            load_trust_file(path)
    with pytest.raises(TrustError, match="cannot read"):
        load_trust_file(tmp_path / "absent.json")


def test_the_parsers_keep_their_sources() -> None:
    key = parse_log_key(_log_key(), Source.FLAG, "--log-key")
    assert key.origin() == "flag --log-key"
    issuers = parse_issuers([_did(), _did()], Source.DATA_DIR, "/var/reg")
    assert len(issuers.value) == 2 and issuers.origin() == "registry data directory /var/reg"
