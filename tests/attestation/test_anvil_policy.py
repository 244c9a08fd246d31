"""The anvil tests' contract with CI: a missing anvil binary fails them under CI=true and
skips them, with the reason, elsewhere (as the PostgreSQL tests do)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from anchor_support import REPO

ONE_ANVIL_TEST = "tests/attestation/test_anvil_anchoring.py::test_chain_id_is_checked"


def _run_without_anvil(ci: str | None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CARBONLEDGER_TEST_ANVIL": str(REPO / "no-such-dir" / "anvil")}
    env.pop("CI", None)
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", ONE_ANVIL_TEST],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_missing_anvil_fails_under_ci() -> None:
    result = _run_without_anvil("true")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "anvil not found" in result.stdout and "CI=true" in result.stdout


@pytest.mark.slow
def test_missing_anvil_skips_with_reason_outside_ci() -> None:
    result = _run_without_anvil(None)
    assert result.returncode == 0, result.stdout + result.stderr
    last_line = result.stdout.splitlines()[-1]
    assert "1 skipped" in last_line and "passed" not in last_line
    assert "anvil not found at" in result.stdout
