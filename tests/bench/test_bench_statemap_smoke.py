"""Smoke test of `scripts/bench/statemap.py`: it runs end to end and reports sane figures.

Performance is measured by the benchmark, never asserted here: these tests check the
document's structure, that every figure is plausible (counts match, latencies ordered, every
proof verified), that each ratio is computed from figures of the same run, and that the bulk
load gave the same map as batches. PostgreSQL is measured when reachable; under CI=true it
must be.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from bench_smoke_support import BENCH_DIR, quick_run_with_postgres, run_bench
from testdata_support import running_in_ci

SCRIPT = BENCH_DIR / "statemap.py"
RUN_TIMEOUT_SECONDS = 240

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench-statemap")


@pytest.fixture(scope="module")
def result(workdir: Path) -> dict[str, Any]:
    return quick_run_with_postgres(SCRIPT, workdir, timeout=RUN_TIMEOUT_SECONDS)


def assert_latencies(summary: dict[str, Any], count: int) -> None:
    assert summary["count"] == count
    assert 0 < summary["min_ms"] <= summary["median_ms"] <= summary["p90_ms"]
    assert summary["p90_ms"] <= summary["p99_ms"] <= summary["max_ms"]


def test_machine_and_backends(result: dict[str, Any]) -> None:
    machine = result["machine"]
    for key in ("cpu_model", "python_version", "sqlite_version", "date_utc"):
        assert isinstance(machine[key], str) and machine[key]
    backends = {run["backend"] for run in result["runs"]}
    assert "sqlite" in backends
    if running_in_ci():
        assert "postgresql" in backends, "CI=true: the benchmark must measure PostgreSQL"
    elif "postgresql" not in backends:
        assert result["config"]["postgresql"]["skipped"]
    assert result["config"]["quick"] is True


def test_bulk_load_gives_the_map_of_batches(result: dict[str, Any]) -> None:
    backends = {run["backend"] for run in result["runs"]}
    checks = result["bulk_load_checks"]
    assert {check["backend_of_bulk_load"] for check in checks} == backends
    for check in checks:
        assert check["keys"] == result["config"]["sample_keys"]
        assert check["current_rows"] >= check["keys"]
        assert check["roots_equal"] is True
        assert check["current_rows_equal"] is True
        assert check["bulk_matches_batches"] is True


def test_every_run_reports_sane_figures(result: dict[str, Any]) -> None:
    queries = result["config"]["queries_per_kind"]
    rounds = result["config"]["update_rounds_by_batch"]
    assert set(rounds) == {"1", "100", "10000"}
    for run in result["runs"]:
        size = run["size_keys"]
        assert len(bytes.fromhex(run["root"])) == 32
        assert run["build"]["keys"] == size
        assert run["build"]["bulk_load_rate_keys_per_s"] > 0

        proofs = run["proofs"]
        for kind in ("members", "non_members"):
            figures = proofs[kind]
            assert figures["queries"] == figures["verified"] == queries
            for phase in ("serve", "verify", "serve_and_verify"):
                assert_latencies(figures[phase], queries)
        assert_latencies(proofs["point_read"], queries)
        # The ratio is this run's own medians divided, not a figure from elsewhere.
        assert proofs["member_proof_over_point_read_median"] == pytest.approx(
            proofs["members"]["serve"]["median_ms"] / proofs["point_read"]["median_ms"], abs=0.01
        )
        assert 1 <= proofs["proof_siblings"]["median"] <= proofs["proof_siblings"]["max"] <= 256

        assert [item["batch_keys"] for item in run["updates"]] == [1, 100, 10_000]
        for item in run["updates"]:
            assert item["transactions"] == rounds[str(item["batch_keys"])]
            assert item["keys_updated"] == item["batch_keys"] * item["transactions"]
            assert item["rate_keys_per_s"] > 0
            assert_latencies(item["transaction"], item["transactions"])
            assert_latencies(item["log_only_transaction"], item["transactions"])
            assert item["transaction_over_log_only_median"] == pytest.approx(
                item["transaction"]["median_ms"] / item["log_only_transaction"]["median_ms"],
                abs=0.01,
            )

        old = run["old_version_proofs"]
        assert old["version"] == 1 and old["verified"] == old["queries"] >= 1

        disk = run["disk"]
        assert disk["database_bytes_after_build"] > 0
        assert disk["bytes_per_key_after_build"] > 0
        # Every version is kept: updates only ever add bytes.
        assert disk["database_bytes_after_updates"] >= disk["database_bytes_after_build"]
        assert run["memory"]["peak_rss_bytes"] > 0


def test_summary_and_target_cover_every_run(result: dict[str, Any]) -> None:
    assert len(result["summary"]) == len(result["runs"])
    for row in result["summary"]:
        assert row["member_proof_median_ms"] > 0
        assert set(row["update_rate_keys_per_s_by_batch"]) == {"1", "100", "10000"}
    target = result["targets"]["proof_read_at_10e7"]
    assert target["met"] is None  # the quick run has no 10^7-key map, and says so


def test_temporary_files_are_removed(result: dict[str, Any], workdir: Path) -> None:
    assert result["runs"]
    assert list(workdir.iterdir()) == []


@pytest.mark.parametrize("flag", ["--sqlite-sizes", "--pg-sizes"])
def test_absurd_sizes_are_refused(flag: str) -> None:
    completed = run_bench(SCRIPT, flag, "1e9", timeout=RUN_TIMEOUT_SECONDS)
    assert completed.returncode == 2
    assert "5*10^7" in completed.stderr
    assert completed.stdout == ""
