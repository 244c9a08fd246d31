"""Private key files: PKCS#8 PEM, created with mode 0600 and never readable by others."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


class KeyFileError(RuntimeError):
    """A key file is missing, unreadable, of the wrong type or too widely readable."""


def write_private_key_file(path: Path, pem: bytes) -> None:
    """Write `pem` to a new file with mode 0600; refuse to overwrite an existing key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise KeyFileError(f"{path} exists already; refusing to overwrite a key") from exc
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())


def read_private_key_pem(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise KeyFileError(f"{path} does not exist; run `carbonledger init` first") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"{path} is readable by others; run `chmod 600 {path}`")
    return path.read_bytes()


def create_ed25519_key_file(path: Path) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_private_key_file(path, pem)
    return key


def load_ed25519_key_file(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(read_private_key_pem(path), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} does not hold an Ed25519 private key")
    return key
