"""Smoke test of `scripts/bench/serve.py`: a tiny run end to end, every request answered 200."""

from __future__ import annotations

import json

import pytest
from bench_smoke_support import BENCH_DIR, run_bench

pytestmark = pytest.mark.slow


def test_serve_benchmark_runs_and_reports_ratios() -> None:
    result = run_bench(
        BENCH_DIR / "serve.py",
        "--workers",
        "2",
        "--clients",
        "4",
        "--seconds",
        "0.5",
        "--entries",
        "1000",
        timeout=400,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    for phase in ("healthz", "proof", "ingest"):
        assert document[phase]["requests"] > 0 and document[phase]["errors"] == 0, document
    assert document["proof_to_healthz"] > 0 and document["ingest_to_healthz"] > 0
    assert len(document["load_average"]) == 3
