"""Smoke test of `scripts/bench/certificates.py`: it runs end to end and reports sane figures.

Targets (≤ 2 s issuance of a device-year, ≤ 1 s matching report, ≤ 5 ms bundle verification)
are measured by the benchmark, never asserted here. These tests check the document's
structure, that every figure is plausible (counts and medians positive, every copy issuing
the same) and that each ratio is computed from figures of the same run. `--quick` covers 14
days instead of a year and says so. PostgreSQL is measured when reachable; under CI=true it
must be. A measurement whose module is in the tree must be measured, not skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from bench_smoke_support import BENCH_DIR, REPO_ROOT, quick_run_with_postgres, run_bench
from testdata_support import running_in_ci

SCRIPT = BENCH_DIR / "certificates.py"
RUN_TIMEOUT_SECONDS = 600
QUICK_HOURS = 14 * 24

pytestmark = [pytest.mark.slow, pytest.mark.timeout(RUN_TIMEOUT_SECONDS + 60)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench-certificates")


@pytest.fixture(scope="module")
def result(workdir: Path) -> dict[str, Any]:
    return quick_run_with_postgres(SCRIPT, workdir, timeout=RUN_TIMEOUT_SECONDS)


def in_tree(*relative: str) -> bool:
    return all((REPO_ROOT / path).exists() for path in relative)


def test_machine_config_and_backends(result: dict[str, Any]) -> None:
    machine = result["machine"]
    for key in ("cpu_model", "python_version", "date_utc", "sqlite_version"):
        assert isinstance(machine[key], str) and machine[key]
    assert machine["logical_cores"] >= 1
    config = result["config"]
    assert config["quick"] is True
    # The quick run says that it is not the targets' year.
    assert config["hours"] == QUICK_HOURS == 24 * config["days"]
    assert config["target_period_hours"] == 8_760
    assert config["period_is_the_targets_year"] is False
    assert any("not comparable" in note for note in config["notes"])
    backends = [run["backend"] for run in result["runs"]]
    assert backends == config["backends"]
    assert backends[0] == "sqlite"
    if running_in_ci():
        assert "postgresql" in backends, "CI=true: the benchmark must measure PostgreSQL"
        assert machine["postgresql_version"]
    elif "postgresql" not in backends:
        assert config["postgresql"]["skipped"]
    assert result["total_wall_time_s"] > 0


def test_bare_ed25519_measured_in_each_run(result: dict[str, Any]) -> None:
    for run in result["runs"]:
        bare = run["bare_ed25519"]
        assert bare["sign"]["median_signs_per_s"] > 0
        assert bare["verify"]["median_verifies_per_s"] > 0
        assert bare["verify"]["median_us_per_verify"] == pytest.approx(
            1e6 / bare["verify"]["median_verifies_per_s"], rel=1e-3
        )
        assert run["cores"] == [0]


def test_setup_describes_the_prepared_state(result: dict[str, Any]) -> None:
    for run in result["runs"]:
        setup = run["setup"]
        assert setup["hours"] == QUICK_HOURS
        assert setup["readings_per_generation_meter"] == QUICK_HOURS * 4 + 1
        assert setup["consumption_readings"] == QUICK_HOURS + 1
        # Two generation meters and the consumer's, plus registrations.
        assert setup["log_size_before_issuance"] > 2 * setup["readings_per_generation_meter"]
        assert setup["database_bytes_before_issuance"] > 0
        # One copy per issuance repeat and device, and one for matching and the bundle.
        assert setup["fresh_copies"] == 2 * result["config"]["issuance_repeats"] + 1


def test_issuance_figures_and_same_run_ratios(result: dict[str, Any]) -> None:
    for run in result["runs"]:
        issuance = run["issuance"]
        assert issuance["status"] == "measured"
        sign_rate = run["bare_ed25519"]["sign"]["median_signs_per_s"]
        flat, solar = issuance["devices"]["flat"], issuance["devices"]["solar"]
        # Production in every hour gives one credential per hour; solar has none at night.
        assert flat["credentials_issued"] == flat["hours_requested"] == QUICK_HOURS
        assert 0 < solar["credentials_issued"] < flat["credentials_issued"]
        for device in (flat, solar):
            assert device["issued_wh"] > 0
            assert len(device["all_s"]) == device["repeats"] == result["config"]["issuance_repeats"]
            assert 0 < device["min_s"] <= device["median_s"] <= device["max_s"]
            assert device["credentials_per_s"] == pytest.approx(
                device["credentials_issued"] / device["median_s"], rel=1e-2
            )
            assert device["bare_ed25519_signs_per_s"] == sign_rate
            assert device["credentials_per_s_over_bare_sign"] == pytest.approx(
                device["credentials_per_s"] / sign_rate, rel=1e-2
            )
            beside = device["bare_signs_per_s_before_each_repeat"]
            assert len(beside) == device["repeats"] and all(value > 0 for value in beside)
            per_repeat = sorted(
                device["credentials_issued"] / seconds / signs
                for seconds, signs in zip(device["all_s"], beside, strict=True)
            )
            assert per_repeat[0] * 0.99 <= device["median_ratio_to_signs_before_each_repeat"]
            assert device["median_ratio_to_signs_before_each_repeat"] <= per_repeat[-1] * 1.01
            assert device["target_s"] == 2.0
            assert isinstance(device["meets_target"], bool)
            assert device["comparable_to_target"] is False


def test_matching_is_measured_or_explained(result: dict[str, Any]) -> None:
    for run in result["runs"]:
        matching = run["matching"]
        if not in_tree("ledger/certificates/matching.py", "ledger/factors/grid.py"):
            assert matching["status"] == "not-available" and matching["reason"]
            continue
        assert matching["status"] == "measured", matching
        solar = run["issuance"]["devices"]["solar"]["credentials_issued"]
        assert matching["certificates_retired_for_consumer"] == solar
        assert run["retirement_for_matching"]["certificates_retired"] == solar
        assert matching["hours"] == QUICK_HOURS
        for variant in ("regions_pooled", "same_region"):
            figures = matching[variant]
            assert len(figures["all_s"]) == matching["runs"]
            assert 0 < figures["min_s"] <= figures["median_s"] <= figures["max_s"]
            assert figures["consumption_wh"] > 0 and figures["retired_supply_wh"] > 0
            # Retired solar covers some of the consumer's hours, never more than all of it.
            assert 0 < figures["matched_wh"] <= figures["consumption_wh"]
            assert 0 < figures["cfe_score_pct"] < 100
        assert matching["median_s"] == matching["regions_pooled"]["median_s"]
        assert matching["target_s"] == 1.0
        assert isinstance(matching["meets_target"], bool)


def test_bundle_verification_is_measured_or_explained(result: dict[str, Any]) -> None:
    for run in result["runs"]:
        verification = run["bundle_verification"]
        if not in_tree("attestation/certificates/bundle.py", "attestation/bundles/verify.py"):
            assert verification["status"] == "not-available" and verification["reason"]
            continue
        assert verification["status"] == "measured", verification
        assert verification["verified_complete"] is True
        assert verification["checks_not_passed"] == []
        assert verification["runs"] == result["config"]["verify_runs"]
        assert 0 < verification["min_ms"] <= verification["median_ms"] <= verification["max_ms"]
        kinds = verification["entry_kinds"]
        assert kinds["certificate.issued/1"] == 1 and kinds["certificate.retired/1"] == 1
        assert kinds["reading/2"] >= 2  # the evidence readings bounding the hour
        assert verification["bundle_entries"] == sum(kinds.values())
        checks = verification["checks"]
        # Every entry's inclusion and checker ran, and the certificate checks themselves.
        assert checks["inclusion"] == checks["entry"] == verification["bundle_entries"]
        assert {"checkpoint", "certificate", "issuer", "evidence", "status", "chain"} <= set(checks)
        signatures = verification["signatures_by_kind"]
        assert verification["signatures_verified"] == sum(signatures.values()) >= 4
        # The floor is the same run's bare verify time x the bundle's signatures.
        verify_us = run["bare_ed25519"]["verify"]["median_us_per_verify"]
        assert verification["bare_ed25519_verify_us"] == verify_us
        assert verification["bare_verify_floor_ms"] == pytest.approx(
            verify_us * verification["signatures_verified"] / 1e3, rel=1e-3
        )
        assert verification["median_over_bare_verify_floor"] == pytest.approx(
            verification["median_ms"] / verification["bare_verify_floor_ms"], rel=1e-2
        )
        assert verification["chain_lookup_median_ms"] > 0
        assert verification["target_ms"] == 5.0
        assert isinstance(verification["meets_target"], bool)


def test_summary_has_every_figure_beside_its_target(result: dict[str, Any]) -> None:
    rows = result["summary"]
    assert len(rows) == 4 * len(result["runs"])
    for row in rows:
        assert row["backend"] in result["config"]["backends"]
        assert ("target_s" in row) != ("target_ms" in row)
        if row.get("status", "measured") == "measured":
            assert isinstance(row["meets_target"], bool)


def test_targets_section_repeats_the_measured_medians(result: dict[str, Any]) -> None:
    targets = result["targets"]
    backends = result["config"]["backends"]
    issuance = targets["issuance_of_a_device_year"]
    assert issuance["target_median_s"] == 2.0
    assert issuance["comparable_to_target"] is False  # --quick is not a year
    matching = targets["matching_report_of_a_consumer_year"]
    assert matching["target_median_s"] == 1.0
    bundle = targets["offline_verification_of_a_certificate_bundle"]
    assert bundle["target_median_ms"] == 5.0
    for run in result["runs"]:
        backend = run["backend"]
        flat = run["issuance"]["devices"]["flat"]
        assert issuance["measured_median_s"][backend] == flat["median_s"]
        assert issuance["credentials"][backend] == flat["credentials_issued"]
        assert issuance["met"][backend] == flat["meets_target"]
        assert matching["measured_median_s"][backend] == run["matching"].get("median_s")
        assert bundle["measured_median_ms"][backend] == run["bundle_verification"].get("median_ms")
    for target in (issuance, matching, bundle):
        assert set(target["met"]) == set(backends)


def test_temporary_files_are_removed(result: dict[str, Any], workdir: Path) -> None:
    assert result["runs"]
    assert list(workdir.iterdir()) == []


def test_nonsense_arguments_are_refused() -> None:
    completed = run_bench(SCRIPT, "--days", "0", "--no-pg", timeout=RUN_TIMEOUT_SECONDS)
    assert completed.returncode == 2
    assert "--days" in completed.stderr
    assert completed.stdout == ""
