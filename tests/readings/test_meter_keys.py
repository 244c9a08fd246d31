"""meter_signing.keys: meter key files are 0600 PKCS#8 PEM, round-trip, and are never
overwritten; the exported public key is the SPKI the registry verifies with."""

from __future__ import annotations

import base64
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ledger.keyfiles import KeyFileError
from ledger.meters.readings import Algorithm, key_id, load_meter_public_key, verify_signed_reading
from meter_signing.keys import (
    create_meter_key_file,
    generate_meter_key,
    load_meter_key_file,
    meter_key_from_private,
)
from meter_signing.signing import sign_reading

ALGS: list[Algorithm] = ["Ed25519", "ES256"]


@pytest.mark.parametrize("alg", ALGS)
def test_key_file_is_private_pkcs8_pem(tmp_path: Path, alg: Algorithm) -> None:
    path = tmp_path / "keys" / "meter.pem"
    create_meter_key_file(path, alg)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    pem = path.read_bytes()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")  # PKCS#8, unencrypted


def test_key_file_mode_ignores_a_permissive_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        create_meter_key_file(tmp_path / "meter.pem")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "meter.pem").stat().st_mode) == 0o600


@pytest.mark.parametrize("alg", ALGS)
def test_key_round_trips_and_signs_verifiably(tmp_path: Path, alg: Algorithm) -> None:
    path = tmp_path / "meter.pem"
    created = create_meter_key_file(path, alg)
    loaded = load_meter_key_file(path)
    assert loaded.alg == alg
    assert loaded.public_spki == created.public_spki
    assert loaded.key_id == created.key_id == key_id(created.public_spki)
    assert base64.b64decode(loaded.public_spki_b64) == loaded.public_spki
    assert load_meter_public_key(loaded.public_spki)[0] == alg
    reading = sign_reading(
        loaded,
        "meter-1",
        seq=1,
        time=datetime(2026, 1, 1, 0, 15, tzinfo=UTC),
        import_wh=10,
        export_wh=0,
    )
    verify_signed_reading(reading, created.public_spki)


@pytest.mark.parametrize("alg", ALGS)
def test_refuses_to_overwrite_an_existing_key(tmp_path: Path, alg: Algorithm) -> None:
    path = tmp_path / "meter.pem"
    first = create_meter_key_file(path, alg)
    before = path.read_bytes()
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        create_meter_key_file(path, alg)
    assert path.read_bytes() == before
    assert load_meter_key_file(path).public_spki == first.public_spki


def test_refuses_a_key_file_readable_by_others(tmp_path: Path) -> None:
    path = tmp_path / "meter.pem"
    create_meter_key_file(path)
    path.chmod(0o640)
    with pytest.raises(KeyFileError, match="readable by others"):
        load_meter_key_file(path)


def test_missing_key_file_is_a_key_file_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError):
        load_meter_key_file(tmp_path / "absent.pem")


def _write_0600(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def test_refuses_keys_that_are_not_meter_keys(tmp_path: Path) -> None:
    # A P-384 key is a valid private key but no envelope algorithm uses it.
    p384 = ec.generate_private_key(ec.SECP384R1())
    path = tmp_path / "p384.pem"
    _write_0600(
        path,
        p384.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    with pytest.raises(KeyFileError, match="Ed25519 or ECDSA P-256"):
        load_meter_key_file(path)
    with pytest.raises(KeyFileError):
        meter_key_from_private(p384)


def test_refuses_encrypted_and_garbage_key_files(tmp_path: Path) -> None:
    encrypted = tmp_path / "encrypted.pem"
    _write_0600(
        encrypted,
        generate_meter_key("ES256").private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        ),
    )
    garbage = tmp_path / "garbage.pem"
    _write_0600(garbage, b"not a key")
    for path in (encrypted, garbage):
        with pytest.raises(KeyFileError, match="not an unencrypted PKCS#8"):
            load_meter_key_file(path)


def test_unknown_algorithm_is_refused() -> None:
    with pytest.raises(ValueError, match="alg must be one of"):
        generate_meter_key("RS256")  # type: ignore[arg-type]


def test_each_generated_key_is_distinct() -> None:
    ids = {generate_meter_key(alg).key_id for alg in ALGS for _ in range(3)}
    assert len(ids) == 6
