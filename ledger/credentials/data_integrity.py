"""Verifiable credentials and signed statements, as pure functions (DESIGN §4.6).

Certificates and passports leave the registry as W3C Verifiable Credentials 2.0 so a
verifier can check them with any standard tool, without trusting or even contacting the
operator. They are secured with the Data Integrity cryptosuite `eddsa-jcs-2022` because it
needs only JCS (which the log already uses, DESIGN §4.1) rather than RDF canonicalisation
and remote JSON-LD contexts, and issuers are `did:key` identifiers so the public key is
readable from the identifier itself: no resolver, no network.

Signed statements are the lighter form for log entries: the entry itself carries the signer
and a detached Ed25519 signature over its own canonical bytes, so a statement stays one
JSON object that the log can store and a verifier can check alone.

Nothing here stores or fetches anything. Every failure is reported as a subclass of
`CredentialError` (or `StatementError`) whose message names the check that failed, so an
API can pass it on and a fuzzer can tell a refusal from a crash.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.log.canonical import (
    CanonicalizationError,
    canonical_json,
    canonical_json_checked,
    fast_path_safe,
)

CRYPTOSUITE = "eddsa-jcs-2022"
PROOF_TYPE = "DataIntegrityProof"
PROOF_PURPOSE = "assertionMethod"
DID_KEY_PREFIX = "did:key:"

# Multicodec varint prefixes (https://github.com/multiformats/multicodec): ed25519-pub 0xed
# and ed25519-priv 0x1300, each written as an unsigned varint before the raw 32 bytes.
_ED25519_PUB_CODEC = b"\xed\x01"
_ED25519_PRIV_CODEC = b"\x80\x26"
_ED25519_KEY_BYTES = 32
_ED25519_SIGNATURE_BYTES = 64

# The members this verifier understands. Others (expires, domain, challenge, nonce,
# previousProof, ...) carry conditions it does not enforce, so accepting them would let a
# proof pass while one of its own conditions is unmet.
_PROOF_MEMBERS = frozenset(
    {
        "type",
        "cryptosuite",
        "created",
        "verificationMethod",
        "proofPurpose",
        "@context",
        "proofValue",
    }
)

# RFC 3339 §5.6 date-time; datetime.fromisoformat then rejects impossible dates and times.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})", re.ASCII
)
# 64 bytes are 86 base64url characters without padding; the last one carries 2 bits of data
# and 4 zero bits, which _decode_signature enforces by re-encoding.
_B64URL_SIG = re.compile(r"[A-Za-z0-9_-]{86}", re.ASCII)


class CredentialError(ValueError):
    """A credential was refused; the message says exactly which check failed."""


class CredentialFormatError(CredentialError):
    """The credential, proof, key or identifier is not shaped as required."""


class CredentialSignatureError(CredentialError):
    """The structure is right but the Ed25519 signature does not verify."""


class StatementError(ValueError):
    """A signed statement was refused (or cannot be made); the message says why."""


# --- base58btc -------------------------------------------------------------------------------

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {character: position for position, character in enumerate(_B58_ALPHABET)}
_B58_PAIR_BASE = 58 * 58
_B58_PAIRS = tuple(high + low for high in _B58_ALPHABET for low in _B58_ALPHABET)
_B58_CHUNK_PAIRS = 5
_B58_CHUNK = _B58_PAIR_BASE**_B58_CHUNK_PAIRS


def base58btc_encode(data: bytes) -> str:
    """Bitcoin-alphabet base58; each leading zero byte becomes one leading '1'."""
    zeros = len(data) - len(data.lstrip(b"\0"))
    number = int.from_bytes(data, "big")
    # Big-integer division is the cost, so divide by 58**10 (fits a machine word) and spell
    # each chunk with two-digit table lookups: about half the time of digit-by-digit.
    pairs: list[str] = []
    while number:
        number, chunk = divmod(number, _B58_CHUNK)
        for _ in range(_B58_CHUNK_PAIRS):
            chunk, pair = divmod(chunk, _B58_PAIR_BASE)
            pairs.append(_B58_PAIRS[pair])
    # Chunk padding leaves zero digits ('1') in front of the number; they are not data.
    return "1" * zeros + "".join(reversed(pairs)).lstrip("1")


B58_MAX_DECODED_BYTES = 64
"""The longest value the registry decodes from base58btc: an Ed25519 signature."""


def base58_length_bound(decoded_bytes: int) -> int:
    """The most characters `base58btc_encode` writes for `decoded_bytes` bytes: a zero byte
    is one '1', any other byte adds log58(256) < 1.3658 digits."""
    return (decoded_bytes * 13658 + 9999) // 10000 + 1


def base58btc_decode(text: str, max_bytes: int = B58_MAX_DECODED_BYTES) -> bytes:
    """Inverse of `base58btc_encode`; any character outside the alphabet is refused, and so
    is a text too long to decode to at most `max_bytes` bytes — checked first, because the
    big-number decoding is quadratic in the length (60,000 characters took 1.15 s).

    The result is unique: after the leading '1's the rest is a minimal big-endian number, so
    every accepted text is the one `base58btc_encode` would produce for the returned bytes.
    """
    if not isinstance(text, str):
        raise CredentialFormatError(f"base58btc text must be a string, not {type(text).__name__}")
    if len(text) > base58_length_bound(max_bytes):
        raise CredentialFormatError(
            f"base58btc text of {len(text)} characters is longer than any value of at most "
            f"{max_bytes} bytes"
        )
    number = 0
    for position, character in enumerate(text):
        digit = _B58_INDEX.get(character)
        if digit is None:
            raise CredentialFormatError(
                f"base58btc text has {character!r} at position {position}, "
                "which is not in the Bitcoin alphabet"
            )
        number = number * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * zeros + body


def _multibase_decode(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise CredentialFormatError(f"{what} must be a string, not {type(text).__name__}")
    if not text.startswith("z"):
        raise CredentialFormatError(f"{what} must be multibase base58btc (start with 'z')")
    try:
        return base58btc_decode(text[1:])
    except CredentialFormatError as exc:
        raise CredentialFormatError(f"{what} is not valid base58btc: {exc}") from None


# --- keys and did:key ------------------------------------------------------------------------


def ed25519_public_multibase(public_key: bytes) -> str:
    """`publicKeyMultibase` of a raw Ed25519 public key: 'z' + base58btc(0xed 0x01 || key)."""
    if len(public_key) != _ED25519_KEY_BYTES:
        raise CredentialFormatError(
            f"an Ed25519 public key is {_ED25519_KEY_BYTES} bytes, not {len(public_key)}"
        )
    return "z" + base58btc_encode(_ED25519_PUB_CODEC + bytes(public_key))


def ed25519_public_from_multibase(text: str) -> bytes:
    """Raw Ed25519 public key from `publicKeyMultibase`; anything else is refused."""
    decoded = _multibase_decode(text, "Ed25519 publicKeyMultibase")
    if len(decoded) != 2 + _ED25519_KEY_BYTES or not decoded.startswith(_ED25519_PUB_CODEC):
        raise CredentialFormatError(
            "Ed25519 publicKeyMultibase must decode to 0xed01 followed by 32 key bytes"
        )
    return decoded[2:]


def ed25519_seed_from_private_multibase(text: str) -> bytes:
    """32-byte Ed25519 seed from `secretKeyMultibase`: 'z' + base58btc(0x80 0x26 || seed)."""
    decoded = _multibase_decode(text, "Ed25519 secretKeyMultibase")
    if len(decoded) != 2 + _ED25519_KEY_BYTES or not decoded.startswith(_ED25519_PRIV_CODEC):
        raise CredentialFormatError(
            "Ed25519 secretKeyMultibase must decode to 0x8026 followed by a 32-byte seed"
        )
    return decoded[2:]


def did_key(public_key: bytes) -> str:
    """The `did:key` DID of a raw Ed25519 public key ("did:key:z6Mk...")."""
    return DID_KEY_PREFIX + ed25519_public_multibase(public_key)


def did_key_verification_method(did: str) -> str:
    """The one verification method of a did:key DID: the DID plus '#' plus its own key part."""
    public_key_from_did_key(did)
    if "#" in did:
        raise CredentialFormatError(f"{did!r} is already a DID URL; expected a did:key DID")
    return f"{did}#{did[len(DID_KEY_PREFIX) :]}"


def _parse_did_key(value: object) -> tuple[str, bytes]:
    """(DID, raw key) of "did:key:X" or "did:key:X#X"."""
    if not isinstance(value, str):
        raise CredentialFormatError(
            f"a did:key identifier must be a string, not {type(value).__name__}"
        )
    return _parse_did_key_text(value)


@lru_cache(maxsize=1024)
def _parse_did_key_text(value: str) -> tuple[str, bytes]:
    # Cached because the same few issuer identifiers are parsed for every credential and
    # statement; only successful parses are cached (exceptions pass through lru_cache).
    did, hash_mark, fragment = value.partition("#")
    if not did.startswith(DID_KEY_PREFIX):
        raise CredentialFormatError(f"{value!r} is not a did:key identifier")
    key_part = did[len(DID_KEY_PREFIX) :]
    if hash_mark and fragment != key_part:
        raise CredentialFormatError(
            f"the fragment of did:key URL {value!r} must repeat the key ({key_part!r})"
        )
    return did, ed25519_public_from_multibase(key_part)


@lru_cache(maxsize=1024)
def _public_key_object(public_key: bytes) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError as exc:
        raise CredentialFormatError(f"not a usable Ed25519 public key: {exc}") from None


def public_key_from_did_key(did_or_verification_method: str) -> bytes:
    """Raw Ed25519 key of "did:key:X" or "did:key:X#X"; any other form is refused."""
    return _parse_did_key(did_or_verification_method)[1]


def public_bytes(private_key: Ed25519PrivateKey) -> bytes:
    """Raw 32-byte public key of an Ed25519 private key."""
    return private_key.public_key().public_bytes_raw()


# --- Data Integrity proofs -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProofOptions:
    """What the signer chooses for one proof; `proofValue` is computed, never chosen."""

    created: str
    verification_method: str
    proof_purpose: str = PROOF_PURPOSE


def _canonical(value: Mapping[str, Any], what: str) -> bytes:
    try:
        # rfc8785 serialises dicts only, and the signature must not depend on Mapping type.
        return canonical_json(value if isinstance(value, dict) else dict(value))
    except CanonicalizationError as exc:
        raise CredentialFormatError(f"{what} cannot be canonicalised (JCS): {exc}") from None


def proof_hashes(
    unsigned: Mapping[str, Any], proof_config: Mapping[str, Any]
) -> tuple[bytes, bytes]:
    """(proofHash, docHash): SHA-256 of JCS(proof configuration) and of JCS(unsecured document).

    The signed message is their concatenation, proof first (eddsa-jcs-2022 §3.3.4).
    """
    if "proof" in unsigned:
        raise CredentialFormatError('the unsecured document must not contain "proof"')
    if "proofValue" in proof_config:
        raise CredentialFormatError('the proof configuration must not contain "proofValue"')
    proof_hash = hashlib.sha256(_canonical(proof_config, "the proof configuration")).digest()
    doc_hash = hashlib.sha256(_canonical(unsigned, "the document")).digest()
    return proof_hash, doc_hash


def _checked_options_key(options: ProofOptions) -> bytes:
    """The raw key named by the options' verification method, once the options are valid."""
    for name in ("created", "verification_method", "proof_purpose"):
        value = getattr(options, name)
        if not isinstance(value, str):
            raise CredentialFormatError(f"proof option {name} must be a string, not {value!r}")
    return _checked_options_key_cached(options)


@lru_cache(maxsize=256)
def _checked_options_key_cached(options: ProofOptions) -> bytes:
    # Cached: a batch signs many credentials with the same options.
    _check_created(options.created)
    method = options.verification_method
    if "#" not in method:
        raise CredentialFormatError(
            f"verification method {method!r} is not a did:key URL (did:key:X#X)"
        )
    return public_key_from_did_key(method)


@lru_cache(maxsize=256)
def _proof_config_hash(options: ProofOptions, context: tuple[str, ...] | None) -> bytes:
    # A batch of credentials shares one issuer, context and usually one `created` second,
    # so the proof configuration is the same and need not be canonicalised each time.
    config: dict[str, Any] = {
        "type": PROOF_TYPE,
        "cryptosuite": CRYPTOSUITE,
        "created": options.created,
        "verificationMethod": options.verification_method,
        "proofPurpose": options.proof_purpose,
    }
    if context is not None:
        config["@context"] = list(context)
    return hashlib.sha256(_canonical(config, "the proof configuration")).digest()


def _check_created(created: object) -> str:
    if not isinstance(created, str) or not _RFC3339.fullmatch(created):
        raise CredentialFormatError(f"proof created {created!r} is not an RFC 3339 date-time")
    try:
        datetime.fromisoformat(created.upper())
    except ValueError:
        raise CredentialFormatError(
            f"proof created {created!r} is not a valid RFC 3339 date-time"
        ) from None
    return created


def sign_credential(
    unsigned: Mapping[str, Any], private_key: Ed25519PrivateKey, options: ProofOptions
) -> dict[str, Any]:
    """Return a new dict: the document plus an `eddsa-jcs-2022` DataIntegrityProof.

    The proof's members are written in the order of the specification's vector, so the
    result serialises exactly like it. The document's `@context` is copied into the proof,
    as the cryptosuite requires. The verification method must be the did:key URL of
    `private_key`: a proof naming another key could never verify.
    """
    return _sign(unsigned, private_key, options, None)


@lru_cache(maxsize=256)
def _member_prefix(name: str) -> bytes:
    return canonical_json_checked(name) + b":"


def sign_credential_jcs(
    unsigned: Mapping[str, Any],
    private_key: Ed25519PrivateKey,
    options: ProofOptions,
    *,
    built_from_checked_fields: bool = False,
) -> tuple[dict[str, Any], bytes]:
    """`sign_credential`, plus the JCS bytes of the signed credential.

    For the issuer, which stores every credential canonically in a log leaf and signs
    thousands per request: each top-level member is encoded once and the unsecured and the
    signed documents are assembled from those pieces (JCS of an object with ASCII member
    names is its members in sorted order). `built_from_checked_fields` skips the walk that
    proves the document is on the canonical fast path; pass it only for documents built from
    fixed ASCII member names, integers within +-(2^53 - 1) and no floats (the issuance code).
    """
    if isinstance(unsigned, dict) and (built_from_checked_fields or fast_path_safe(unsigned)):
        try:
            pieces = {
                key: _member_prefix(key) + canonical_json_checked(value)
                for key, value in unsigned.items()
            }
        except UnicodeEncodeError:
            pass  # a lone surrogate somewhere: the general path reports it
        else:
            names = sorted(pieces)
            document = b"{" + b",".join(pieces[name] for name in names) + b"}"
            signed = _sign(unsigned, private_key, options, document)
            pieces["proof"] = _member_prefix("proof") + canonical_json_checked(signed["proof"])
            signed_bytes = b"{" + b",".join(pieces[name] for name in sorted(pieces)) + b"}"
            return signed, signed_bytes
    signed = _sign(unsigned, private_key, options, None)
    return signed, _canonical(signed, "the signed credential")


def _sign(
    unsigned: Mapping[str, Any],
    private_key: Ed25519PrivateKey,
    options: ProofOptions,
    document_bytes: bytes | None,
) -> dict[str, Any]:
    if not isinstance(unsigned, Mapping):
        raise CredentialFormatError("a credential must be a JSON object")
    if "proof" in unsigned:
        raise CredentialFormatError('the credential already has a "proof"; sign the unsecured one')
    method = options.verification_method
    if _checked_options_key(options) != public_bytes(private_key):
        raise CredentialFormatError(
            f"verification method {method!r} is not the did:key URL of the signing key"
        )
    proof: dict[str, Any] = {
        "type": PROOF_TYPE,
        "cryptosuite": CRYPTOSUITE,
        "created": options.created,
        "verificationMethod": method,
        "proofPurpose": options.proof_purpose,
    }
    # The proof configuration hash is cached when its inputs are hashable (the usual list of
    # context URLs); any other context takes the plain path.
    cacheable = True
    context_key: tuple[str, ...] | None = None
    if "@context" in unsigned:
        context = unsigned["@context"]
        # A copy, so that later edits of the credential's list cannot change the proof's.
        proof["@context"] = list(context) if isinstance(context, list) else context
        cacheable = isinstance(context, list) and all(isinstance(item, str) for item in context)
        if cacheable:
            context_key = tuple(context)
    if cacheable:
        proof_hash = _proof_config_hash(options, context_key)
        if document_bytes is None:
            document_bytes = _canonical(unsigned, "the document")
        doc_hash = hashlib.sha256(document_bytes).digest()
    else:
        proof_hash, doc_hash = proof_hashes(unsigned, proof)
    signature = private_key.sign(proof_hash + doc_hash)
    proof["proofValue"] = "z" + base58btc_encode(signature)
    signed = dict(unsigned)
    signed["proof"] = proof
    return signed


@dataclass(frozen=True, slots=True)
class VerifiedCredential:
    """A credential whose proof verified, with the facts the verifier established."""

    credential: dict[str, Any]
    issuer: str
    verification_method: str
    created: str
    public_key: bytes


def _issuer_id(document: Mapping[str, Any]) -> str:
    if "issuer" not in document:
        raise CredentialFormatError('the credential has no "issuer"')
    issuer = document["issuer"]
    if isinstance(issuer, Mapping):
        issuer = issuer.get("id")
        if not isinstance(issuer, str):
            raise CredentialFormatError('the credential\'s issuer object needs a string "id"')
    if not isinstance(issuer, str) or not issuer:
        raise CredentialFormatError(
            'the credential\'s "issuer" must be a non-empty string or an object with "id"'
        )
    return issuer


def _checked_proof(signed: Mapping[str, Any]) -> Mapping[str, Any]:
    if "proof" not in signed:
        raise CredentialFormatError('the credential has no "proof"')
    proof = signed["proof"]
    if not isinstance(proof, Mapping):
        raise CredentialFormatError('the credential\'s "proof" must be a single JSON object')
    for member in proof:
        if member not in _PROOF_MEMBERS:
            raise CredentialFormatError(
                f"proof member {member!r} is not supported by this verifier"
            )
    if proof.get("type") != PROOF_TYPE:
        raise CredentialFormatError(f"proof type is {proof.get('type')!r}, not {PROOF_TYPE!r}")
    if proof.get("cryptosuite") != CRYPTOSUITE:
        raise CredentialFormatError(
            f"proof cryptosuite is {proof.get('cryptosuite')!r}, not {CRYPTOSUITE!r}"
        )
    if proof.get("proofPurpose") != PROOF_PURPOSE:
        raise CredentialFormatError(
            f"proof purpose is {proof.get('proofPurpose')!r}, not {PROOF_PURPOSE!r}"
        )
    if "@context" in proof:
        if "@context" not in signed:
            raise CredentialFormatError('the proof has an "@context" but the credential has none')
        if proof["@context"] != signed["@context"]:
            raise CredentialFormatError(
                'the proof\'s "@context" differs from the credential\'s "@context"'
            )
    return proof


def _proof_signature(proof: Mapping[str, Any]) -> bytes:
    if "proofValue" not in proof:
        raise CredentialFormatError('the proof has no "proofValue"')
    signature = _multibase_decode(proof["proofValue"], "proofValue")
    if len(signature) != _ED25519_SIGNATURE_BYTES:
        raise CredentialFormatError(
            f"proofValue decodes to {len(signature)} bytes; an Ed25519 signature is "
            f"{_ED25519_SIGNATURE_BYTES}"
        )
    return signature


def _issuer_key(
    signed: Mapping[str, Any], method: object, issuer_controllers: Mapping[str, str] | None
) -> tuple[str, str, bytes]:
    """(issuer, verification method, raw key), once the method is bound to the issuer."""
    if not isinstance(method, str) or "#" not in method:
        raise CredentialFormatError(
            f"proof verificationMethod {method!r} is not a did:key URL (did:key:X#X)"
        )
    method_did, public_key = _parse_did_key(method)
    issuer = _issuer_id(signed)
    controller = issuer
    if not issuer.startswith(DID_KEY_PREFIX) and issuer_controllers is not None:
        controller = issuer_controllers.get(issuer, issuer)
    if controller != method_did:
        raise CredentialFormatError(
            f"verification method {method!r} is not controlled by the issuer {issuer!r}"
        )
    return issuer, method, public_key


def verify_credential(
    signed: Mapping[str, Any],
    *,
    trusted_issuer: str | None = None,
    issuer_controllers: Mapping[str, str] | None = None,
) -> VerifiedCredential:
    """Check an `eddsa-jcs-2022` credential; return it with its issuer and key, or raise.

    The verification method must be a did:key URL controlled by the credential's issuer,
    otherwise anyone could sign a credential naming the registry as issuer with their own
    key. An issuer that is not itself a did:key (such as the specification's example
    `https://vc.example/issuers/5678`) is accepted only when `issuer_controllers` maps it to
    the did:key DID that controls it: that is knowledge a verifier must bring from outside,
    since this module never fetches anything. `trusted_issuer`, when given, must equal the
    issuer. Only `CredentialError` subclasses are raised for bad input.
    """
    if not isinstance(signed, Mapping):
        raise CredentialFormatError("a credential must be a JSON object")
    proof = _checked_proof(signed)
    issuer, method, public_key = _issuer_key(
        signed, proof.get("verificationMethod"), issuer_controllers
    )
    signature = _proof_signature(proof)
    created = _check_created(proof.get("created"))
    if trusted_issuer is not None and issuer != trusted_issuer:
        raise CredentialFormatError(
            f"issuer {issuer!r} is not the trusted issuer {trusted_issuer!r}"
        )

    config = {name: value for name, value in proof.items() if name != "proofValue"}
    unsecured = {name: value for name, value in signed.items() if name != "proof"}
    proof_hash, doc_hash = proof_hashes(unsecured, config)
    try:
        _public_key_object(public_key).verify(signature, proof_hash + doc_hash)
    except InvalidSignature:
        raise CredentialSignatureError(
            f"the proof signature does not verify under {method!r}"
        ) from None
    return VerifiedCredential(
        credential=dict(signed),
        issuer=issuer,
        verification_method=method,
        created=created,
        public_key=public_key,
    )


# --- signed statements -----------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode_signature(text: object) -> bytes:
    if not isinstance(text, str):
        raise StatementError(f'statement "sig" must be a string, not {type(text).__name__}')
    if not _B64URL_SIG.fullmatch(text):
        raise StatementError(
            'statement "sig" must be 86 base64url characters without padding '
            "(a 64-byte Ed25519 signature)"
        )
    try:
        signature = base64.urlsafe_b64decode(text + "==")
    except (binascii.Error, ValueError):
        raise StatementError('statement "sig" is not valid base64url') from None
    if _b64url(signature) != text:
        raise StatementError('statement "sig" is not canonical base64url (nonzero trailing bits)')
    return signature


def _statement_bytes(entry: Mapping[str, Any]) -> bytes:
    try:
        return canonical_json(entry)
    except CanonicalizationError as exc:
        raise StatementError(f"statement cannot be canonicalised (JCS): {exc}") from None


def sign_statement(
    entry: Mapping[str, Any], private_key: Ed25519PrivateKey, signer_did: str
) -> dict[str, Any]:
    """Return `{**entry, "issuer": signer_did, "sig": ...}`, signed over the entry with issuer.

    The issuer is inside the signed bytes so a signature cannot be re-attributed to another
    key; `signer_did` must be the did:key DID of `private_key`.
    """
    if not isinstance(entry, Mapping):
        raise StatementError("a statement must be a JSON object")
    for reserved in ("sig", "issuer"):
        if reserved in entry:
            raise StatementError(f"the entry already has {reserved!r}; sign the bare entry")
    try:
        did, key = _parse_did_key(signer_did)
    except CredentialError as exc:
        raise StatementError(f"signer {signer_did!r} is not a did:key DID: {exc}") from None
    if did != signer_did:
        raise StatementError(f"signer {signer_did!r} must be a did:key DID, not a DID URL")
    if key != public_bytes(private_key):
        raise StatementError(f"signer {signer_did!r} is not the DID of the signing key")
    statement = dict(entry)
    statement["issuer"] = signer_did
    statement["sig"] = _b64url(private_key.sign(_statement_bytes(statement)))
    return statement


def verify_statement(entry: Mapping[str, Any], *, trusted_issuer: str | None = None) -> str:
    """Check a signed statement and return its issuer DID, or raise `StatementError`."""
    if not isinstance(entry, Mapping):
        raise StatementError("a statement must be a JSON object")
    if "sig" not in entry:
        raise StatementError('the statement has no "sig"')
    signature = _decode_signature(entry["sig"])
    issuer = entry.get("issuer")
    if not isinstance(issuer, str):
        raise StatementError('the statement has no string "issuer"')
    try:
        did, public_key = _parse_did_key(issuer)
        key = _public_key_object(public_key)
    except CredentialError as exc:
        raise StatementError(f"statement issuer {issuer!r} is not a did:key DID: {exc}") from None
    if did != issuer:
        raise StatementError(f"statement issuer {issuer!r} must be a did:key DID, not a DID URL")
    if trusted_issuer is not None and issuer != trusted_issuer:
        raise StatementError(f"statement issuer {issuer!r} is not the trusted {trusted_issuer!r}")
    unsigned = {name: value for name, value in entry.items() if name != "sig"}
    try:
        key.verify(signature, _statement_bytes(unsigned))
    except InvalidSignature:
        raise StatementError(f"the statement signature does not verify under {issuer}") from None
    return issuer
