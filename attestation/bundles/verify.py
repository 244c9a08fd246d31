"""The offline verifier: check a proof bundle with nothing but the bundle, the log's
checkpoint key and one look at the chain (DESIGN §2, §4.5; issue 4, part 4).

`verify_bundle` runs named checks and records each as pass, fail or not-checked; a bundle
that does not verify is a report with failed checks, never an exception. Checks:

| name            | what                                                                  |
| --------------- | --------------------------------------------------------------------- |
| format          | the bundle parses under the strict schema of `attestation.bundles.bundle`     |
| log-id          | anchor.logId = sha256(checkpoint origin) (DESIGN §4.4)               |
| checkpoint      | signed by the trusted log key (named for that origin); its size and   |
|                 | root are the anchor's                                                 |
| inclusion[i]    | entry i's leaf hash, recomputed, is at index i of (anchor.size, root) |
| keys            | `keys` lists exactly the meter keys of the bundle's meter.key entries |
| entry[i]        | the entry's own content and signature, by a checker for its kind;     |
|                 | kinds without a checker are "not-checked"                             |
| (bundle-level)  | plug-ins registered with `register_bundle_checker` that need several |
|                 | entries at once (certificates: `attestation.certificates.check`)       |
| contract        | anchor.contract is the contract the verifier pinned (not-checked when |
|                 | none was pinned: then any contract with a matching root would do)    |
| chain           | one lookup: the contract holds `root` at `size` under `logId`, and   |
|                 | `tx` in block `block` emitted that anchor                             |

Meter keys are trusted only as proven log entries (`meter.key/1` with a passing inclusion
check), never because the `keys` member names them. A revocation is honoured when its
`meter.key-revoked/1` entry is in the bundle; that a key was NOT revoked cannot be shown by
a bundle (it would take the whole log), so the report's reading message says which
revocations it saw.

Everything but the chain lookup is pure and timed (`offline_seconds`, DESIGN §8: ≤ 5 ms).
Bundle checkers may add plain-words `summary` lines to the report (what the bundle proves).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Protocol

from cryptography.exceptions import UnsupportedAlgorithm
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.exceptions import BadFunctionCallOutput, TransactionNotFound

from attestation.bundles.bundle import (
    BUNDLE_FORMAT,
    METER_KEY_KIND,
    METER_KEY_REVOKED_KIND,
    READING_KIND,
    BundleAnchor,
    BundleFormatError,
    ProofBundle,
    load_json_strict,
    parse_bundle,
)
from attestation.chain.client import ChainError, load_artifact, revert_data
from ledger.log.canonical import CanonicalizationError, canonical_json
from ledger.log.checkpoint import CheckpointError, NoteVerifier, open_checkpoint
from ledger.log.merkle import InclusionProofError, leaf_hash, verify_inclusion
from ledger.meters.readings import (
    ReadingFormatError,
    ReadingSignatureError,
    key_id,
    load_meter_public_key,
    parse_envelope,
    parse_time,
    verify_signed_reading,
)


class CheckStatus(StrEnum):
    PASSED = "pass"
    FAILED = "fail"
    NOT_CHECKED = "not-checked"
    """The check could not be made (unknown entry kind, no pinned contract): not a failure."""


PASSED, FAILED, NOT_CHECKED = CheckStatus.PASSED, CheckStatus.FAILED, CheckStatus.NOT_CHECKED


class UnusableInputError(TypeError):
    """The verifier was called with something that is not a bundle or not a trusted key."""


class AnchorReaderError(ChainError):
    """The chain could not be asked (unreachable, not a CarbonAnchor, unexpected answer)."""


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: CheckStatus
    message: str


@dataclass(frozen=True, slots=True)
class VerificationReport:
    checks: tuple[Check, ...]
    offline_seconds: float
    """Time of everything but the chain lookup (parsing included)."""
    chain_seconds: float | None
    """Time of the chain lookup; None when it was not made (the bundle did not parse)."""
    bundle: ProofBundle | None
    summary: tuple[str, ...] = ()
    """Plain-words statements of what the bundle proves, from the bundle checkers."""

    @property
    def ok(self) -> bool:
        """No check failed (checks that could not be made do not count as failures)."""
        return bool(self.checks) and all(check.status != FAILED for check in self.checks)

    @property
    def complete(self) -> bool:
        """`ok`, and every check was actually made (all entry kinds known, contract pinned)."""
        return self.ok and all(check.status == PASSED for check in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if check.status == FAILED)

    def check(self, name: str) -> Check | None:
        return next((check for check in self.checks if check.name == name), None)


_MARKS: dict[CheckStatus, str] = {PASSED: "✓", FAILED: "✗", NOT_CHECKED: "-"}


def report_lines(report: VerificationReport) -> list[str]:
    """Human-readable lines, one per check then a verdict: what `carbonledger verify` prints."""
    width = max((len(check.name) for check in report.checks), default=0)
    lines = [f"{_MARKS[c.status]} {c.name:<{width}}  {c.message}" for c in report.checks]
    if report.ok:
        verdict = "VERIFIED" if report.complete else "VERIFIED (some checks not made, see -)"
    else:
        verdict = "FAILED: " + ", ".join(check.name for check in report.failures)
    lines.append(f"{verdict}  (offline {report.offline_seconds * 1000:.2f} ms)")
    if report.ok:  # what was proven, only when it was (a failed check carries its reason)
        lines.extend(report.summary)
    return lines


# ----------------------------------------------------------------------------- the chain


@dataclass(frozen=True, slots=True)
class ChainObservation:
    """What the chain says about one anchor claim (gathered by an `AnchorReader`)."""

    chain_id: int
    root: bytes | None
    """`rootAt(logId, size)` on the named contract; None when it holds no root there."""
    tx_block: int | None
    """Block of the named transaction's successful receipt; None when there is none."""
    tx_anchors: tuple[tuple[bytes, int, bytes], ...]
    """(logId, size, root) of every `Anchored` event the contract emitted in that transaction."""


class AnchorReader(Protocol):
    """The verifier's only I/O: one lookup of an anchor claim on one chain."""

    def observe(self, contract: str, log_id: bytes, size: int, tx: bytes) -> ChainObservation:
        """Raise AnchorReaderError when the chain cannot be asked."""
        ...


_ANCHORED_TOPIC = keccak(text="Anchored(bytes32,uint64,bytes32,uint64,address)")


class ChainAnchorReader:
    """An `AnchorReader` over any web3 connection: the embedded chain's or a JSON-RPC node's.

    One lookup is three read-only requests (chain id, `rootAt` as an eth_call, the
    transaction receipt); it needs no account and sends nothing.
    """

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3
        self._abi = load_artifact()["abi"]

    def observe(self, contract: str, log_id: bytes, size: int, tx: bytes) -> ChainObservation:
        address = to_checksum_address(contract)
        try:
            chain_id = int(self.w3.eth.chain_id)
            root = self._root_at(address, log_id, size)
            tx_block, anchors = self._transaction(address, tx)
        except AnchorReaderError:
            raise
        except Exception as exc:  # web3, requests and eth-tester raise many types for "down"
            raise AnchorReaderError(f"the chain could not be read: {exc}") from exc
        return ChainObservation(chain_id, root, tx_block, anchors)

    def _root_at(self, address: str, log_id: bytes, size: int) -> bytes | None:
        contract = self.w3.eth.contract(address=address, abi=self._abi)  # type: ignore[call-overload]
        try:
            return bytes(contract.functions.rootAt(log_id, size).call())
        except BadFunctionCallOutput:
            return None  # no contract code at that address: it holds nothing
        except Exception as exc:
            data = revert_data(exc)
            if data is None:
                raise
            # Any revert (UnknownAnchor, or a contract without rootAt) means "no such root".
            return None

    def _transaction(
        self, address: str, tx: bytes
    ) -> tuple[int | None, tuple[tuple[bytes, int, bytes], ...]]:
        try:
            receipt = self.w3.eth.get_transaction_receipt(HexBytes(tx))
        except TransactionNotFound:
            return None, ()
        if receipt is None or int(receipt["status"]) != 1:
            return None, ()
        anchors = []
        for entry in receipt["logs"]:
            topics = entry["topics"]
            if (
                to_checksum_address(entry["address"]) == address
                and len(topics) == 4
                and bytes(topics[0]) == _ANCHORED_TOPIC
            ):
                data = bytes(entry["data"])
                anchors.append(
                    (bytes(topics[1]), int.from_bytes(bytes(topics[2]), "big"), data[:32])
                )
        return int(receipt["blockNumber"]), tuple(anchors)


def rpc_anchor_reader(url: str, *, timeout: float = 30) -> ChainAnchorReader:
    """A read-only reader for a JSON-RPC endpoint (no key: the verifier never sends)."""
    return ChainAnchorReader(Web3(HTTPProvider(url, request_kwargs={"timeout": timeout})))


def _chain_check(anchor: BundleAnchor, observed: ChainObservation) -> Check:
    size, root = anchor.size, anchor.root_bytes
    claim = (anchor.log_id_bytes, size, root)
    if observed.chain_id != anchor.chain_id:
        problem = f"the chain read has id {observed.chain_id}; the bundle names {anchor.chain_id}"
    elif observed.root is None:
        problem = f"contract {anchor.contract} holds no root at size {size} for this logId"
    elif observed.root != root:
        problem = f"contract holds root 0x{observed.root.hex()} at size {size}, not {anchor.root}"
    elif observed.tx_block is None:
        problem = f"transaction {anchor.tx} is not on this chain (or it failed)"
    elif observed.tx_block != anchor.block:
        problem = f"transaction {anchor.tx} is in block {observed.tx_block}, not {anchor.block}"
    elif claim not in observed.tx_anchors:
        problem = f"transaction {anchor.tx} did not anchor this root at size {size}"
    else:
        return Check(
            "chain",
            PASSED,
            f"chain {anchor.chain_id} contract {anchor.contract} holds root at size {size} "
            f"(tx {anchor.tx[:12]}… block {anchor.block})",
        )
    return Check("chain", FAILED, problem)


# ------------------------------------------------------------------------ entry checkers


@dataclass(frozen=True, slots=True)
class ProvenKey:
    """A meter key whose `meter.key/1` entry this bundle proves to be in the anchored log."""

    key_id: str
    meter: str
    alg: str
    spki: bytes
    valid_from: int
    index: int
    revoked_from: int | None = None
    revoked_index: int | None = None


@dataclass(frozen=True, slots=True)
class EntryContext:
    index: int
    entry: Mapping[str, Any]
    """The decoded leaf (checked to be canonical JCS with a `kind`)."""
    included: bool
    """Whether the entry's inclusion proof verified against the anchored root."""
    keys: Mapping[str, ProvenKey]


@dataclass(frozen=True, slots=True)
class Verdict:
    status: CheckStatus
    message: str


EntryChecker = Callable[[EntryContext], Verdict]
_ENTRY_CHECKERS: dict[str, EntryChecker] = {}


def register_entry_checker(kind: str, checker: EntryChecker) -> None:
    """Plug in the check of one entry kind (later stages: certificates, points, passports)."""
    if kind in _ENTRY_CHECKERS:
        raise ValueError(f"entry kind {kind!r} already has a checker")
    _ENTRY_CHECKERS[kind] = checker


def entry_checker(kind: str) -> Callable[[EntryChecker], EntryChecker]:
    def decorate(checker: EntryChecker) -> EntryChecker:
        register_entry_checker(kind, checker)
        return checker

    return decorate


class _EntryProblemError(ValueError):
    pass


def _fields(entry: Mapping[str, Any], expected: frozenset[str]) -> None:
    if set(entry) != expected:
        missing, extra = sorted(expected - set(entry)), sorted(set(entry) - expected)
        raise _EntryProblemError(f"fields: missing {missing}, unexpected {extra}")


def _text(entry: Mapping[str, Any], name: str) -> str:
    value = entry[name]
    if not isinstance(value, str):
        raise _EntryProblemError(f"{name} must be a string")
    return value


def _epoch(entry: Mapping[str, Any], name: str) -> int:
    try:
        return int(parse_time(entry[name]).timestamp())
    except ReadingFormatError as exc:
        raise _EntryProblemError(f"{name}: {exc}") from exc


_KEY_FIELDS = frozenset({"kind", "meter", "keyId", "alg", "publicKey", "organisation", "validFrom"})
_REVOKED_FIELDS = frozenset({"kind", "meter", "keyId", "organisation", "revokedFrom"})
_READING_FIELDS = frozenset({"kind", "keyId", "alg", "payload", "sig"})


def _key_registration(index: int, entry: Mapping[str, Any]) -> ProvenKey:
    _fields(entry, _KEY_FIELDS)
    kid, alg = _text(entry, "keyId"), _text(entry, "alg")
    try:
        spki = base64.b64decode(_text(entry, "publicKey"), validate=True)
        key_alg, _ = load_meter_public_key(spki)
    # UnsupportedAlgorithm: valid DER naming an algorithm `cryptography` does not know
    # (ledger.meters.readings lets it through).
    except (binascii.Error, ReadingFormatError, UnsupportedAlgorithm) as exc:
        raise _EntryProblemError(f"publicKey: {exc}") from exc
    if key_alg != alg:
        raise _EntryProblemError(f"alg says {alg} but the key is an {key_alg} key")
    if key_id(spki) != kid:
        raise _EntryProblemError(f"keyId {kid} is not the id of the key ({key_id(spki)})")
    _text(entry, "organisation")
    return ProvenKey(kid, _text(entry, "meter"), alg, spki, _epoch(entry, "validFrom"), index)


@entry_checker(METER_KEY_KIND)
def _check_meter_key(context: EntryContext) -> Verdict:
    try:
        key = _key_registration(context.index, context.entry)
    except _EntryProblemError as exc:
        return Verdict(FAILED, f"{METER_KEY_KIND}: {exc}")
    # A registration is not signed by anyone: the log proves who registered it, and when.
    return Verdict(PASSED, f"{METER_KEY_KIND}: key {key.key_id} ({key.alg}) of meter {key.meter}")


@entry_checker(METER_KEY_REVOKED_KIND)
def _check_key_revoked(context: EntryContext) -> Verdict:
    try:
        _fields(context.entry, _REVOKED_FIELDS)
        kid = _text(context.entry, "keyId")
        meter, _ = _text(context.entry, "meter"), _text(context.entry, "organisation")
        revoked_from = _epoch(context.entry, "revokedFrom")
    except _EntryProblemError as exc:
        return Verdict(FAILED, f"{METER_KEY_REVOKED_KIND}: {exc}")
    known = context.keys.get(kid)
    if known is None or known.meter != meter:
        return Verdict(FAILED, f"{METER_KEY_REVOKED_KIND}: key {kid} of {meter} is not proven here")
    return Verdict(PASSED, f"{METER_KEY_REVOKED_KIND}: key {kid} revoked from {revoked_from}")


@entry_checker(READING_KIND)
def _check_reading(context: EntryContext) -> Verdict:
    entry = context.entry
    try:
        _fields(entry, _READING_FIELDS)
        kid = _text(entry, "keyId")
        reading = parse_envelope(
            {"payload": entry["payload"], "alg": entry["alg"], "sig": entry["sig"]}
        )
    except (_EntryProblemError, ReadingFormatError) as exc:
        return Verdict(FAILED, f"{READING_KIND}: {exc}")
    payload = reading.payload
    key = context.keys.get(kid)
    where = f"{READING_KIND} meter {payload.meter} seq {payload.seq}"
    if key is None:
        return Verdict(
            FAILED, f"{where}: key {kid} has no meter.key/1 entry with a verified proof here"
        )
    moment = int(payload.time.timestamp())
    problem = None
    if key.meter != payload.meter:
        problem = f"key {kid} belongs to meter {key.meter}"
    elif key.index >= context.index:
        problem = f"key {kid} was registered at index {key.index}, after the reading"
    elif moment < key.valid_from:
        problem = f"key {kid} is valid only from {_iso(key.valid_from)}"
    elif key.revoked_from is not None and moment >= key.revoked_from:
        problem = f"key {kid} is revoked from {_iso(key.revoked_from)} (index {key.revoked_index})"
    if problem is not None:
        return Verdict(FAILED, f"{where}: {problem}")
    try:
        verify_signed_reading(reading, key.spki)
    except (ReadingSignatureError, ReadingFormatError, UnsupportedAlgorithm) as exc:
        return Verdict(FAILED, f"{where}: {exc}")
    revocation = "no revocation in bundle" if key.revoked_from is None else "before its revocation"
    return Verdict(
        PASSED,
        f"{where}: {reading.alg} signature by key {kid} (registered at index {key.index}; "
        f"{revocation})",
    )


def _iso(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


# ----------------------------------------------------------------------- bundle checkers


@dataclass(frozen=True, slots=True)
class BundleContext:
    """What a bundle-level checker sees, after the inclusion and entry checks."""

    bundle: ProofBundle
    decoded: Mapping[int, Mapping[str, Any]]
    """Every entry whose leaf is canonical JSON with a `kind`, by index."""
    included: Mapping[int, bool]
    """Per entry index: whether its inclusion proof verified against the anchored root."""
    entry_checks: Mapping[int, Check]
    """Per entry index: the result of its own `entry[i]` check."""
    keys: Mapping[str, ProvenKey]
    trusted_issuer: str | None
    """The credential issuer DID the verifier pinned, if any."""
    now: int
    """The verifier's clock (seconds since the epoch), for statuses such as expiry."""


@dataclass(frozen=True, slots=True)
class BundleFindings:
    checks: tuple[Check, ...] = ()
    summary: tuple[str, ...] = ()


BundleChecker = Callable[[BundleContext], BundleFindings]
_BUNDLE_CHECKERS: dict[str, BundleChecker] = {}


def register_bundle_checker(name: str, checker: BundleChecker) -> None:
    """Plug in a check that spans entries; it runs on every bundle after the entry checks
    and returns no findings when the bundle holds nothing it concerns."""
    if name in _BUNDLE_CHECKERS:
        raise ValueError(f"bundle checker {name!r} is already registered")
    _BUNDLE_CHECKERS[name] = checker


def _bundle_checks(context: BundleContext) -> BundleFindings:
    checks: list[Check] = []
    summary: list[str] = []
    for name, checker in _BUNDLE_CHECKERS.items():
        try:
            findings = checker(context)
        except Exception as exc:  # a plug-in's bug must not turn a bundle into a crash
            findings = BundleFindings((Check(name, FAILED, f"the {name} checker failed: {exc!r}"),))
        checks.extend(findings.checks)
        summary.extend(findings.summary)
    return BundleFindings(tuple(checks), tuple(summary))


# ---------------------------------------------------------------------------- verifying


def _decode_entry(leaf: bytes) -> Mapping[str, Any]:
    try:
        value = load_json_strict(leaf)
    except BundleFormatError as exc:
        raise _EntryProblemError(f"leaf is not JSON: {exc}") from exc
    if not isinstance(value, dict) or not isinstance(value.get("kind"), str):
        raise _EntryProblemError('leaf is not a JSON object with a "kind"')
    try:
        canonical = canonical_json(value)
    except CanonicalizationError as exc:
        raise _EntryProblemError(str(exc)) from exc
    # Leaves are written as JCS; any other spelling cannot be what the log hashed.
    if canonical != leaf:
        raise _EntryProblemError("leaf is not canonical JSON (RFC 8785)")
    return value


def _proven_keys(
    decoded: Mapping[int, Mapping[str, Any]], included: Mapping[int, bool]
) -> dict[str, ProvenKey]:
    keys: dict[str, ProvenKey] = {}
    for index, entry in decoded.items():
        if entry["kind"] == METER_KEY_KIND and included[index]:
            try:
                key = _key_registration(index, entry)
            except _EntryProblemError:
                continue  # reported by the entry's own check
            keys[key.key_id] = key
    for index, entry in decoded.items():
        if entry["kind"] != METER_KEY_REVOKED_KIND or not included[index]:
            continue
        try:
            _fields(entry, _REVOKED_FIELDS)
            kid, meter = _text(entry, "keyId"), _text(entry, "meter")
            revoked_from = _epoch(entry, "revokedFrom")
        except _EntryProblemError:
            continue
        known = keys.get(kid)
        if known is None or known.meter != meter:
            continue  # the entry's own check reports a revocation of an unproven key
        if known.revoked_from is None or revoked_from < known.revoked_from:
            keys[kid] = replace(known, revoked_from=revoked_from, revoked_index=index)
    return keys


def _keys_check(bundle: ProofBundle, decoded: Mapping[int, Mapping[str, Any]]) -> Check:
    # What the (not yet validated) entries claim; the entry checks validate the claims.
    registered: dict[object, tuple[object, object]] = {
        entry.get("keyId"): (entry.get("alg"), entry.get("publicKey"))
        for entry in decoded.values()
        if entry["kind"] == METER_KEY_KIND
    }
    listed: dict[object, tuple[object, object]] = {
        kid: (key.alg, key.public_key) for kid, key in bundle.keys.items()
    }
    if listed != registered:
        unproven = sorted(str(kid) for kid in listed if listed[kid] != registered.get(kid))
        unlisted = sorted(str(kid) for kid in registered if kid not in listed)
        return Check(
            "keys",
            FAILED,
            f"keys must match the bundle's meter.key/1 entries; differing or unproven "
            f"{unproven}, missing {unlisted}",
        )
    return Check("keys", PASSED, f"{len(listed)} key(s), each matching its meter.key/1 entry")


def _non_canonical_base64(note: str) -> str | None:
    """The first base64 field of a note (root hash line, signature blobs) that is not spelled
    canonically, if any.

    Python's decoder (like Go's default one) ignores the unused low bits of the last base64
    character, so without this a changed character could leave the note valid: the same
    checkpoint in another spelling, which would break "any changed byte is detected".
    """
    body, _, signatures = note.rpartition("\n\n")
    lines = body.split("\n")
    fields = [lines[2]] if len(lines) > 2 else []
    fields += [line.rpartition(" ")[2] for line in signatures.split("\n") if line]
    for text in fields:
        try:
            if base64.b64encode(base64.b64decode(text, validate=True)).decode() != text:
                return text
        except (binascii.Error, ValueError):
            continue  # not base64 at all: open_checkpoint reports it precisely
    return None


def _checkpoint_check(bundle: ProofBundle, key: NoteVerifier) -> Check:
    anchor = bundle.anchor
    odd = _non_canonical_base64(bundle.checkpoint)
    if odd is not None:
        return Check("checkpoint", FAILED, f"checkpoint field {odd[:16]}… is not canonical base64")
    try:
        checkpoint = open_checkpoint(bundle.checkpoint, key)
    except CheckpointError as exc:
        return Check("checkpoint", FAILED, str(exc))
    if checkpoint.origin != key.name:
        problem = f"the trusted key is for {key.name!r}; the checkpoint is of {checkpoint.origin!r}"
    elif checkpoint.size != anchor.size:
        problem = f"checkpoint size {checkpoint.size} is not the anchored size {anchor.size}"
    elif checkpoint.root_hash != anchor.root_bytes:
        problem = f"checkpoint root 0x{checkpoint.root_hash.hex()} is not the anchored root"
    else:
        return Check(
            "checkpoint", PASSED, f"signed by {key.name}+{key.key_id.hex()}; size {anchor.size}"
        )
    return Check("checkpoint", FAILED, problem)


def _log_id_check(bundle: ProofBundle) -> Check:
    origin = bundle.checkpoint.split("\n", 1)[0]
    # surrogatepass: a JSON "\ud800" must give a (wrong) hash, not an exception.
    if hashlib.sha256(origin.encode("utf-8", "surrogatepass")).digest() == (
        bundle.anchor.log_id_bytes
    ):
        return Check("log-id", PASSED, f"sha256({origin!r})")
    return Check("log-id", FAILED, f"anchor.logId is not sha256 of the origin {origin!r}")


def _inclusion_checks(bundle: ProofBundle) -> tuple[list[Check], dict[int, bool]]:
    anchor = bundle.anchor
    checks: list[Check] = []
    included: dict[int, bool] = {}
    for entry in bundle.entries:
        name = f"inclusion[{entry.index}]"
        digest = leaf_hash(entry.leaf_bytes())
        try:
            verify_inclusion(
                entry.index, anchor.size, digest, entry.inclusion_hashes(), anchor.root_bytes
            )
        except InclusionProofError as exc:
            included[entry.index] = False
            checks.append(Check(name, FAILED, str(exc)))
        else:
            included[entry.index] = True
            checks.append(Check(name, PASSED, f"leaf hash {digest.hex()[:16]}… is in the tree"))
    return checks, included


def _entry_checks(
    bundle: ProofBundle, included: Mapping[int, bool]
) -> tuple[list[Check], dict[int, Mapping[str, Any]], dict[int, Check], dict[str, ProvenKey]]:
    """The keys check and one check per entry, with what the bundle checkers need."""
    decoded: dict[int, Mapping[str, Any]] = {}
    problems: dict[int, str] = {}
    for entry in bundle.entries:
        try:
            decoded[entry.index] = _decode_entry(entry.leaf_bytes())
        except _EntryProblemError as exc:
            problems[entry.index] = str(exc)
    checks = [_keys_check(bundle, decoded)]
    keys = _proven_keys(decoded, included)
    by_index: dict[int, Check] = {}
    for entry in bundle.entries:
        name = f"entry[{entry.index}]"
        if entry.index in problems:
            check = Check(name, FAILED, problems[entry.index])
        else:
            value = decoded[entry.index]
            checker = _ENTRY_CHECKERS.get(value["kind"])
            if checker is None:
                check = Check(name, NOT_CHECKED, f"no checker for kind {value['kind']!r}")
            else:
                try:
                    verdict = checker(EntryContext(entry.index, value, included[entry.index], keys))
                except Exception as exc:  # a plug-in's bug must not turn a bundle into a crash
                    verdict = Verdict(FAILED, f"the {value['kind']} checker failed: {exc!r}")
                check = Check(name, verdict.status, verdict.message)
        checks.append(check)
        by_index[entry.index] = check
    return checks, decoded, by_index, keys


def _contract_check(anchor: BundleAnchor, pinned: str | None) -> Check:
    if pinned is None:
        return Check("contract", NOT_CHECKED, "no contract pinned (--contract)")
    if pinned == anchor.contract:
        return Check("contract", PASSED, f"the pinned contract {pinned}")
    return Check("contract", FAILED, f"anchor.contract {anchor.contract} is not {pinned}")


def verify_bundle(
    bundle: bytes | str | Mapping[str, Any] | ProofBundle,
    *,
    anchor_reader: AnchorReader,
    log_verifier_key: NoteVerifier,
    trusted_contract: str | None = None,
    trusted_issuer: str | None = None,
    now: int | None = None,
) -> VerificationReport:
    """Verify a bundle (bytes, text, decoded JSON or model); see the module docstring.

    `log_verifier_key` is the log's checkpoint key from the verifier's own configuration.
    `trusted_contract`, when given, pins the anchor contract; `trusted_issuer` pins the DID
    that credentials must be issued by; `now` (default: the clock) is the moment statuses
    such as expiry are judged at. Raises UnusableInputError only for arguments of the wrong
    type; everything about the bundle ends up in the report.
    """
    if trusted_issuer is not None and not isinstance(trusted_issuer, str):
        raise UnusableInputError("trusted_issuer must be a DID string")
    moment = int(time.time()) if now is None else now
    if not isinstance(bundle, bytes | str | Mapping | ProofBundle):
        raise UnusableInputError("a bundle is bytes, text, a JSON object or a ProofBundle")
    if not isinstance(log_verifier_key, NoteVerifier):
        raise UnusableInputError("log_verifier_key must be a ledger.log.checkpoint.NoteVerifier")
    pinned = None
    if trusted_contract is not None:
        try:
            pinned = to_checksum_address(trusted_contract)
        except ValueError as exc:
            raise UnusableInputError(f"trusted contract {trusted_contract!r}: {exc}") from exc

    started = time.perf_counter()
    try:
        parsed = parse_bundle(bundle)
    except BundleFormatError as exc:
        elapsed = time.perf_counter() - started
        return VerificationReport((Check("format", FAILED, str(exc)),), elapsed, None, None)
    anchor = parsed.anchor
    checks = [
        Check("format", PASSED, f"{BUNDLE_FORMAT} with {len(parsed.entries)} entries"),
        _log_id_check(parsed),
        _checkpoint_check(parsed, log_verifier_key),
    ]
    inclusion, included = _inclusion_checks(parsed)
    checks += inclusion
    entry_checks, decoded, by_index, keys = _entry_checks(parsed, included)
    checks += entry_checks
    findings = _bundle_checks(
        BundleContext(parsed, decoded, included, by_index, keys, trusted_issuer, moment)
    )
    checks += findings.checks
    checks.append(_contract_check(anchor, pinned))
    offline = time.perf_counter() - started

    # The one chain lookup, made even when an offline check failed: the report then says
    # whether the chain agrees with the anchor claim independently of the rest.
    chain_started = time.perf_counter()
    try:
        observed = anchor_reader.observe(
            anchor.contract, anchor.log_id_bytes, anchor.size, anchor.tx_bytes
        )
    except AnchorReaderError as exc:
        checks.append(Check("chain", FAILED, str(exc)))
    else:
        checks.append(_chain_check(anchor, observed))
    chain_seconds = time.perf_counter() - chain_started
    return VerificationReport(tuple(checks), offline, chain_seconds, parsed, findings.summary)


# Certificate checkers register themselves on import. Imported last, so that their
# `from attestation.bundles.verify import ...` finds everything defined (no import cycle trouble).
import attestation.certificates.check  # noqa: E402, F401
