"""Checkpoints in the C2SP tlog-checkpoint signed-note format (DESIGN §4.4).

    <origin>\n<tree size>\n<base64 root hash>\n[extension lines]\n
    \n
    — <key name> <base64(key ID || Ed25519 signature)>\n

Key ID = SHA-256(key name || 0x0A || 0x01 || public key)[:4] (c2sp.org/signed-note).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ledger.log.merkle import HASH_SIZE, MAX_TREE_SIZE

ED25519_SIGNATURE_TYPE = b"\x01"
SIGNATURE_LINE_PREFIX = "\u2014 "  # em dash, space
MAX_NOTE_BYTES = 1 << 20
MAX_SIGNATURES = 16


class CheckpointError(ValueError):
    """A checkpoint or signed note is malformed or its signature does not verify."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.origin or any(c.isspace() and c != " " for c in self.origin):
            raise CheckpointError("origin must be a non-empty single line")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise CheckpointError(f"tree size {self.size} out of range")
        if len(self.root_hash) != HASH_SIZE:
            raise CheckpointError(f"root hash is {len(self.root_hash)} bytes, expected 32")

    def body(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode()]
        return "\n".join([*lines, *self.extensions]) + "\n"

    @classmethod
    def parse_body(cls, text: str) -> Checkpoint:
        if not text.endswith("\n"):
            raise CheckpointError("checkpoint body must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError("checkpoint body needs origin, size and root hash lines")
        origin, size_text, root_text, *extensions = lines
        if not (size_text.isascii() and size_text.isdigit()) or (
            size_text != "0" and size_text.startswith("0")
        ):
            raise CheckpointError(f"tree size line {size_text!r} is not a decimal number")
        try:
            root = base64.b64decode(root_text, validate=True)
        except binascii.Error as exc:
            raise CheckpointError("root hash line is not valid base64") from exc
        if any(not line for line in extensions):
            raise CheckpointError("checkpoint extension lines must not be empty")
        return cls(origin, int(size_text), root, tuple(extensions))


def _key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ED25519_SIGNATURE_TYPE + public_key).digest()[:4]


def _check_key_name(name: str) -> None:
    if not name or "+" in name or any(c.isspace() for c in name):
        raise CheckpointError(f"key name {name!r} must be non-empty without '+' or spaces")


def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class NoteVerifier:
    """A trusted Ed25519 note key, usually parsed from its `name+keyid+base64` string."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        _check_key_name(self.name)
        if len(self.public_key) != 32:
            raise CheckpointError("an Ed25519 public key is 32 bytes")

    @property
    def key_id(self) -> bytes:
        return _key_id(self.name, self.public_key)

    def encode(self) -> str:
        encoded = base64.b64encode(ED25519_SIGNATURE_TYPE + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    @classmethod
    def parse(cls, text: str) -> NoteVerifier:
        parts = text.strip().split("+", 2)  # the base64 key may itself contain "+"
        if len(parts) != 3:
            raise CheckpointError("verifier key must look like <name>+<hex key id>+<base64 key>")
        name, key_id_hex, key_b64 = parts
        try:
            raw = base64.b64decode(key_b64, validate=True)
            key_id = bytes.fromhex(key_id_hex)
        except (binascii.Error, ValueError) as exc:
            raise CheckpointError("verifier key has a malformed key id or key") from exc
        if raw[:1] != ED25519_SIGNATURE_TYPE:
            raise CheckpointError("verifier key is not an Ed25519 (type 0x01) key")
        verifier = cls(name, raw[1:])
        if verifier.key_id != key_id:
            raise CheckpointError("verifier key id does not match its name and public key")
        return verifier

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


class NoteSigner:
    """Signs notes with the log's Ed25519 key under a key name (the log origin)."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        _check_key_name(name)
        self.name = name
        self._private_key = private_key
        self.verifier = NoteVerifier(name, _raw_public(private_key.public_key()))

    def sign(self, text: str) -> str:
        _check_note_text(text)
        signature = self._private_key.sign(text.encode())
        blob = base64.b64encode(self.verifier.key_id + signature).decode()
        return f"{text}\n{SIGNATURE_LINE_PREFIX}{self.name} {blob}\n"


def _check_note_text(text: str) -> None:
    if not text.endswith("\n"):
        raise CheckpointError("note text must end with a newline")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise CheckpointError("note text must not contain control characters")


def sign_checkpoint(checkpoint: Checkpoint, signer: NoteSigner) -> str:
    return signer.sign(checkpoint.body())


def open_checkpoint(note: str, verifier: NoteVerifier) -> Checkpoint:
    """Verify a signed checkpoint note against a trusted key and parse its body.

    Signatures by unknown keys are ignored; a signature by the trusted key that fails
    rejects the note; at least one must verify.
    """
    try:
        encoded = note.encode()
    except UnicodeEncodeError as exc:  # e.g. a lone surrogate from JSON "\ud800"
        raise CheckpointError("signed note is not valid UTF-8") from exc
    if len(encoded) > MAX_NOTE_BYTES:
        raise CheckpointError("signed note is too large")
    separator = note.rfind("\n\n")
    if separator < 0:
        raise CheckpointError("signed note has no blank line before its signatures")
    text, signature_block = note[: separator + 1], note[separator + 2 :]
    _check_note_text(note)  # signed-note: no control characters but newline, anywhere
    if not signature_block.endswith("\n"):
        raise CheckpointError("signature block must end with a newline")
    lines = signature_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointError(f"more than {MAX_SIGNATURES} signatures")
    verified = False
    for line in lines:
        if not line.startswith(SIGNATURE_LINE_PREFIX):
            raise CheckpointError(f"malformed signature line {line!r}")
        name, _, blob_text = line[len(SIGNATURE_LINE_PREFIX) :].partition(" ")
        try:
            blob = base64.b64decode(blob_text, validate=True)
        except binascii.Error as exc:
            raise CheckpointError(f"signature of {name!r} is not valid base64") from exc
        if len(blob) < 5:
            raise CheckpointError(f"signature of {name!r} is too short")
        if name != verifier.name or blob[:4] != verifier.key_id:
            continue
        if not verifier.verify(text.encode(), blob[4:]):
            raise CheckpointError(f"signature by {name} does not verify")
        verified = True
    if not verified:
        raise CheckpointError(f"no signature by the trusted key {verifier.name}")
    return Checkpoint.parse_body(text)
