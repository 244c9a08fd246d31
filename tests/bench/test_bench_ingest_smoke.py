"""Smoke test of `scripts/bench/ingest.py`: it runs end to end and reports sane figures.

Performance is measured by the benchmark, never asserted here: these tests check the
document's structure and that every figure is plausible (positive, every timed reading
accepted, ratios consistent with the rates they divide), on a tiny run (`--quick`).
PostgreSQL is measured when reachable; under CI=true it must be.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from bench_smoke_support import BENCH_DIR, quick_run_with_postgres, run_bench
from testdata_support import running_in_ci

SCRIPT = BENCH_DIR / "ingest.py"
RUN_TIMEOUT_SECONDS = 800

pytestmark = [pytest.mark.slow, pytest.mark.timeout(RUN_TIMEOUT_SECONDS + 60)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench-ingest")


@pytest.fixture(scope="module")
def result(workdir: Path) -> dict[str, Any]:
    return quick_run_with_postgres(SCRIPT, workdir, timeout=RUN_TIMEOUT_SECONDS)


def test_machine_and_backends(result: dict[str, Any]) -> None:
    machine = result["machine"]
    assert isinstance(machine["cpu_model"], str) and machine["cpu_model"]
    assert machine["logical_cores"] >= 1
    backends = {run["config"]["backend"] for run in result["runs"]}
    assert "sqlite" in backends
    if running_in_ci():
        assert "postgresql" in backends, "CI=true: the benchmark must measure PostgreSQL"
        assert machine["postgresql_version"]
    elif "postgresql" not in backends:
        assert result["config"]["postgresql"]["skipped"]


def test_bare_verification_measured_per_algorithm(result: dict[str, Any]) -> None:
    bare = result["bare_verification"]
    assert set(bare) == {"Ed25519", "ES256"}
    assert bare["Ed25519"]["libsodium"]["median_verifies_per_s"] > 0
    for alg in ("Ed25519", "ES256"):
        assert bare[alg]["openssl"]["median_verifies_per_s"] > 0
        assert bare[alg]["cores"] == [0]
    assert "libsodium" not in bare["ES256"]


def test_every_configuration_is_measured_and_complete(result: dict[str, Any]) -> None:
    config = result["config"]
    backends = config["backends"]
    expected = {
        (backend, alg, batch, path, cores)
        for backend in backends
        for alg in config["algs"]
        for batch in config["batches"]
        for path in ("python", "http")
        for cores in (1, 2)
    }
    seen = set()
    for run in result["runs"]:
        c = run["config"]
        seen.add((c["backend"], c["alg"], c["batch"], c["path"], c["cores"]))
        # Every timed reading became a leaf: a rate over refused readings would mean nothing.
        assert run["accepted"] == run["readings"] > 0
        assert run["readings_per_s"] > 0 and run["timed_s"] > 0
        assert run["median_batch_readings_per_s"] > 0
        assert c["workers"] == c["cores"]
    assert seen == expected


def test_summary_ratios_match_the_rates(result: dict[str, Any]) -> None:
    bare = result["bare_verification"]
    rows = result["summary"]
    assert len(rows) == len(result["runs"])
    for row in rows:
        floor = bare[row["alg"]]["openssl"]["median_verifies_per_s"]
        assert row["over_openssl_verify_1core"] == pytest.approx(
            row["readings_per_s"] / floor, abs=1e-3
        )
        assert ("over_libsodium_verify_1core" in row) == (row["alg"] == "Ed25519")
        assert ("over_same_config_1core" in row) == (row["cores"] == 2)
    targets = result["targets"]
    assert targets["one_core_over_bare_openssl"]["target"] == 0.5
    assert targets["two_cores_over_one_core"]["target"] == 1.6


def test_profiles_name_the_phases(result: dict[str, Any]) -> None:
    profiles = result["profiles"]
    assert {(p["backend"], p["alg"]) for p in profiles} == {
        (backend, alg) for backend in result["config"]["backends"] for alg in ("Ed25519", "ES256")
    }
    for profile in profiles:
        phases = profile["phase_cumulative_pct"]
        # Verification happens inside the key choice: its share cannot exceed that one.
        assert phases["signature verification (verify_with_public_key)"] > 0
        assert (
            phases["signature verification (verify_with_public_key)"]
            <= phases["key choice incl. verification (_resolve_key)"]
        )
        assert profile["top_tottime"] and profile["profiled_s"] > 0


def test_temporary_files_are_removed(result: dict[str, Any], workdir: Path) -> None:
    assert result["runs"]
    assert list(workdir.iterdir()) == []


def test_nonsense_arguments_are_refused() -> None:
    completed = run_bench(SCRIPT, "--readings", "0", "--no-pg", timeout=RUN_TIMEOUT_SECONDS)
    assert completed.returncode == 2
    assert "--readings" in completed.stderr
    assert completed.stdout == ""
