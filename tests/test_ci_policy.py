"""The suite's contract with CI: PostgreSQL tests fail under CI=true when the server is
unreachable, and skip with the reason elsewhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Port 1 on loopback: nothing listens there, so the connection is refused at once.
UNREACHABLE = "postgresql://postgres@127.0.0.1:1/test"
ONE_POSTGRES_TEST = (
    "tests/ledger/test_log.py::test_appends_in_one_transaction_get_consecutive_indices"
)


def _run_postgres_test(ci: str | None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CARBONLEDGER_TEST_PG_URL": UNREACHABLE}
    env.pop("CI", None)
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            f"{ONE_POSTGRES_TEST}[postgresql]",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_postgres_tests_fail_under_ci_when_unreachable() -> None:
    result = _run_postgres_test("true")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "PostgreSQL unreachable" in result.stdout
    assert "CI=true" in result.stdout
    assert " skipped" not in result.stdout.splitlines()[-1]


@pytest.mark.slow
def test_postgres_tests_skip_with_reason_outside_ci() -> None:
    result = _run_postgres_test(None)
    assert result.returncode == 0, result.stdout + result.stderr
    last_line = result.stdout.splitlines()[-1]
    assert "1 skipped" in last_line and "passed" not in last_line
    assert "PostgreSQL unreachable at postgresql://postgres@127.0.0.1:1/test" in result.stdout
