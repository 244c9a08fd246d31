"""`carbonledger meter keygen`: a device key the registry can verify readings with."""

from __future__ import annotations

import base64
import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, isolated_env, run

from ledger.meters.readings import (
    key_id,
    load_meter_public_key,
    parse_envelope,
    verify_signed_reading,
)
from meter_signing.keys import load_meter_key_file
from meter_signing.signing import sign_reading


@pytest.mark.parametrize("alg", ["Ed25519", "ES256"])
def test_keygen_writes_a_private_key_whose_public_half_verifies_readings(
    tmp_path: Path, alg: str
) -> None:
    out = tmp_path / "meter.pem"
    result = run(["meter", "keygen", "--out", str(out), "--alg", alg, "--json"], isolated_env())
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600

    spki = base64.b64decode(printed["publicKey"])
    assert load_meter_public_key(spki)[0] == alg == printed["alg"]
    assert printed["keyId"] == key_id(spki)

    key = load_meter_key_file(out)
    signed = sign_reading(
        key, "meter-1", seq=1, time=datetime(2026, 3, 1, 12, tzinfo=UTC), import_wh=5, export_wh=0
    )
    verify_signed_reading(parse_envelope(signed.to_json()), spki)


def test_keygen_never_overwrites_a_key(tmp_path: Path) -> None:
    out = tmp_path / "meter.pem"
    assert run(["meter", "keygen", "--out", str(out)], isolated_env()).exit_code == 0
    before = out.read_bytes()
    result = run(["meter", "keygen", "--out", str(out)], isolated_env())
    assert_one_line_error(result, 2, str(out))
    assert out.read_bytes() == before


def test_keygen_rejects_an_unknown_algorithm(tmp_path: Path) -> None:
    out = tmp_path / "meter.pem"
    result = run(["meter", "keygen", "--out", str(out), "--alg", "RS256"], isolated_env())
    assert_one_line_error(result, 2, "RS256")
    assert not out.exists()
