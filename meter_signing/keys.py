"""Meter signing keys: generate, store (PKCS#8 PEM, mode 0600), load, export the public half.

A meter key is Ed25519 or ES256 (ECDSA P-256), the two envelope algorithms of DESIGN §4.3.
The public key leaves the device as SPKI DER (base64 on the wire): SPKI names the algorithm
and curve itself, so the registry never has to trust a separate "alg" claim for a key, and
`ledger.meters.readings.key_id` over those bytes is the id used in `meter.key/1` leaves.

File handling reuses `ledger.keyfiles`: O_EXCL creation with mode 0600 (a key is never
overwritten, and there is no window in which it is readable by others) and a refusal to
read a key file that group or others can read.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.keyfiles import KeyFileError, read_private_key_pem, write_private_key_file
from ledger.meters.readings import ALGORITHMS, Algorithm, key_id, public_key_spki

MeterPrivateKey = Ed25519PrivateKey | ec.EllipticCurvePrivateKey

__all__ = [
    "KeyFileError",
    "MeterKey",
    "MeterPrivateKey",
    "create_meter_key_file",
    "generate_meter_key",
    "load_meter_key_file",
    "meter_key_from_private",
]


@dataclass(frozen=True, slots=True)
class MeterKey:
    """A meter's private key with its envelope algorithm; `private_key` never leaves the device."""

    alg: Algorithm
    private_key: MeterPrivateKey

    @property
    def public_spki(self) -> bytes:
        """SubjectPublicKeyInfo DER of the public key (what `meter.key/1` registers)."""
        return public_key_spki(self.private_key.public_key())

    @property
    def public_spki_b64(self) -> str:
        # Standard base64 with padding, as DESIGN §4.5 "publicKey" and the key API carry it.
        return base64.b64encode(self.public_spki).decode()

    @property
    def key_id(self) -> str:
        return key_id(self.public_spki)

    def private_pem(self) -> bytes:
        """Unencrypted PKCS#8 PEM; protection is the file mode, as for the registry's own keys."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def meter_key_from_private(private_key: object) -> MeterKey:
    """Wrap a loaded private key, refusing any type that is not a valid meter key."""
    if isinstance(private_key, Ed25519PrivateKey):
        return MeterKey("Ed25519", private_key)
    if isinstance(private_key, ec.EllipticCurvePrivateKey) and isinstance(
        private_key.curve, ec.SECP256R1
    ):
        return MeterKey("ES256", private_key)
    raise KeyFileError("meter keys are Ed25519 or ECDSA P-256 (ES256)")


def generate_meter_key(alg: Algorithm = "Ed25519") -> MeterKey:
    if alg not in ALGORITHMS:
        raise ValueError(f"alg must be one of {sorted(ALGORITHMS)}, not {alg!r}")
    if alg == "Ed25519":
        return MeterKey("Ed25519", Ed25519PrivateKey.generate())
    return MeterKey("ES256", ec.generate_private_key(ec.SECP256R1()))


def create_meter_key_file(path: Path, alg: Algorithm = "Ed25519") -> MeterKey:
    """Generate a key and write it to a new file with mode 0600.

    Raises KeyFileError if `path` exists: overwriting would orphan the registered key and
    make every later reading unverifiable, so the caller must delete a key on purpose.
    """
    key = generate_meter_key(alg)
    write_private_key_file(path, key.private_pem())
    return key


def load_meter_key_file(path: Path) -> MeterKey:
    """Load a key written by `create_meter_key_file` (refuses files readable by others)."""
    pem = read_private_key_pem(path)
    try:
        private_key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        # TypeError: the PEM is encrypted; ValueError: it is not a private key at all.
        raise KeyFileError(f"{path} is not an unencrypted PKCS#8 PEM private key") from exc
    return meter_key_from_private(private_key)
