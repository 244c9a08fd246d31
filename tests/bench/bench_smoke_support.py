"""Running a benchmark script as a subprocess, for the smoke tests in this folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from pg_support import PG_ADMIN_URL
from testdata_support import running_in_ci

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO_ROOT / "scripts" / "bench"


def run_bench(script: Path, *arguments: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
        check=False,
    )


def quick_run_with_postgres(script: Path, workdir: Path, *, timeout: float) -> dict[str, Any]:
    """The script's `--quick` JSON; PostgreSQL is optional except under CI=true."""
    arguments = ["--quick", "--pg-url", PG_ADMIN_URL, "--workdir", str(workdir)]
    if not running_in_ci():
        arguments.append("--pg-optional")
    completed = run_bench(script, *arguments, timeout=timeout)
    assert completed.returncode == 0, completed.stderr
    document: dict[str, Any] = json.loads(completed.stdout)
    return document
