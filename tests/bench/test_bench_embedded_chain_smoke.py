"""Smoke test of `scripts/bench/embedded_chain.py`: a few anchors, one timed run of each."""

from __future__ import annotations

import json
from typing import Any

import pytest
from bench_smoke_support import BENCH_DIR, run_bench

SCRIPT = BENCH_DIR / "embedded_chain.py"
RUN_TIMEOUT_SECONDS = 600

pytestmark = pytest.mark.slow


def test_quick_run_reports_the_status_time_against_the_target() -> None:
    completed = run_bench(
        SCRIPT, "--quick", "--anchors", "3", "--runs", "1", timeout=RUN_TIMEOUT_SECONDS
    )
    assert completed.returncode == 0, completed.stderr
    result: dict[str, Any] = json.loads(completed.stdout)
    assert result["anchors"] == 3 and result["runs"] == 1
    assert result["anchor_status_wall_ms"]["median"] > result["open_and_latest_ms"]["median"] > 0
    assert result["state_keys_read_by_open_and_latest"] > 0
    assert result["target"]["anchor_status_wall_ms"] == 1_000
    assert isinstance(result["target"]["met"], bool)  # reported, never enforced


def test_absurd_anchor_counts_are_refused() -> None:
    completed = run_bench(SCRIPT, "--anchors", "-1", timeout=RUN_TIMEOUT_SECONDS)
    assert completed.returncode == 2 and "--anchors" in completed.stderr
