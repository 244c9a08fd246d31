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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

from eth_utils.address import to_checksum_address
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import select

from attestation.anchoring.records import ChainAnchor
from ledger.log.canonical import MAX_CANONICAL_BYTES
from ledger.log.checkpoint import MAX_NOTE_BYTES, NoteSigner
from ledger.log.merkle import HASH_SIZE, MAX_TREE_SIZE
from ledger.log.store import EntryNotFoundError, Log, LogError
from ledger.meters.registration import MAX_PUBLIC_KEY_BYTES
from ledger.storage.models import MeterKey

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

READING_KIND = "reading/1"
METER_KEY_KIND = "meter.key/1"
METER_KEY_REVOKED_KIND = "meter.key-revoked/1"


class BundleFormatError(ValueError):
    """The input is not a well-formed proof bundle; the message names the offending part."""


class BundleRequestError(ValueError):
    """A bundle was asked for with impossible parameters (no indices, too many, negative)."""


class NotYetAnchoredError(LookupError):
    """No recorded anchor covers the requested entries yet; retry after the next anchor.

    `anchored_size` is the newest recorded anchor's size (None: none yet), `log_size` the
    log's size when asked; an entry at index i needs an anchored size of at least i + 1.
    """

    def __init__(self, indices: tuple[int, ...], anchored_size: int | None, log_size: int) -> None:
        self.indices = indices
        self.anchored_size = anchored_size
        self.log_size = log_size
        needed = max(indices) + 1
        if anchored_size is None:
            have = "nothing is anchored yet"
        else:
            have = f"the latest anchor covers size {anchored_size}"
        super().__init__(
            f"entries up to index {needed - 1} need an anchored size of at least {needed}; "
            f"{have} (the log has {log_size} entries)"
        )


class AnchorRecordMismatchError(LogError):
    """An anchor record names a root that the log does not have at that size (damage)."""


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
    if to_checksum_address(text) != text:
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


def _no_duplicate_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise BundleFormatError(f"member {name!r} appears twice in one object")
        result[name] = value
    return result


def _no_constants(name: str) -> Any:
    raise BundleFormatError(f"{name} is not JSON")


MAX_JSON_DEPTH = 32
"""Bundles nest 4 deep and entries little more; the bound keeps hostile input away from the
JSON decoder's recursion (a deep enough `[[[[…` crashes the interpreter, not just raises)."""
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_INNERMOST_PAIR = re.compile(r"\[\]|\{\}")
_TOO_MANY_OPENERS = re.compile(r"[\[{]" + f"{{{MAX_JSON_DEPTH + 1}}}")


def _nesting_within(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the brackets outside strings are balanced and nest at most `limit` deep.

    Regex passes only (C speed, no recursion): strip strings and non-brackets, then remove
    innermost pairs once per level.
    """
    skeleton = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    for _ in range(limit):
        if not skeleton:
            return True
        if _TOO_MANY_OPENERS.search(skeleton):
            return False  # the common attack, `[[[[…`, found in one scan
        skeleton, removed = _INNERMOST_PAIR.subn("", skeleton)
        if not removed:
            return False
    return not skeleton


def load_json_strict(data: bytes | str) -> Any:
    """json.loads that refuses duplicate members, NaN/Infinity (Python accepts both) and
    nesting deeper than MAX_JSON_DEPTH."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise BundleFormatError(f"not valid UTF-8 JSON: {exc}") from exc
    if not _nesting_within(text):
        raise BundleFormatError(f"not valid JSON: unbalanced or nested over {MAX_JSON_DEPTH} deep")
    try:
        return json.loads(
            text, object_pairs_hook=_no_duplicate_members, parse_constant=_no_constants
        )
    except json.JSONDecodeError as exc:
        raise BundleFormatError(f"not valid UTF-8 JSON: {exc}") from exc
    except RecursionError as exc:
        raise BundleFormatError("JSON nested too deeply") from exc


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


# ----------------------------------------------------------------------------- building


@dataclass(frozen=True, slots=True)
class _Anchor:
    chain_id: int
    contract: str
    log_id: bytes
    size: int
    root: bytes
    tx_hash: bytes
    block: int


def _latest_anchor(
    log: Log, chain_id: int | None, contract: str | None, size: int | None = None
) -> _Anchor | None:
    query = select(ChainAnchor)
    if size is not None:
        query = query.where(ChainAnchor.size == size)
    if chain_id is not None:
        query = query.where(ChainAnchor.chain_id == chain_id)
    if contract is not None:
        query = query.where(ChainAnchor.contract == to_checksum_address(contract))
    query = query.order_by(ChainAnchor.size.desc(), ChainAnchor.id.desc()).limit(1)
    with log.database.read() as session:
        row = session.scalars(query).first()
        if row is None:
            return None
        return _Anchor(
            row.chain_id, row.contract, row.log_id, row.size, row.root, row.tx_hash, row.block
        )


def _key_entry_indices(log: Log, key_ids: set[str], anchored_size: int) -> set[int]:
    """Log indices of the registration (and revocation, if anchored) of each key."""
    if not key_ids:
        return set()
    with log.database.read() as session:
        rows = session.execute(
            select(MeterKey.key_id, MeterKey.log_index, MeterKey.revoked_log_index).where(
                MeterKey.key_id.in_(sorted(key_ids))
            )
        ).all()
    found = {row.key_id for row in rows}
    if found != key_ids:
        raise LogError(f"readings name keys the registry does not have: {sorted(key_ids - found)}")
    indices: set[int] = set()
    for row in rows:
        indices.add(row.log_index)
        # A revocation after the anchored size is not provable against this anchor yet.
        if row.revoked_log_index is not None and row.revoked_log_index < anchored_size:
            indices.add(row.revoked_log_index)
    return indices


def _kind_and_key(leaf: bytes) -> tuple[str | None, str | None]:
    value = json.loads(leaf)
    if not isinstance(value, dict):
        return None, None
    kind, kid = value.get("kind"), value.get("keyId")
    return (kind if isinstance(kind, str) else None), (kid if isinstance(kid, str) else None)


def build_bundle(
    log: Log,
    signer: NoteSigner,
    indices: Iterable[int],
    *,
    chain_id: int | None = None,
    contract: str | None = None,
    anchored_size: int | None = None,
    max_entries: int = MAX_REQUESTED_ENTRIES,
) -> ProofBundle:
    """A bundle for `indices` against the newest recorded anchor covering all of them.

    `signer` is the log's checkpoint key (`Registry.signer`): the checkpoint note is signed
    for the anchored size when the bundle is built (checkpoints are not stored).
    `anchored_size` restricts the choice to anchors of exactly that size (a caller that
    chose its entries for one anchor must get that one, not a newer one recorded meanwhile).
    `max_entries` (at most MAX_BUILD_ENTRIES) bounds the indices asked for; the default is
    the generic request limit. Raises BundleRequestError (bad indices), EntryNotFoundError
    (an index beyond the log) and NotYetAnchoredError (no anchor covers them yet).
    """
    if not 1 <= max_entries <= MAX_BUILD_ENTRIES:
        raise BundleRequestError(f"max_entries must be between 1 and {MAX_BUILD_ENTRIES}")
    wanted = tuple(sorted(set(indices)))
    if not wanted:
        raise BundleRequestError("a bundle needs at least one entry index")
    if len(wanted) > max_entries:
        raise BundleRequestError(f"a bundle covers at most {max_entries} entries")
    if wanted[0] < 0:
        raise BundleRequestError("entry indices are not negative")
    head = log.head()
    if wanted[-1] >= head.size:
        raise EntryNotFoundError(f"no entry at index {wanted[-1]} (the log has {head.size})")
    anchor = _latest_anchor(log, chain_id, contract, anchored_size)
    if anchor is None or anchor.size <= wanted[-1]:
        raise NotYetAnchoredError(wanted, anchor.size if anchor else None, head.size)

    leaves = {index: log.entry(index) for index in wanted}
    reading_keys = set()
    for leaf in leaves.values():
        kind, kid = _kind_and_key(leaf)
        if kind == READING_KIND and kid is not None:
            reading_keys.add(kid)
    for index in _key_entry_indices(log, reading_keys, anchor.size) - set(wanted):
        leaves[index] = log.entry(index)

    entries: list[BundleEntry] = []
    keys: dict[str, BundleKey] = {}
    for index in sorted(leaves):
        proof = log.inclusion_proof(index, anchor.size)
        if proof.root != anchor.root:
            raise AnchorRecordMismatchError(
                f"the anchor record says root 0x{anchor.root.hex()} at size {anchor.size}, "
                f"the log has 0x{proof.root.hex()}"
            )
        leaf = leaves[index]
        entries.append(
            BundleEntry(
                index=index,
                leaf=base64.b64encode(leaf).decode("ascii"),
                inclusion=[base64.b64encode(item).decode("ascii") for item in proof.hashes],
            )
        )
        entry = json.loads(leaf)
        if isinstance(entry, dict) and entry.get("kind") == METER_KEY_KIND:
            keys[entry["keyId"]] = BundleKey(alg=entry["alg"], public_key=entry["publicKey"])

    return ProofBundle(
        bundle=BUNDLE_FORMAT,
        entries=entries,
        checkpoint=_checkpoint_note(log, signer, anchor.size),
        anchor=BundleAnchor(
            chain_id=anchor.chain_id,
            contract=to_checksum_address(anchor.contract),
            log_id="0x" + anchor.log_id.hex(),
            size=anchor.size,
            root="0x" + anchor.root.hex(),
            tx="0x" + anchor.tx_hash.hex(),
            block=anchor.block,
        ),
        keys=keys,
    )


def newest_anchored_size(
    log: Log, *, chain_id: int | None = None, contract: str | None = None
) -> int | None:
    """The size of the newest recorded anchor (as `build_bundle` would choose), or None."""
    anchor = _latest_anchor(log, chain_id, contract)
    return anchor.size if anchor is not None else None


def _checkpoint_note(log: Log, signer: NoteSigner, size: int) -> str:
    note = log.checkpoint(signer, size=size)
    if len(note) > MAX_CHECKPOINT_CHARS or len(note.encode()) > MAX_NOTE_BYTES:
        raise LogError("the checkpoint note is larger than a bundle may carry")
    return note
