"""Proof bundles (DESIGN §4.5): what a verifier needs to check log entries without the API.

    {"bundle": "carbonledger/proof-bundle/1",
     "entries": [{"index", "leaf": base64, "inclusion": [base64 hash, ...]}, ...],
     "checkpoint": signed note text, "anchor": {chainId, contract, logId, size, root, tx, block},
     "keys": {key id: {"alg", "publicKey": base64 SPKI DER}}}

Decisions (what the verifier trusts, and where it comes from):

- **Checkpoint key**: never taken from the bundle. A bundle that carried the key that signed
  its own checkpoint would prove nothing; the verifier gets it from its own trust
  configuration (`carbonledger verify --log-key name+id+key`, the log's published
  `NoteVerifier` string), and `attestation.bundles.verify` checks that this key's name is the
  checkpoint's origin.
- **Meter keys**: the trust model registers keys through log entries (DESIGN §2), so for
  every `reading/1` entry the builder also includes the `meter.key/1` entry that registered
  its signing key (and the `meter.key-revoked/1` entry when the key was revoked within the
  anchored tree), each with its own inclusion proof. `keys` is then a convenience index that
  the verifier requires to match those proven entries exactly; a key that appears only in
  `keys` is never trusted.
- **Which anchor**: the newest anchor record whose size covers every requested entry (the
  largest anchored size; optionally restricted to one chain and contract). Older anchors
  would also work but the newest one is what a monitor has most likely seen.
- **Strict encodings**: base64 must be canonical (what `b64encode` prints), hex lower case,
  the contract address EIP-55 checksummed, unknown members refused. One value therefore has
  exactly one spelling, so changing any byte of a bundle changes what it says (and fails a
  check) rather than re-spelling the same thing.

Sizes are bounded (entries, proof length, leaf and note size, key count, total bytes) so a
hostile bundle cannot make the verifier allocate or hash without limit.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from attestation.chain.address import checksum_address
from ledger import strict_json
from ledger.log.canonical import MAX_CANONICAL_BYTES
from ledger.log.merkle import HASH_SIZE, MAX_TREE_SIZE
from ledger.meters.entries import MAX_PUBLIC_KEY_BYTES
from ledger.strict_json import JsonInputError

BundleFormat = Literal["carbonledger/proof-bundle/1"]
BUNDLE_FORMAT: Final = "carbonledger/proof-bundle/1"
BUNDLE_MEDIA_TYPE = "application/vnd.carbonledger.bundle+json"

MAX_REQUESTED_ENTRIES = 32
"""Indices one generic bundle request (`GET /v1/log/bundle`) may name; `build_bundle`'s
default `max_entries`."""
MAX_BUILD_ENTRIES = 1_024
"""The most indices any caller may ask `build_bundle` for (`max_entries`): a certificate
bundle names up to 512 evidence readings
(`ledger.certificates.issuance.MAX_EVIDENCE_READINGS`) plus the
issuer key, the device entries and the certificate's and its ancestors' statements."""
MAX_BUNDLE_ENTRIES = 3 * MAX_BUILD_ENTRIES
"""Each requested reading may add its key's registration and revocation entries."""
MAX_PROOF_HASHES = 64
"""An inclusion proof in a tree of at most 2^62 leaves has at most 62 hashes."""
MAX_KEYS = MAX_BUNDLE_ENTRIES
MAX_CHECKPOINT_CHARS = 16 * 1024
"""A checkpoint with its 16 signatures is well under 4 KiB; the bound only stops abuse."""
MAX_BUNDLE_BYTES = 16 * 1024 * 1024
"""Above the largest bundle the registry builds: a generic one (96 leaves of 64 KiB in
base64, plus proofs) or a certificate one (512 readings of ~0.5 KiB, a credential of at
most 64 KiB per lineage level, each leaf with a 2 KiB proof: a few MiB). A bundle of
MAX_BUNDLE_ENTRIES maximal leaves would not fit and is refused by size first."""
MAX_UINT64 = (1 << 64) - 1
MAX_CHAIN_ID = (1 << 53) - 1
"""EIP-2294 bounds chain ids so that wallets (and JSON numbers) represent them exactly."""

_HEX32 = re.compile(r"^0x[0-9a-f]{64}$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_KEY_ID = re.compile(r"^[0-9a-f]{32}$")


class BundleFormatError(ValueError):
    """The input is not a well-formed proof bundle; the message names the offending part."""


# ------------------------------------------------------------------------- field types


def _b64_length_limit(max_bytes: int) -> int:
    return 4 * ((max_bytes + 2) // 3)


def _canonical_base64(max_bytes: int, exact: int | None = None) -> AfterValidator:
    def check(text: str) -> str:
        # Length first: never decode more than the bound allows.
        if len(text) > _b64_length_limit(max_bytes):
            raise ValueError(f"longer than base64 of {max_bytes} bytes")
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("not valid base64") from exc
        # Canonical only: non-zero padding bits would give one value several spellings.
        if base64.b64encode(raw).decode("ascii") != text:
            raise ValueError("not canonical base64")
        if exact is not None and len(raw) != exact:
            raise ValueError(f"decodes to {len(raw)} bytes; expected {exact}")
        if not raw:
            raise ValueError("must not be empty")
        return text

    return AfterValidator(check)


def _checksummed(text: str) -> str:
    if checksum_address(text) != text:
        raise ValueError("contract address must be EIP-55 checksummed")
    return text


LeafText = Annotated[str, _canonical_base64(MAX_CANONICAL_BYTES)]
HashText = Annotated[str, _canonical_base64(HASH_SIZE, exact=HASH_SIZE)]
PublicKeyText = Annotated[str, _canonical_base64(MAX_PUBLIC_KEY_BYTES)]
Hex32 = Annotated[str, Field(pattern=_HEX32.pattern)]
Address = Annotated[str, Field(pattern=_ADDRESS.pattern), AfterValidator(_checksummed)]
KeyId = Annotated[str, Field(pattern=_KEY_ID.pattern)]


class _Strict(BaseModel):
    # Strict: JSON true is not 1, "5" is not 5; extra members are refused, not ignored.
    # Python code builds bundles by field name; parsing accepts only the wire (alias) names.
    model_config = ConfigDict(
        strict=True, extra="forbid", frozen=True, validate_by_name=True, validate_by_alias=True
    )


class BundleEntry(_Strict):
    index: int = Field(ge=0, lt=MAX_TREE_SIZE)
    leaf: LeafText
    inclusion: list[HashText] = Field(max_length=MAX_PROOF_HASHES)

    def leaf_bytes(self) -> bytes:
        return base64.b64decode(self.leaf)

    def inclusion_hashes(self) -> list[bytes]:
        return [base64.b64decode(item) for item in self.inclusion]


class BundleAnchor(_Strict):
    chain_id: int = Field(alias="chainId", ge=1, le=MAX_CHAIN_ID)
    contract: Address
    log_id: Hex32 = Field(alias="logId")
    size: int = Field(ge=1, le=MAX_TREE_SIZE)
    root: Hex32
    tx: Hex32
    block: int = Field(ge=0, le=MAX_UINT64)

    @property
    def log_id_bytes(self) -> bytes:
        return bytes.fromhex(self.log_id[2:])

    @property
    def root_bytes(self) -> bytes:
        return bytes.fromhex(self.root[2:])

    @property
    def tx_bytes(self) -> bytes:
        return bytes.fromhex(self.tx[2:])


class BundleKey(_Strict):
    alg: Literal["Ed25519", "ES256"]
    public_key: PublicKeyText = Field(alias="publicKey")

    def spki(self) -> bytes:
        return base64.b64decode(self.public_key)


class ProofBundle(_Strict):
    """A proof bundle, `application/vnd.carbonledger.bundle+json` (DESIGN §4.5)."""

    bundle: BundleFormat
    entries: list[BundleEntry] = Field(min_length=1, max_length=MAX_BUNDLE_ENTRIES)
    checkpoint: str = Field(min_length=1, max_length=MAX_CHECKPOINT_CHARS)
    anchor: BundleAnchor
    keys: dict[KeyId, BundleKey] = Field(max_length=MAX_KEYS)

    @model_validator(mode="after")
    def _entries_in_tree_order(self) -> ProofBundle:
        indices = [entry.index for entry in self.entries]
        # One order, no repeats: a bundle has one spelling, and each entry one proof.
        if any(later <= earlier for earlier, later in itertools.pairwise(indices)):
            raise ValueError("entries must be in strictly increasing index order")
        if indices[-1] >= self.anchor.size:
            raise ValueError(
                f"entry {indices[-1]} lies outside the anchored size {self.anchor.size}"
            )
        return self

    def to_json(self) -> dict[str, Any]:
        """The wire form (camelCase members), ready for `json.dumps`."""
        return self.model_dump(mode="json", by_alias=True)


def bundle_bytes(bundle: ProofBundle) -> bytes:
    """Compact UTF-8 JSON of a bundle: the body of a bundle response or file."""
    return json.dumps(bundle.to_json(), separators=(",", ":"), ensure_ascii=False).encode()


# ----------------------------------------------------------------------------- parsing


def load_json_strict(data: bytes | str) -> Any:
    """`ledger.strict_json.loads` (no duplicate members, NaN or deep nesting) as a
    `BundleFormatError`."""
    try:
        return strict_json.loads(data)
    except JsonInputError as exc:
        raise BundleFormatError(str(exc)) from exc


def parse_bundle(data: bytes | str | Mapping[str, Any] | ProofBundle) -> ProofBundle:
    """Validate a bundle from its bytes, text, decoded JSON or model; BundleFormatError if not."""
    if isinstance(data, ProofBundle):
        return data
    if isinstance(data, bytes | str):
        if len(data) > MAX_BUNDLE_BYTES:
            raise BundleFormatError(f"a bundle is at most {MAX_BUNDLE_BYTES} bytes")
        data = load_json_strict(data)
    if not isinstance(data, Mapping):
        raise BundleFormatError("a bundle is a JSON object")
    try:
        return ProofBundle.model_validate(data, by_alias=True, by_name=False)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "bundle"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise BundleFormatError(f"{where}: {first['msg']}{more}") from exc
