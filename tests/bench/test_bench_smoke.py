"""Smoke test of `scripts/bench/log.py`: it runs end to end and reports sane figures.

Performance is measured by the benchmark, never asserted here: these tests check the
document's structure and that every figure is plausible (positive, ordered, verified),
on tiny sizes (`--quick`). PostgreSQL is measured when reachable; under CI=true it must be.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from bench_smoke_support import BENCH_DIR, quick_run_with_postgres, run_bench
from testdata_support import running_in_ci

SCRIPT = BENCH_DIR / "log.py"
RUN_TIMEOUT_SECONDS = 240

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench")


@pytest.fixture(scope="module")
def result(workdir: Path) -> dict[str, Any]:
    return quick_run_with_postgres(SCRIPT, workdir, timeout=RUN_TIMEOUT_SECONDS)


def assert_latencies(summary: dict[str, Any], queries: int) -> None:
    assert summary["count"] == queries
    assert 0 < summary["min_ms"] <= summary["median_ms"] <= summary["p90_ms"]
    assert summary["p90_ms"] <= summary["p99_ms"] <= summary["max_ms"]


def assert_proof_figures(proofs: dict[str, Any], queries: int) -> None:
    for kind in ("inclusion", "consistency"):
        figures = proofs[kind]
        # Every proof served was also checked by the pure verifiers.
        assert figures["queries"] == figures["verified"] == queries
        for phase in ("serve", "verify", "serve_and_verify"):
            assert_latencies(figures[phase], queries)
        assert figures["serve_and_verify"]["median_ms"] >= figures["serve"]["min_ms"]


def test_machine_is_described(result: dict[str, Any]) -> None:
    machine = result["machine"]
    for key in ("cpu_model", "python_version", "sqlite_version", "date_utc"):
        assert isinstance(machine[key], str) and machine[key]
    assert machine["logical_cores"] >= 1
    assert machine["ram_total_bytes"] > 0
    if any(run["backend"] == "postgresql" for run in result["runs"]):
        assert machine["postgresql_version"]
    assert result["total_wall_time_s"] > 0


def test_postgresql_measured_when_required(result: dict[str, Any]) -> None:
    backends = {run["backend"] for run in result["runs"]}
    assert "sqlite" in backends
    if running_in_ci():
        assert "postgresql" in backends, "CI=true: the benchmark must measure PostgreSQL"
    elif "postgresql" not in backends:
        assert result["config"]["postgresql"]["skipped"]


def test_every_run_reports_sane_figures(result: dict[str, Any]) -> None:
    queries = result["config"]["queries_per_proof_kind"]
    for run in result["runs"]:
        size = run["size_leaves"]
        append = run["append"]
        assert append["leaves"] == size
        assert append["append_rate_leaves_per_s"] > 0
        assert append["median_batch_rate_leaves_per_s"] > 0
        assert append["timed_append_s"] > 0

        floor = run["hash_floor"]
        assert floor["leaf_hash_rate_leaves_per_s"] > 0
        assert floor["append_rate_over_leaf_hash_rate"] > 0

        # Proofs at an intermediate size and at the final size, in growing order.
        sizes = [checkpoint["tree_size"] for checkpoint in run["proofs"]]
        assert sizes == sorted(sizes) and len(sizes) >= 2 and sizes[-1] == size
        for checkpoint in run["proofs"]:
            assert len(bytes.fromhex(checkpoint["root"])) == 32
            assert checkpoint["cumulative_append_rate_leaves_per_s"] > 0
            assert_proof_figures(checkpoint, queries)

        memory = run["memory"]
        sampled = {sample["progress_pct"] for sample in memory["rss_samples"]}
        assert {10, 50, 100} <= sampled
        assert all(sample["rss_bytes"] > 0 for sample in memory["rss_samples"])
        assert memory["peak_rss_bytes"] >= max(s["rss_bytes"] for s in memory["rss_samples"])

        assert run["disk"]["database_bytes"] > 0
        assert run["disk"]["bytes_per_leaf"] > 0


def test_summary_and_targets_cover_every_run(result: dict[str, Any]) -> None:
    assert len(result["summary"]) == len(result["runs"])
    for row in result["summary"]:
        assert row["append_rate_leaves_per_s"] > 0
        assert row["inclusion_median_ms"] > 0
        assert row["consistency_median_ms"] > 0
    assert set(result["targets"]) == {
        "sqlite_batched_append",
        "proof_latency_at_10e7",
        "memory_flat_in_log_size",
    }


def test_references_measured_in_the_same_run(result: dict[str, Any]) -> None:
    queries = result["config"]["queries_per_proof_kind"]
    floor = result["reference"]["hashing_floor"]
    assert floor["leaf_hash_rate_leaves_per_s"] > 0
    assert floor["in_memory_tree_rate_leaves_per_s"] > 0

    pymerkle = result["reference"]["pymerkle"]
    assert pymerkle["version"] == "7.0.0"
    assert pymerkle["size_leaves"] > 0
    for tree in ("inmemory_tree", "sqlite_tree"):
        assert pymerkle[tree]["append_rate_leaves_per_s"] > 0
        assert_proof_figures(pymerkle[tree]["proofs"], queries)

    comparisons = result["comparisons"]
    # The same leaves give the same RFC 9162 roots in the log, the floor and pymerkle.
    assert comparisons["floor_root_matches_log"] is True
    pymerkle_comparisons = [value for key, value in comparisons.items() if "_vs_pymerkle_" in key]
    assert pymerkle_comparisons
    for comparison in pymerkle_comparisons:
        assert comparison["roots_equal"] is True
        assert comparison["append_rate_carbonledger_over_pymerkle"] > 0


def test_temporary_files_are_removed(result: dict[str, Any], workdir: Path) -> None:
    assert result["runs"]
    assert list(workdir.iterdir()) == []


@pytest.mark.parametrize("flag", ["--sqlite-sizes", "--pg-sizes"])
def test_absurd_sizes_are_refused(flag: str) -> None:
    completed = run_bench(SCRIPT, flag, "1e9", timeout=RUN_TIMEOUT_SECONDS)
    assert completed.returncode == 2
    assert "10^8" in completed.stderr
    assert completed.stdout == ""
