"""The offline verifier: check a proof bundle with nothing but the bundle, the log's
checkpoint key and one look at the chain (DESIGN §2, §4.5; issue 4, part 4).

`verify_bundle` runs named checks and records each as pass, fail or not-checked; a bundle
that does not verify is a report with failed checks, never an exception. Checks:

| name            | what                                                                  |
| --------------- | --------------------------------------------------------------------- |
| format          | the bundle parses under the strict schema of `attestation.bundles.format` |
| log-id          | anchor.logId = sha256(checkpoint origin) (DESIGN §4.4)               |
| checkpoint      | signed by the trusted log key (named for that origin); its size and   |
|                 | root are the anchor's                                                 |
| inclusion[i]    | entry i's leaf hash, recomputed, is at index i of (anchor.size, root) |
| keys            | `keys` lists exactly the meter keys of the bundle's meter.key entries |
| entry[i]        | the entry's own content and signature, by its product's checker;     |
|                 | a kind without a checker FAILS (unknown kind)                         |
| (bundle-level)  | a product's checks that need several entries at once (certificates:  |
|                 | `attestation.certificates.check`)                                     |
| contract        | anchor.contract is the contract the verifier pinned (not-checked when |
|                 | none was pinned: then any contract with a matching root would do)    |
| chain           | one lookup: the contract holds `root` at `size` under `logId`, and   |
|                 | `tx` in block `block` emitted that anchor                             |

The products whose checks run are `PRODUCTS`: meters and readings
(`attestation.meters.check`, which also says how meter keys are trusted) and certificates
(`attestation.certificates.check`). A product depends on `attestation.bundles.report` only;
this module is the one place that assembles them.

Everything but the chain lookup is pure and timed (`offline_seconds`, DESIGN §8: ≤ 5 ms).
Bundle-level checks may add plain-words `summary` lines to the report (what the bundle proves).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

from attestation.bundles.chain_reader import AnchorReader, AnchorReaderError, chain_check
from attestation.bundles.format import (
    BUNDLE_FORMAT,
    BundleAnchor,
    BundleFormatError,
    ProofBundle,
    load_json_strict,
    parse_bundle,
)
from attestation.bundles.report import (
    FAILED,
    NOT_CHECKED,
    PASSED,
    BundleContext,
    BundleFindings,
    Check,
    EntryChecker,
    EntryContext,
    Product,
    ProvenKey,
    UnusableInputError,
    Verdict,
    VerificationReport,
)
from attestation.certificates.check import CERTIFICATES
from attestation.chain.address import checksum_address
from attestation.meters.check import METERS, keys_check, proven_keys
from ledger.log.canonical import CanonicalizationError, canonical_json
from ledger.log.checkpoint import CheckpointError, NoteVerifier, open_checkpoint
from ledger.log.merkle import InclusionProofError, leaf_hash, verify_inclusion

PRODUCTS: tuple[Product, ...] = (METERS, CERTIFICATES)
"""Every product this registry defines, in the order their checks are reported."""


def _entry_checkers(products: Sequence[Product]) -> dict[str, EntryChecker]:
    checkers: dict[str, EntryChecker] = {}
    for product in products:
        for kind, checker in product.entry_checkers.items():
            if kind in checkers:
                raise ValueError(f"entry kind {kind!r} has checkers in two products")
            checkers[kind] = checker
    return checkers


def _bundle_checks(products: Sequence[Product], context: BundleContext) -> BundleFindings:
    checks: list[Check] = []
    summary: list[str] = []
    for product in products:
        for name, checker in product.bundle_checkers.items():
            try:
                findings = checker(context)
            except Exception as exc:  # a checker's bug must not turn a bundle into a crash
                findings = BundleFindings(
                    (Check(name, FAILED, f"the {name} checker failed: {exc!r}"),)
                )
            checks.extend(findings.checks)
            summary.extend(findings.summary)
    return BundleFindings(tuple(checks), tuple(summary))


class _UndecodableError(ValueError):
    """The leaf is not canonical JSON with a `kind`."""


def _decode_entry(leaf: bytes) -> Mapping[str, Any]:
    try:
        value = load_json_strict(leaf)
    except BundleFormatError as exc:
        raise _UndecodableError(f"leaf is not JSON: {exc}") from exc
    if not isinstance(value, dict) or not isinstance(value.get("kind"), str):
        raise _UndecodableError('leaf is not a JSON object with a "kind"')
    try:
        canonical = canonical_json(value)
    except CanonicalizationError as exc:
        raise _UndecodableError(str(exc)) from exc
    # Leaves are written as JCS; any other spelling cannot be what the log hashed.
    if canonical != leaf:
        raise _UndecodableError("leaf is not canonical JSON (RFC 8785)")
    return value


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
    bundle: ProofBundle,
    included: Mapping[int, bool],
    entry_checkers: Mapping[str, EntryChecker],
) -> tuple[list[Check], dict[int, Mapping[str, Any]], dict[int, Check], dict[str, ProvenKey]]:
    """The keys check and one check per entry, with what the bundle checkers need."""
    decoded: dict[int, Mapping[str, Any]] = {}
    problems: dict[int, str] = {}
    for entry in bundle.entries:
        try:
            decoded[entry.index] = _decode_entry(entry.leaf_bytes())
        except _UndecodableError as exc:
            problems[entry.index] = str(exc)
    checks = [keys_check(bundle, decoded)]
    keys = proven_keys(decoded, included)
    by_index: dict[int, Check] = {}
    for entry in bundle.entries:
        name = f"entry[{entry.index}]"
        if entry.index in problems:
            check = Check(name, FAILED, problems[entry.index])
        else:
            value = decoded[entry.index]
            checker = entry_checkers.get(value["kind"])
            if checker is None:
                # An unknown kind fails (decision 95): a bundle cannot rest on an entry whose
                # meaning this verifier does not know, or a forger would pick a new kind.
                check = Check(
                    name,
                    FAILED,
                    f"unknown entry kind {value['kind']!r}: this verifier cannot check what it "
                    "says (a newer carbonledger may)",
                )
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


def _chain_id_check(anchor: BundleAnchor, pinned: int | None) -> Check:
    if pinned is None:
        return Check("chain-id", NOT_CHECKED, "no chain pinned (--chain-id)")
    if pinned == anchor.chain_id:
        return Check("chain-id", PASSED, f"the pinned chain {pinned}")
    return Check("chain-id", FAILED, f"anchor.chainId {anchor.chain_id} is not {pinned}")


def verify_bundle(
    bundle: bytes | str | Mapping[str, Any] | ProofBundle,
    *,
    anchor_reader: AnchorReader,
    log_verifier_key: NoteVerifier,
    trusted_contract: str | None = None,
    trusted_issuer: str | Sequence[str] | None = None,
    trusted_chain_id: int | None = None,
    now: int | None = None,
    products: Sequence[Product] = PRODUCTS,
) -> VerificationReport:
    """Verify a bundle (bytes, text, decoded JSON or model); see the module docstring.

    `log_verifier_key` is the log's checkpoint key from the verifier's own configuration.
    `trusted_contract`, when given, pins the anchor contract, `trusted_chain_id` the chain;
    `trusted_issuer` pins the DID (or DIDs) that credentials must be issued by. A trust
    input not given leaves its check not made, and the report incomplete; `now` (default:
    the clock) is the moment statuses such as expiry are judged at; `products` are the
    checkers run (default: every product this registry defines). Raises UnusableInputError
    only for arguments of the wrong type; everything about the bundle ends up in the report.
    """
    if trusted_issuer is None:
        issuers: tuple[str, ...] = ()
    elif isinstance(trusted_issuer, str):
        issuers = (trusted_issuer,)
    elif isinstance(trusted_issuer, Sequence) and all(
        isinstance(did, str) for did in trusted_issuer
    ):
        issuers = tuple(trusted_issuer)
    else:
        raise UnusableInputError("trusted_issuer must be a DID string or a sequence of them")
    if trusted_chain_id is not None and (
        isinstance(trusted_chain_id, bool) or not isinstance(trusted_chain_id, int)
    ):
        raise UnusableInputError("trusted_chain_id must be an integer")
    moment = int(time.time()) if now is None else now
    if not isinstance(bundle, bytes | str | Mapping | ProofBundle):
        raise UnusableInputError("a bundle is bytes, text, a JSON object or a ProofBundle")
    if not isinstance(log_verifier_key, NoteVerifier):
        raise UnusableInputError("log_verifier_key must be a ledger.log.checkpoint.NoteVerifier")
    pinned = None
    if trusted_contract is not None:
        try:
            pinned = checksum_address(trusted_contract)
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
    entry_checks, decoded, by_index, keys = _entry_checks(
        parsed, included, _entry_checkers(products)
    )
    checks += entry_checks
    findings = _bundle_checks(
        products,
        BundleContext(parsed, decoded, included, by_index, keys, issuers, moment),
    )
    checks += findings.checks
    checks.append(_chain_id_check(anchor, trusted_chain_id))
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
        checks.append(chain_check(anchor, observed))
    chain_seconds = time.perf_counter() - chain_started
    return VerificationReport(tuple(checks), offline, chain_seconds, parsed, findings.summary)
