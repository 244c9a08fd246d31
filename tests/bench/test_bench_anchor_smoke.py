"""Smoke test of `scripts/bench/anchor.py`: it runs end to end on anvil and reports sane gas.

Gas targets are measured by the benchmark, never asserted here. These tests check the
document's structure, that every figure is plausible, and the one structural property of
the design (DESIGN §5): an anchor's gas barely depends on how many leaves it covers, so
the gas per leaf falls as the batch grows. Runs `--quick` (batches of 10 and 100 leaves).
Needs anvil from contracts/node_modules: skipped without it, failed under CI=true.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from bench_smoke_support import BENCH_DIR, REPO_ROOT, run_bench
from testdata_support import running_in_ci

SCRIPT = BENCH_DIR / "anchor.py"
# Overridable like tests/attestation's, so the skip/fail policy can be checked by hand.
ANVIL = Path(
    os.environ.get(
        "CARBONLEDGER_TEST_ANVIL", REPO_ROOT / "contracts" / "node_modules" / ".bin" / "anvil"
    )
)
SOLC_JS = REPO_ROOT / "contracts" / "node_modules" / "solc" / "package.json"
RUN_TIMEOUT_SECONDS = 600

pytestmark = [pytest.mark.slow, pytest.mark.timeout(RUN_TIMEOUT_SECONDS + 60)]


def require_toolchain() -> None:
    """anvil, solc-js and node come from `npm ci` in contracts/ (which `make test` runs)."""
    missing = [
        what
        for what, present in (
            (f"anvil at {ANVIL}", ANVIL.exists()),
            (f"solc-js at {SOLC_JS.parent}", SOLC_JS.exists()),
            ("node on PATH", shutil.which("node") is not None),
        )
        if not present
    ]
    if not missing:
        return
    message = "missing " + ", ".join(missing) + "; run `npm ci` in contracts/"
    if running_in_ci():
        pytest.fail(message + " (CI=true: the anchor benchmark smoke test must run)")
    pytest.skip(message)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench-anchor")


@pytest.fixture(scope="module")
def result(workdir: Path) -> dict[str, Any]:
    require_toolchain()
    completed = run_bench(
        SCRIPT,
        "--quick",
        "--anvil",
        str(ANVIL),
        "--workdir",
        str(workdir),
        timeout=RUN_TIMEOUT_SECONDS,
    )
    assert completed.returncode == 0, completed.stderr
    document: dict[str, Any] = json.loads(completed.stdout)
    return document


def test_machine_and_chain_are_described(result: dict[str, Any]) -> None:
    machine = result["machine"]
    for key in ("cpu_model", "python_version", "date_utc"):
        assert isinstance(machine[key], str) and machine[key]
    chain = result["chain"]
    assert chain["client"].startswith("anvil/")
    assert chain["chain_id"] == 31337
    assert chain["hardfork"]
    # Only a loopback node is ever used.
    assert chain["url"].startswith("http://127.0.0.1:")
    assert result["total_wall_time_s"] > 0


def test_every_anchor_is_recorded_with_sane_gas(result: dict[str, Any]) -> None:
    anchoring = result["anchoring"]
    config = result["config"]
    anchors = anchoring["anchors"]
    assert len(anchors) == 1 + config["anchors_per_batch_size"] * len(config["batch_sizes_leaves"])
    first = anchoring["first_anchor"]
    assert first["role"] == "first" and first["previous_size"] == 0
    assert first["proof_hashes"] == 0
    size = 0
    for row in anchors:
        # The anchors follow one growing log, each from the size the previous one left.
        assert row["previous_size"] == size
        assert row["size"] == size + row["leaves_covered"]
        size = row["size"]
        assert row["gas_used"] > 21_000  # more than a bare transfer
        assert row["gas_per_leaf"] == pytest.approx(row["gas_used"] / row["leaves_covered"])
        assert row["calldata_bytes"] >= 4 + 32 * (4 + row["proof_hashes"])
        if row["role"] == "batch":
            assert row["proof_hashes"] >= 1
    assert anchoring["final_log_size"] == size
    assert anchoring["deploy_gas"] > 0


def test_gas_per_leaf_falls_with_batch_size(result: dict[str, Any]) -> None:
    by_batch = result["anchoring"]["by_batch"]
    sizes = [entry["batch_leaves"] for entry in by_batch]
    assert sizes == sorted(sizes) == result["config"]["batch_sizes_leaves"]
    per_leaf = [entry["median_gas_per_leaf"] for entry in by_batch]
    assert all(value > 0 for value in per_leaf)
    # Structural (DESIGN §5): the gas of an anchor is O(log n), not O(batch).
    assert per_leaf == sorted(per_leaf, reverse=True)
    assert len(set(per_leaf)) == len(per_leaf)


def test_reference_measured_on_the_same_chain(result: dict[str, Any]) -> None:
    reference = result["reference"]
    txs = result["config"]["reference_txs_per_shape"]
    for shape in ("store_one_per_tx", "record_one_per_tx"):
        figures = reference[shape]
        assert figures["count"] == txs
        assert 21_000 < figures["min_gas"] <= figures["median_gas"] <= figures["max_gas"]
    batched = reference["store_batched"]
    assert batched["per_tx"]["min_gas"] > 21_000
    assert 0 < batched["median_gas_per_reading"] < reference["store_one_per_tx"]["median_gas"]


def test_summary_ratios_and_targets(result: dict[str, Any]) -> None:
    summary = result["summary"]
    assert [row["batch_leaves"] for row in summary] == result["config"]["batch_sizes_leaves"]
    store = result["reference"]["store_one_per_tx"]["median_gas"]
    for row in summary:
        assert row["per_reading_store_gas"] == store
        assert row["store_gas_over_anchored_gas_per_leaf"] == pytest.approx(
            store / row["median_anchored_gas_per_leaf"], abs=0.05
        )  # the document rounds ratios to one decimal
    ratios = [row["store_gas_over_anchored_gas_per_leaf"] for row in summary]
    assert ratios == sorted(ratios)
    target = result["targets"]["gas_per_anchor"]
    assert target["target_max_gas"] == 200_000
    assert target["measured_max_gas"] == max(
        row["gas_used"] for row in result["anchoring"]["anchors"]
    )
    assert isinstance(target["met"], bool)


def test_offline_verification_is_a_figure_or_an_explained_null(result: dict[str, Any]) -> None:
    verification = result["offline_bundle_verification"]
    target = result["targets"]["offline_bundle_verification"]
    assert verification["runs"] == 20
    assert 0 < verification["min_ms"] <= verification["median_ms"] <= verification["max_ms"]
    # The bundle really is a signed reading with its key, checked end to end.
    assert {"format", "checkpoint", "keys", "contract", "chain"} <= set(verification["checks"])
    assert any(name.startswith("inclusion[") for name in verification["checks"])
    assert verification["bundle_entries"] >= 2
    assert verification["chain_lookup_median_ms"] > 0
    assert target["measured_median_ms"] == verification["median_ms"]
    assert isinstance(target["met"], bool)


def test_temporary_files_are_removed(result: dict[str, Any], workdir: Path) -> None:
    assert result["anchoring"]["anchors"]
    assert list(workdir.iterdir()) == []


def test_absurd_sizes_are_refused() -> None:
    completed = run_bench(SCRIPT, "--batches", "1e9", timeout=RUN_TIMEOUT_SECONDS)
    assert completed.returncode == 2
    assert "10^7" in completed.stderr
    assert completed.stdout == ""
