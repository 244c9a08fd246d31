"""Signed meter readings (DESIGN §4.3): the payload, the envelope and their verification.

    payload  = {"meter", "seq", "time", "importWh", "exportWh"}
    envelope = {"payload": payload, "alg": "Ed25519" | "ES256", "sig": base64url(no padding)}

The signature covers JCS(payload). ES256 signatures are the raw 64-byte r‖s (as in JWS),
not DER. Meter public keys travel as base64 SubjectPublicKeyInfo DER, which names the
algorithm and curve itself; a key id is the first 16 bytes of SHA-256(SPKI), hex.

This module is pure (no storage): the registry's ingestion and the offline verifier use it,
and `meter_signing` signs with the same canonical bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ledger.log.canonical import canonical_json
from ledger.times import UtcTimeError, datetime_of, epoch_of, format_utc, parse_utc

Algorithm = Literal["Ed25519", "ES256"]
ALGORITHMS: frozenset[str] = frozenset({"Ed25519", "ES256"})
MAX_METER_ID_LENGTH = 128
# JCS (RFC 8785) serialises numbers as IEEE doubles: integers above 2**53 - 1 cannot be
# canonicalised, so a larger seq or register would pass parsing and then fail in
# canonical_bytes(). 2**53 - 1 Wh is 9 PWh, far beyond any meter register.
MAX_REGISTER_WH = (1 << 53) - 1
METER_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
BASE64URL_PATTERN = re.compile(r"^[A-Za-z0-9_-]*$")
PAYLOAD_FIELDS = frozenset({"meter", "seq", "time", "importWh", "exportWh"})
ENVELOPE_FIELDS = frozenset({"payload", "alg", "sig"})


class ReadingFormatError(ValueError):
    """A payload or envelope does not follow DESIGN §4.3; the message names the field."""


class ReadingSignatureError(ValueError):
    """The signature does not verify under the given key (or key and algorithm disagree)."""


@dataclass(frozen=True, slots=True)
class ReadingPayload:
    meter: str
    seq: int
    time: datetime
    import_wh: int
    export_wh: int

    def to_json(self) -> dict[str, Any]:
        return {
            "meter": self.meter,
            "seq": self.seq,
            "time": format_time(self.time),
            "importWh": self.import_wh,
            "exportWh": self.export_wh,
        }

    def canonical_bytes(self) -> bytes:
        return canonical_json(self.to_json())


@dataclass(frozen=True, slots=True)
class SignedReading:
    payload: ReadingPayload
    alg: Algorithm
    signature: bytes

    def to_json(self) -> dict[str, Any]:
        return {"payload": self.payload.to_json(), "alg": self.alg, "sig": b64url(self.signature)}


def format_time(moment: datetime) -> str:
    """The one spelling of a reading time (`ledger.times`)."""
    if moment.tzinfo is None or moment.utcoffset() != UTC.utcoffset(None):
        raise ReadingFormatError("reading times must be UTC")
    try:
        return format_utc(epoch_of(moment))
    except UtcTimeError as exc:
        raise ReadingFormatError(f"reading time: {exc}") from None


def parse_time(text: Any) -> datetime:
    """A reading time, strictly as `ledger.times` spells it."""
    try:
        return datetime_of(parse_utc(text))
    except UtcTimeError as exc:
        raise ReadingFormatError(str(exc)) from None


def _non_negative_int(value: Any, field: str) -> int:
    # bool is an int in Python; a JSON true must not pass as 1 Wh.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ReadingFormatError(f"{field} must be an integer")
    if not 0 <= value <= MAX_REGISTER_WH:
        raise ReadingFormatError(f"{field} must be between 0 and {MAX_REGISTER_WH}")
    return value


def parse_payload(value: Any) -> ReadingPayload:
    if not isinstance(value, Mapping):
        raise ReadingFormatError("payload must be a JSON object")
    keys = set(value)
    if keys != PAYLOAD_FIELDS:
        missing, extra = sorted(PAYLOAD_FIELDS - keys), sorted(keys - PAYLOAD_FIELDS)
        raise ReadingFormatError(f"payload fields: missing {missing}, unexpected {extra}")
    meter = value["meter"]
    if not isinstance(meter, str) or not METER_ID_PATTERN.fullmatch(meter):
        raise ReadingFormatError("meter must be 1-128 characters of A-Z a-z 0-9 . _ : -")
    return ReadingPayload(
        meter=meter,
        seq=_non_negative_int(value["seq"], "seq"),
        time=parse_time(value["time"]),
        import_wh=_non_negative_int(value["importWh"], "importWh"),
        export_wh=_non_negative_int(value["exportWh"], "exportWh"),
    )


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """Strict base64url: only the URL-safe alphabet, no padding, no stray bits.

    Python's decoder alone would also take "+" and "/", skip unknown characters and ignore
    non-zero trailing bits, so one signature could travel as several strings; a re-encoded
    envelope would then look like a different reading for the same seq (equivocation).
    """
    if not isinstance(text, str) or "=" in text:
        raise ReadingFormatError("sig must be base64url without padding")
    if not BASE64URL_PATTERN.fullmatch(text):
        raise ReadingFormatError("sig is not valid base64url (A-Z a-z 0-9 - _ only)")
    try:
        decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ReadingFormatError("sig is not valid base64url") from exc
    if b64url(decoded) != text:
        raise ReadingFormatError("sig is not canonical base64url (non-zero trailing bits)")
    return decoded


def parse_envelope(value: Any) -> SignedReading:
    if not isinstance(value, Mapping):
        raise ReadingFormatError("envelope must be a JSON object")
    keys = set(value)
    if keys != ENVELOPE_FIELDS:
        missing, extra = sorted(ENVELOPE_FIELDS - keys), sorted(keys - ENVELOPE_FIELDS)
        raise ReadingFormatError(f"envelope fields: missing {missing}, unexpected {extra}")
    alg = value["alg"]
    # isinstance first: a JSON array or object is unhashable and `in` would raise TypeError.
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        raise ReadingFormatError(f"alg must be one of {sorted(ALGORITHMS)}")
    signature = b64url_decode(value["sig"])
    if len(signature) != 64:
        raise ReadingFormatError(f"{alg} signatures are 64 bytes; got {len(signature)}")
    # cast: membership in ALGORITHMS was checked above; mypy cannot narrow str to the Literal.
    return SignedReading(parse_payload(value["payload"]), cast(Algorithm, alg), signature)


# --------------------------------------------------------------------------- keys


MeterPublicKey = Ed25519PublicKey | ec.EllipticCurvePublicKey


def load_meter_public_key(spki_der: bytes) -> tuple[Algorithm, MeterPublicKey]:
    """Parse a meter key (SPKI DER) and say which envelope algorithm it signs with."""
    try:
        key = serialization.load_der_public_key(spki_der)
    except ValueError as exc:
        raise ReadingFormatError("public key is not a DER SubjectPublicKeyInfo") from exc
    except UnsupportedAlgorithm as exc:
        # A well-formed SPKI naming an algorithm OpenSSL does not know: the caller's error.
        raise ReadingFormatError("meter keys are Ed25519 or ECDSA P-256") from exc
    if isinstance(key, Ed25519PublicKey):
        return "Ed25519", key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256", key
    raise ReadingFormatError("meter keys are Ed25519 or ECDSA P-256")


def public_key_spki(key: MeterPublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_id(spki_der: bytes) -> str:
    return hashlib.sha256(spki_der).digest()[:16].hex()


def verify_signed_reading(reading: SignedReading, spki_der: bytes) -> None:
    """Raise ReadingSignatureError unless the meter key `spki_der` signed this reading."""
    alg, key = load_meter_public_key(spki_der)
    verify_with_public_key(reading, alg, key, reading.payload.canonical_bytes())


def verify_with_public_key(
    reading: SignedReading, alg: Algorithm, key: MeterPublicKey, message: bytes
) -> None:
    """As `verify_signed_reading`, for callers that hold the parsed key and JCS(payload)
    already (ingestion verifies thousands of readings per key; parsing the key each time
    would cost as much as the verification)."""
    if alg != reading.alg:
        raise ReadingSignatureError(f"the key is an {alg} key but the envelope says {reading.alg}")
    try:
        if isinstance(key, Ed25519PublicKey):
            key.verify(reading.signature, message)
        else:
            r = int.from_bytes(reading.signature[:32], "big")
            s = int.from_bytes(reading.signature[32:], "big")
            key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise ReadingSignatureError("signature does not verify under the meter key") from exc
