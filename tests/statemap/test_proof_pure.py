"""`state-map/1` hashing and proof verification, without storage.

Proofs come from the in-memory reference map; the truth they are judged by is a plain dict
and `oracle_root` (the definition written out). The central property is soundness: whatever
is changed in a claim or its proof, verification either fails with a named check or the
changed claim is true of the map.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statemap_support import (
    apply_to,
    batches,
    key_hashes,
    neighbour,
    oracle_root,
    sha256,
    values,
)

from ledger.log.canonical import canonical_json
from ledger.statemap.proof import (
    EMPTY_HASH,
    MAX_PROOF_SIBLINGS,
    MapLeaf,
    MapProof,
    MapProofError,
    MapProofFormatError,
    common_prefix_bits,
    interior_hash,
    key_bit,
    leaf_hash,
    root_from_proof,
    verify_membership,
    verify_non_membership,
    verify_state,
)
from ledger.statemap.tree import MemoryStateMap

EXAMPLES = settings(max_examples=100, deadline=None)


def build(*batch_list: dict[bytes, bytes | None]) -> tuple[MemoryStateMap, dict[bytes, bytes]]:
    memory = MemoryStateMap()
    truth: dict[bytes, bytes] = {}
    for version, batch in enumerate(batch_list, start=1):
        memory.apply(version, batch)
        apply_to(truth, batch)
    return memory, truth


def verifies(key: bytes, value: bytes | None, proof: MapProof, root: bytes) -> bool:
    try:
        verify_state(key, value, proof, root)
    except MapProofError:
        return False
    return True


# ----------------------------------------------------------------------------- hashing


def test_hashes_are_the_documented_preimages() -> None:
    key, digest = sha256(b"k"), sha256(b"v")
    assert leaf_hash(key, digest) == sha256(b"\x02" + key + digest)
    assert interior_hash(key, digest) == sha256(b"\x03" + key + digest)
    assert bytes(32) == EMPTY_HASH
    # Never the RFC 9162 log hashes of the same bytes.
    assert leaf_hash(key, digest) != sha256(b"\x00" + key + digest)
    assert interior_hash(key, digest) != sha256(b"\x01" + key + digest)


def test_key_bits_are_most_significant_first() -> None:
    key = bytes([0b1010_0000]) + bytes(30) + b"\x01"
    assert [key_bit(key, depth) for depth in range(4)] == [1, 0, 1, 0]
    assert key_bit(key, 255) == 1
    assert key_bit(key, 254) == 0
    assert common_prefix_bits(key, key) == 256
    assert common_prefix_bits(bytes(32), b"\x80" + bytes(31)) == 0
    assert common_prefix_bits(bytes(32), bytes(31) + b"\x01") == 255


def test_small_maps_by_hand() -> None:
    """Roots of maps of zero, one and two keys, written out."""
    k0 = bytes(32)  # path 000…
    k1 = b"\x80" + bytes(31)  # path 100…
    memory = MemoryStateMap()
    assert memory.root == bytes(32)
    memory.apply(1, {k1: b"one"})
    assert memory.root == sha256(b"\x02" + k1 + sha256(b"one"))
    memory.apply(2, {k0: b"zero"})
    left = sha256(b"\x02" + k0 + sha256(b"zero"))
    right = sha256(b"\x02" + k1 + sha256(b"one"))
    assert memory.root == sha256(b"\x03" + left + right)
    # Two keys sharing their first bit: a chain node above their split.
    k2 = b"\x40" + bytes(31)  # path 010…
    memory.apply(3, {k1: None, k2: b"two"})
    split = sha256(
        b"\x03" + sha256(b"\x02" + k0 + sha256(b"zero")) + sha256(b"\x02" + k2 + sha256(b"two"))
    )
    assert memory.root == sha256(b"\x03" + split + bytes(32))
    proof = memory.prove(k2).proof
    assert proof.siblings == (sha256(b"\x02" + k0 + sha256(b"zero")), bytes(32))


# --------------------------------------------------------------------- proofs verify


@given(batch_list=st.lists(batches(), min_size=1, max_size=6), queries=st.lists(key_hashes()))
@EXAMPLES
def test_proofs_verify_for_members_and_non_members(
    batch_list: list[dict[bytes, bytes | None]], queries: list[bytes]
) -> None:
    memory, truth = build(*batch_list)
    assert memory.root == oracle_root(truth)
    for key in [*truth, *queries]:
        result = memory.prove(key)
        assert result.value == truth.get(key)
        assert result.root == memory.root
        verify_state(key, result.value, result.proof, memory.root)
        assert root_from_proof(key, result.proof) == memory.root
        if key in truth:
            assert result.proof.leaf == MapLeaf(key, sha256(truth[key]))
        # A path is never longer than the tree is deep.
        assert len(result.proof.siblings) <= MAX_PROOF_SIBLINGS


def test_deepest_paths() -> None:
    """Two keys differing only in their last bit sit at depth 256: 256 siblings, 255 empty."""
    a = neighbour(frozenset())
    b = neighbour(frozenset({255}))
    memory, _ = build({a: b"a", b: b"b"})
    for key, value in ((a, b"a"), (b, b"b")):
        proof = memory.prove(key).proof
        assert len(proof.siblings) == 256
        assert proof.siblings[1:] == (bytes(32),) * 255
        verify_membership(key, value, proof, memory.root)
    # A third key elsewhere: its proof ends in its own leaf at depth 1.
    c = bytes([a[0] ^ 0x80]) + a[1:]
    memory.apply(2, {c: b"c"})
    assert len(memory.prove(c).proof.siblings) == 1
    verify_membership(a, b"a", memory.prove(a).proof, memory.root)


# -------------------------------------------------------------------------- soundness


def claim_holds(truth: dict[bytes, bytes], key: bytes, value: bytes | None) -> bool:
    return truth.get(key) == value


@given(
    batch_list=st.lists(batches(), min_size=1, max_size=5),
    query=key_hashes(),
    other_key=key_hashes(),
    other_value=st.none() | values(),
    data=st.data(),
)
@EXAMPLES
def test_no_changed_claim_or_proof_verifies_unless_true(
    batch_list: list[dict[bytes, bytes | None]],
    query: bytes,
    other_key: bytes,
    other_value: bytes | None,
    data: st.DataObject,
) -> None:
    memory, truth = build(*batch_list)
    root = memory.root
    keys = sorted(truth)
    key = data.draw(st.sampled_from(keys) if keys and data.draw(st.booleans()) else st.just(query))
    result = memory.prove(key)
    proof, value = result.proof, result.value

    # Another value, or a claim of absence / presence, for the same key and proof.
    if verifies(key, other_value, proof, root):
        assert claim_holds(truth, key, other_value)
    # Another key with the same proof (and the same claimed value).
    if verifies(other_key, value, proof, root):
        assert claim_holds(truth, other_key, value)
    # Another root.
    other_root = data.draw(st.binary(min_size=32, max_size=32), label="other root")
    if other_root != root:
        assert not verifies(key, value, proof, other_root)
    # Any sibling changed.
    if proof.siblings:
        position = data.draw(st.integers(0, len(proof.siblings) - 1), label="sibling")
        replacement = data.draw(st.binary(min_size=32, max_size=32), label="replacement")
        siblings = list(proof.siblings)
        if replacement != siblings[position]:
            siblings[position] = replacement
            assert not verifies(key, value, MapProof(proof.leaf, tuple(siblings)), root)
    # A sibling removed or added.
    if proof.siblings:
        assert not verifies(key, value, MapProof(proof.leaf, proof.siblings[1:]), root)
    assert not verifies(key, value, MapProof(proof.leaf, (sha256(b"x"), *proof.siblings)), root)
    # Another leaf at the end of the path, or none.
    leaf_key = data.draw(key_hashes(), label="leaf key")
    leaf_value = data.draw(values(), label="leaf value")
    for leaf in (MapLeaf(leaf_key, sha256(leaf_value)), None):
        if leaf != proof.leaf:
            assert not verifies(key, value, MapProof(leaf, proof.siblings), root)


# -------------------------------------------------------------- every check, by name


def _map_with_keys() -> tuple[MemoryStateMap, bytes, bytes, bytes]:
    """Keys on paths 000…, 001… and 100…: the node at depth 1 on the left is a chain node
    (its right child is empty). Returns the map, the member 000…0, a key 000…1 whose path
    ends in the member's leaf, and a key 010… whose path ends in the empty subtree."""
    member = bytes(32)
    memory, _ = build({member: b"m", b"\x20" + bytes(31): b"s", b"\x80" + bytes(31): b"o"})
    return memory, member, bytes(31) + b"\x01", b"\x40" + bytes(31)


def test_each_check_is_named() -> None:
    memory, member, absent_leaf, _ = _map_with_keys()
    root = memory.root
    good = memory.prove(member).proof
    absent = memory.prove(absent_leaf).proof
    assert absent.leaf is not None and absent.leaf.key_hash == member

    def check_of(action: Callable[[], None]) -> str:
        with pytest.raises(MapProofError) as caught:
            action()
        return caught.value.check

    cases: dict[str, Callable[[], None]] = {
        "root-length": lambda: verify_membership(member, b"m", good, root[:31]),
        "key-length": lambda: verify_non_membership(member[:31], absent, root),
        "proof-length": lambda: verify_membership(
            member, b"m", MapProof(good.leaf, (sha256(b"x"),) * 257), root
        ),
        "sibling-length": lambda: verify_membership(
            member, b"m", MapProof(good.leaf, (good.siblings[0][:31], *good.siblings[1:])), root
        ),
        "leaf-length": lambda: verify_non_membership(
            absent_leaf, MapProof(MapLeaf(member[:31], sha256(b"m")), absent.siblings), root
        ),
        "empty-sibling": lambda: verify_membership(
            member, b"m", MapProof(good.leaf, (EMPTY_HASH, *good.siblings)), root
        ),
        "leaf-missing": lambda: verify_membership(
            member, b"m", MapProof(None, good.siblings), root
        ),
        "leaf-key": lambda: verify_membership(absent_leaf, b"m", absent, root),
        "value-hash": lambda: verify_membership(member, b"not m", good, root),
        "key-present": lambda: verify_non_membership(member, good, root),
        "leaf-off-path": lambda: verify_non_membership(b"\xff" * 32, absent, root),
        "root": lambda: verify_membership(member, b"m", good, sha256(b"another root")),
    }
    for expected, action in cases.items():
        assert check_of(action) == expected, expected
    # And the messages say what was found.
    with pytest.raises(MapProofError, match="expected"):
        verify_membership(member, b"m", good, sha256(b"another root"))


# ------------------------------------------------------------------------------- JSON


def _encoded(proof: MapProof) -> bytes:
    return canonical_json(proof.to_json())


@given(batch_list=st.lists(batches(), min_size=1, max_size=4), query=key_hashes())
@EXAMPLES
def test_json_round_trip(batch_list: list[dict[bytes, bytes | None]], query: bytes) -> None:
    memory, truth = build(*batch_list)
    for key in [query, *list(truth)[:3]]:
        proof = memory.prove(key).proof
        assert MapProof.from_json(json.loads(_encoded(proof))) == proof
        assert MapProof.from_json_bytes(_encoded(proof)) == proof


def test_every_tampered_byte_of_a_proof_is_refused() -> None:
    """Replace each byte of each proof's JSON in turn: the proof is refused at parsing or by
    a verification check, never accepted."""
    memory, member, absent_leaf, absent_empty = _map_with_keys()
    deep_a, deep_b = neighbour(frozenset({100})), neighbour(frozenset({100, 250}))
    memory.apply(2, {deep_a: b"a", deep_b: b"b"})
    root = memory.root
    claims = [(member, b"m"), (absent_leaf, None), (absent_empty, None), (deep_b, b"b")]
    checks: set[str] = set()
    for key, value in claims:
        proof = memory.prove(key).proof
        verify_state(key, value, proof, root)
        encoded = _encoded(proof)
        for position in range(len(encoded)):
            for replacement in {encoded[position] ^ 0x01, encoded[position] ^ 0x20, 0x41}:
                if replacement == encoded[position]:
                    continue
                tampered = encoded[:position] + bytes([replacement]) + encoded[position + 1 :]
                with pytest.raises(MapProofError) as caught:
                    verify_state(key, value, MapProof.from_json_bytes(tampered), root)
                checks.add(caught.value.check)
    # Both parsing and the hash checks do the refusing.
    assert {"proof-format", "root"} <= checks


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "JSON object"),
        ({"leaf": None}, "missing"),
        ({"leaf": None, "siblings": [], "extra": 1}, "unexpected"),
        ({"leaf": None, "siblings": "AAAA"}, "is a list"),
        ({"leaf": [], "siblings": []}, "object or null"),
        ({"leaf": {"keyHash": "x"}, "siblings": []}, "missing"),
        ({"leaf": None, "siblings": [7]}, "base64 string"),
        ({"leaf": None, "siblings": ["not base64!"]}, "not base64"),
        ({"leaf": None, "siblings": [base64.b64encode(bytes(31)).decode()]}, "31 bytes"),
        # The last character carries 2 spare bits; setting them is another spelling.
        ({"leaf": None, "siblings": ["A" * 42 + "B="]}, "canonical"),
        ({"leaf": None, "siblings": ["A" * 43 + "=" for _ in range(257)]}, "at most 256"),
    ],
)
def test_json_form_is_strict(document: object, message: str) -> None:
    with pytest.raises(MapProofFormatError, match=message):
        MapProof.from_json(document)


def test_duplicate_members_are_refused() -> None:
    with pytest.raises(MapProofFormatError, match="appears twice"):
        MapProof.from_json_bytes(b'{"leaf":null,"siblings":[],"leaf":null}')


def test_value_hash_is_sha256_of_the_value_bytes() -> None:
    memory, _ = build({bytes(32): b'{"kind":"certificate.state/1"}'})
    proof = memory.prove(bytes(32)).proof
    assert proof.leaf is not None
    assert proof.leaf.value_hash == hashlib.sha256(b'{"kind":"certificate.state/1"}').digest()
