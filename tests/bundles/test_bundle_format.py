"""The bundle schema is strict: one spelling per value, bounded sizes, nothing unknown.

These run on a bundle built from the shared anchored registry, edited as JSON, and check
both `parse_bundle` (BundleFormatError naming the part) and the verifier's "format" check.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from bundle_support import Anchored, CachingReader

from attestation.bundles.build import build_bundle
from attestation.bundles.format import (
    MAX_BUNDLE_BYTES,
    MAX_PROOF_HASHES,
    BundleFormatError,
    bundle_bytes,
    parse_bundle,
)
from attestation.bundles.verify import verify_bundle

Edit = Callable[[dict[str, Any]], None]


@pytest.fixture(scope="module")
def document(anchored: Anchored) -> dict[str, Any]:
    bundle = build_bundle(
        anchored.registry.log, anchored.registry.signer, anchored.meter.readings[:2]
    )
    return bundle.to_json()


def _set(path: tuple[Any, ...], value: Any) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        target: Any = doc
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return edit


def _recase_hex(doc: dict[str, Any]) -> None:
    doc["anchor"]["root"] = doc["anchor"]["root"].upper().replace("0X", "0x")


def _lower_contract(doc: dict[str, Any]) -> None:
    doc["anchor"]["contract"] = doc["anchor"]["contract"].lower()


def _padding_bits(doc: dict[str, Any]) -> None:
    # 32 bytes → 44 base64 characters whose last one carries 2 unused bits.
    text = doc["entries"][0]["inclusion"][0]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = text[-2]
    doc["entries"][0]["inclusion"][0] = text[:-2] + alphabet[alphabet.index(last) ^ 1] + "="


def _swap_entries(doc: dict[str, Any]) -> None:
    doc["entries"].reverse()


def _long_proof(doc: dict[str, Any]) -> None:
    doc["entries"][0]["inclusion"] = [doc["entries"][0]["inclusion"][0]] * (MAX_PROOF_HASHES + 1)


def _snake_case(doc: dict[str, Any]) -> None:
    doc["anchor"]["chain_id"] = doc["anchor"].pop("chainId")


def _short_hash(doc: dict[str, Any]) -> None:
    doc["entries"][0]["inclusion"][0] = base64.b64encode(b"\x00" * 31).decode()


CASES: dict[str, tuple[Edit, str]] = {
    "unknown format tag": (_set(("bundle",), "carbonledger/proof-bundle/2"), "bundle"),
    "extra member": (_set(("anchor", "note"), "x"), "anchor.note"),
    "snake_case member": (_snake_case, "anchor.chainId"),
    "string for a number": (_set(("anchor", "size"), "7"), "anchor.size"),
    "bool for a number": (_set(("anchor", "block"), True), "anchor.block"),
    "upper-case hex": (_recase_hex, "anchor.root"),
    "contract not checksummed": (_lower_contract, "anchor.contract"),
    "chain id beyond 2^53": (_set(("anchor", "chainId"), 1 << 60), "anchor.chainId"),
    "non-canonical base64": (_padding_bits, "entries.0.inclusion.0"),
    "hash of 31 bytes": (_short_hash, "entries.0.inclusion.0"),
    "entries out of order": (_swap_entries, "increasing index order"),
    "proof too long": (_long_proof, "entries.0.inclusion"),
    "entry beyond the anchor": (_set(("anchor", "size"), 1), "outside the anchored size"),
    "no entries": (_set(("entries",), []), "entries"),
    "bad key id": (_set(("keys", "KEY"), {"alg": "Ed25519", "publicKey": "AA=="}), "keys.KEY"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_bundles_are_refused(
    case: str, document: dict[str, Any], anchored: Anchored
) -> None:
    edit, where = CASES[case]
    changed = copy.deepcopy(document)
    edit(changed)
    with pytest.raises(BundleFormatError, match=where.replace(".", r"\.")):
        parse_bundle(json.dumps(changed))
    reader = CachingReader(anchored.reader)
    report = verify_bundle(changed, anchor_reader=reader, log_verifier_key=anchored.log_key)
    assert [(c.name, c.status.value) for c in report.checks] == [("format", "fail")]
    assert reader.calls == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"bundle": 1, "bundle": 2}', "appears twice"),
        ('{"size": NaN}', "NaN is not JSON"),
        ("[1, 2]", "a JSON object"),
        ('{"bundle": "x', "not valid"),
        (b'{"bundle": "\xff"}', "not valid UTF-8"),
        # Deep enough to crash the C decoder's recursion if it ever reached it.
        ("[" * 100_000 + "]" * 100_000, "nested over 32 deep"),
        ("[" * 20 + "{}" * 10_000 + "]" * 20 + "]", "unbalanced"),
    ],
)
def test_json_level_problems(text: str | bytes, message: str) -> None:
    with pytest.raises(BundleFormatError, match=message):
        parse_bundle(text)


def test_oversized_input_is_refused_before_parsing() -> None:
    with pytest.raises(BundleFormatError, match="at most"):
        parse_bundle(b" " * (MAX_BUNDLE_BYTES + 1))


def test_the_wire_form_is_canonical(document: dict[str, Any], anchored: Anchored) -> None:
    bundle = parse_bundle(document)
    assert bundle_bytes(parse_bundle(bundle_bytes(bundle))) == bundle_bytes(bundle)
    assert json.loads(bundle_bytes(bundle)) == document
