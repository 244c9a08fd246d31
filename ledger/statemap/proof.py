"""`state-map/1` hashing, proofs and their verification (docs/state-map.md).

Pure functions only, like `ledger.log.merkle`: the service, the auditor and an offline
verifier run the same code, and nothing here touches storage.

The map is a binary Merkle tree over 256-bit key hashes in which every subtree holding a
single key is replaced by that key's leaf (Diem/Aptos style). A proof is the list of sibling
hashes from the end of the key's path up to the root, plus the leaf found at the end of the
path, if any:

- membership: the leaf is the key's own, with the value's hash;
- non-membership: the path ends in an empty subtree (no leaf), or in the leaf of another key
  that shares the path's bits (that leaf sits where the key would have to be).

Hashes are SHA-256 over fixed-width binary, so a Solidity verifier needs only `sha256` and
`abi.encodePacked`: leaf = H(0x02 ‖ key hash ‖ value hash), interior = H(0x03 ‖ left ‖ right),
the empty subtree = 32 zero bytes. The prefixes differ from RFC 9162's 0x00 / 0x01, so no map
node can pass for a log node or the other way round.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ledger import strict_json
from ledger.log.merkle import HASH_SIZE, VerificationError

KEY_BITS = HASH_SIZE * 8
LEAF_PREFIX = b"\x02"
INTERIOR_PREFIX = b"\x03"
EMPTY_HASH = bytes(HASH_SIZE)
"""The hash of an empty subtree, and the root of the empty map. No SHA-256 output is known
to be all zeros, so no node can pass for an empty subtree."""
NODE_BYTES = 1 + 2 * HASH_SIZE
"""Every node's hash preimage: one prefix byte and two hashes."""
MAX_PROOF_SIBLINGS = KEY_BITS
"""A path has at most one node per key bit."""


def value_hash(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def leaf_node(key_hash: bytes, value_digest: bytes) -> bytes:
    """The leaf's hash preimage: 0x02 ‖ key hash ‖ value hash."""
    return LEAF_PREFIX + key_hash + value_digest


def interior_node(left: bytes, right: bytes) -> bytes:
    """An interior node's hash preimage: 0x03 ‖ left child hash ‖ right child hash."""
    return INTERIOR_PREFIX + left + right


def leaf_hash(key_hash: bytes, value_digest: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + key_hash + value_digest).digest()


def interior_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(INTERIOR_PREFIX + left + right).digest()


def key_bit(key_hash: bytes, depth: int) -> int:
    """Bit `depth` of the key hash, most significant first: 0 goes left, 1 goes right."""
    return (key_hash[depth >> 3] >> (7 - (depth & 7))) & 1


def common_prefix_bits(a: bytes, b: bytes) -> int:
    """How many leading bits two key hashes share (256 when they are equal)."""
    difference = int.from_bytes(a, "big") ^ int.from_bytes(b, "big")
    return KEY_BITS - difference.bit_length()


# ----------------------------------------------------------------------------- proofs


@dataclass(frozen=True, slots=True)
class MapLeaf:
    """The leaf at the end of a proof's path."""

    key_hash: bytes
    value_hash: bytes

    def hash(self) -> bytes:
        return leaf_hash(self.key_hash, self.value_hash)


@dataclass(frozen=True, slots=True)
class MapProof:
    """Siblings bottom-up: `siblings[0]` is the sibling of the path's last node, at depth
    `len(siblings)`; `siblings[-1]` is a child of the root."""

    leaf: MapLeaf | None
    siblings: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "leaf": None
            if self.leaf is None
            else {"keyHash": _b64(self.leaf.key_hash), "valueHash": _b64(self.leaf.value_hash)},
            "siblings": [_b64(sibling) for sibling in self.siblings],
        }

    @classmethod
    def from_json(cls, value: Any) -> MapProof:
        """Parse the JSON form strictly: exactly the documented members, canonical base64,
        32-byte hashes, at most 256 siblings. Raises `MapProofFormatError`."""
        if not isinstance(value, Mapping):
            raise MapProofFormatError("proof-format", "a map proof is a JSON object")
        _require_members(value, {"leaf", "siblings"}, "proof")
        leaf_value = value["leaf"]
        leaf: MapLeaf | None = None
        if leaf_value is not None:
            if not isinstance(leaf_value, Mapping):
                raise MapProofFormatError("proof-format", '"leaf" is an object or null')
            _require_members(leaf_value, {"keyHash", "valueHash"}, "leaf")
            leaf = MapLeaf(
                _hash_from_b64(leaf_value["keyHash"], "leaf.keyHash"),
                _hash_from_b64(leaf_value["valueHash"], "leaf.valueHash"),
            )
        siblings_value = value["siblings"]
        if not isinstance(siblings_value, list):
            raise MapProofFormatError("proof-format", '"siblings" is a list')
        if len(siblings_value) > MAX_PROOF_SIBLINGS:
            raise MapProofFormatError(
                "proof-length",
                f"proof has {len(siblings_value)} siblings; a path has at most "
                f"{MAX_PROOF_SIBLINGS}",
            )
        siblings = tuple(
            _hash_from_b64(item, f"siblings[{position}]")
            for position, item in enumerate(siblings_value)
        )
        return cls(leaf, siblings)

    @classmethod
    def from_json_bytes(cls, data: bytes | str) -> MapProof:
        """Parse a proof from JSON text (`ledger.strict_json`: duplicate members, constants
        and deep nesting refused), then as `from_json`."""
        try:
            value = strict_json.loads(data)
        except strict_json.JsonInputError as exc:
            raise MapProofFormatError("proof-format", str(exc)) from None
        return cls.from_json(value)


class MapProofError(VerificationError):
    """A state-map proof did not verify. `check` names the failed check (a stable slug, listed
    in docs/state-map.md); the message says what was found."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")
        self.check = check


class MapProofFormatError(MapProofError):
    """The proof's JSON form is not the documented one."""


def root_from_proof(key_hash: bytes, proof: MapProof) -> bytes:
    """The root implied by `proof` for the path of `key_hash`, after checking its shape."""
    _check_shape(key_hash, proof)
    return _fold(key_hash, proof)


def verify_membership(key_hash: bytes, value: bytes, proof: MapProof, root: bytes) -> None:
    """Check that the map with `root` maps `key_hash` to exactly `value` (its bytes).

    Raises `MapProofError` naming the failed check; returns None on success.
    """
    _require_length(root, "root-length", "root")
    _check_shape(key_hash, proof)
    if proof.leaf is None:
        raise MapProofError(
            "leaf-missing", "a membership proof ends in the key's own leaf; this one has none"
        )
    if proof.leaf.key_hash != key_hash:
        raise MapProofError(
            "leaf-key",
            f"the proof's leaf is for key {proof.leaf.key_hash.hex()}, not {key_hash.hex()}",
        )
    digest = value_hash(value)
    if proof.leaf.value_hash != digest:
        raise MapProofError(
            "value-hash",
            f"the leaf commits to value hash {proof.leaf.value_hash.hex()}; "
            f"the value given hashes to {digest.hex()}",
        )
    _require_root(_fold(key_hash, proof), root)


def verify_non_membership(key_hash: bytes, proof: MapProof, root: bytes) -> None:
    """Check that the map with `root` has no entry for `key_hash`.

    Raises `MapProofError` naming the failed check; returns None on success.
    """
    _require_length(root, "root-length", "root")
    _check_shape(key_hash, proof)
    if proof.leaf is not None:
        if proof.leaf.key_hash == key_hash:
            raise MapProofError("key-present", "the proof ends in this key's own leaf")
        shared = common_prefix_bits(proof.leaf.key_hash, key_hash)
        if shared < len(proof.siblings):
            raise MapProofError(
                "leaf-off-path",
                f"the proof's leaf shares {shared} leading bits with the key; a leaf at depth "
                f"{len(proof.siblings)} on the key's path shares at least that many",
            )
    _require_root(_fold(key_hash, proof), root)


def verify_state(key_hash: bytes, value: bytes | None, proof: MapProof, root: bytes) -> None:
    """`verify_membership` when a value is claimed, `verify_non_membership` for None."""
    if value is None:
        verify_non_membership(key_hash, proof, root)
    else:
        verify_membership(key_hash, value, proof, root)


def _check_shape(key_hash: bytes, proof: MapProof) -> None:
    """Hash lengths, path length, and that the path's last node has a non-empty sibling: a
    lone leaf or an empty subtree beside an empty one would have been collapsed into the
    parent, so such a proof has no canonical tree behind it."""
    _require_length(key_hash, "key-length", "key hash")
    siblings = proof.siblings
    if len(siblings) > MAX_PROOF_SIBLINGS:
        raise MapProofError(
            "proof-length",
            f"proof has {len(siblings)} siblings; a path has at most {MAX_PROOF_SIBLINGS}",
        )
    for position, sibling in enumerate(siblings):
        _require_length(sibling, "sibling-length", f"sibling {position}")
    if proof.leaf is not None:
        _require_length(proof.leaf.key_hash, "leaf-length", "leaf key hash")
        _require_length(proof.leaf.value_hash, "leaf-length", "leaf value hash")
    if siblings and siblings[0] == EMPTY_HASH:
        raise MapProofError(
            "empty-sibling",
            "the path's last node has an empty sibling; the canonical tree has no such node",
        )


def _fold(key_hash: bytes, proof: MapProof) -> bytes:
    """Hash from the path's end up to the root: the sibling goes left where the key's bit
    at the parent's depth is 1."""
    node = EMPTY_HASH if proof.leaf is None else proof.leaf.hash()
    sha256 = hashlib.sha256
    depth = len(proof.siblings)
    for sibling in proof.siblings:
        depth -= 1
        if key_bit(key_hash, depth):
            node = sha256(INTERIOR_PREFIX + sibling + node).digest()
        else:
            node = sha256(INTERIOR_PREFIX + node + sibling).digest()
    return node


def _require_root(computed: bytes, root: bytes) -> None:
    if computed != root:
        raise MapProofError(
            "root", f"root mismatch: proof yields {computed.hex()}, expected {root.hex()}"
        )


def _require_length(value: bytes, check: str, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise MapProofError(check, f"{what} is {len(value)} bytes; a SHA-256 hash is {HASH_SIZE}")


# ------------------------------------------------------------------------------ JSON


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _hash_from_b64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise MapProofFormatError("proof-format", f"{where} is a base64 string")
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise MapProofFormatError("proof-format", f"{where} is not base64") from None
    if _b64(decoded) != value:
        raise MapProofFormatError(
            "proof-format", f"{where} is not canonical base64 (one spelling per hash)"
        )
    if len(decoded) != HASH_SIZE:
        raise MapProofFormatError(
            "proof-format", f"{where} is {len(decoded)} bytes; a SHA-256 hash is {HASH_SIZE}"
        )
    return decoded


def _require_members(value: Mapping[Any, Any], expected: set[str], where: str) -> None:
    members = set(value)
    if members != expected:
        missing = sorted(expected - members)
        extra = sorted(str(member) for member in members - expected)
        raise MapProofFormatError(
            "proof-format", f"{where} members: missing {missing}, unexpected {extra}"
        )
