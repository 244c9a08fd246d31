"""Signing meter readings exactly as DESIGN §4.3.

The signed message is `JCS(payload)` (ledger.meters.readings.ReadingPayload.canonical_bytes),
the same
function the registry uses to verify, so device and registry cannot disagree about the bytes.
ES256 signatures leave as the raw 64-byte r‖s (JWS style), not the DER that OpenSSL produces.

`MeterSigner` is the device-side guard: a meter that signs two readings with one `seq`, or
time going backwards, produces evidence of equivocation that the registry will hold against
it, so the signer refuses to create such a pair in the first place.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from ledger.meters.readings import (
    MAX_REGISTER_WH,
    ReadingPayload,
    SignedReading,
    format_time,
    parse_envelope,
    parse_payload,
    verify_signed_reading,
)
from meter_signing.keys import MeterKey

P256_COORDINATE_BYTES = 32


class SequenceError(ValueError):
    """The signer was asked to sign a reading whose seq or time does not strictly increase."""


def signature_bytes(key: MeterKey, message: bytes) -> bytes:
    """Sign `message`; ES256 yields raw r‖s (two 32-byte big-endian ints); Ed25519 64 bytes."""
    private_key = key.private_key
    if isinstance(private_key, Ed25519PrivateKey):
        return private_key.sign(message)
    der = private_key.sign(message, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return r.to_bytes(P256_COORDINATE_BYTES, "big") + s.to_bytes(P256_COORDINATE_BYTES, "big")


def build_payload(
    meter: str, seq: int, time: datetime, import_wh: int, export_wh: int
) -> ReadingPayload:
    """Validate the fields with the registry's own parser, so an unacceptable reading is
    refused on the device (naming the field) rather than signed and rejected later."""
    draft = {
        "meter": meter,
        "seq": seq,
        "time": format_time(time),
        "importWh": import_wh,
        "exportWh": export_wh,
    }
    return parse_payload(draft)


def sign_payload(payload: ReadingPayload, key: MeterKey) -> SignedReading:
    return SignedReading(payload, key.alg, signature_bytes(key, payload.canonical_bytes()))


def sign_reading(
    key: MeterKey, meter: str, *, seq: int, time: datetime, import_wh: int, export_wh: int
) -> SignedReading:
    """Build and sign one reading without any sequencing state (tests, imports)."""
    return sign_payload(build_payload(meter, seq, time, import_wh, export_wh), key)


def verify_envelope(envelope: Any, public_spki: bytes) -> SignedReading:
    """Parse a wire envelope and check it against a meter key (SPKI DER).

    A thin wrapper: parsing and verification are the registry's own (`ledger.meters.readings`), so
    a device or CLI check can never pass what ingestion would reject. Raises
    ReadingFormatError or ReadingSignatureError.
    """
    reading = parse_envelope(envelope)
    verify_signed_reading(reading, public_spki)
    return reading


class MeterSigner:
    """Signs readings for one meter with one key; seq and time strictly increase.

    `last_seq` / `last_time` resume the state after a restart (the gateway persists them), so
    the guarantee holds across processes, not just within one object. Thread-safe: the check
    and the update of the high-water marks happen under one lock.
    """

    def __init__(
        self,
        meter: str,
        key: MeterKey,
        *,
        last_seq: int | None = None,
        last_time: datetime | None = None,
    ) -> None:
        # Validate the meter id up front; seq, time and registers here are placeholders.
        build_payload(meter, 0, datetime(2000, 1, 1, tzinfo=UTC), 0, 0)
        if last_time is not None:
            format_time(last_time)  # a naive or non-UTC mark could not be compared safely
        self.meter = meter
        self.key = key
        self._last_seq = last_seq
        self._last_time = last_time
        # Re-entrant: sign_next holds it across choosing the seq and signing.
        self._lock = threading.RLock()

    @property
    def last_seq(self) -> int | None:
        return self._last_seq

    @property
    def last_time(self) -> datetime | None:
        return self._last_time

    def sign(self, seq: int, time: datetime, import_wh: int, export_wh: int) -> SignedReading:
        payload = build_payload(self.meter, seq, time, import_wh, export_wh)
        with self._lock:
            if self._last_seq is not None and payload.seq <= self._last_seq:
                raise SequenceError(
                    f"seq {payload.seq} is not above the last signed seq {self._last_seq}"
                )
            if self._last_time is not None and payload.time <= self._last_time:
                raise SequenceError(
                    f"time {format_time(payload.time)} is not after the last signed time "
                    f"{format_time(self._last_time)}"
                )
            signed = sign_payload(payload, self.key)
            self._last_seq, self._last_time = payload.seq, payload.time
        return signed

    def sign_next(self, time: datetime, import_wh: int, export_wh: int) -> SignedReading:
        """Sign with seq = last seq + 1 (1 for a meter that has never signed)."""
        with self._lock:
            seq = 1 if self._last_seq is None else self._last_seq + 1
            if seq > MAX_REGISTER_WH:
                raise SequenceError("seq space exhausted")
            return self.sign(seq, time, import_wh, export_wh)

    def sign_json(self, seq: int, time: datetime, import_wh: int, export_wh: int) -> dict[str, Any]:
        """The envelope as the JSON object that `POST /v1/readings` takes."""
        return self.sign(seq, time, import_wh, export_wh).to_json()
