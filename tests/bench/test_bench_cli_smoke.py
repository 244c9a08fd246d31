"""Smoke test of `scripts/bench/cli.py`: it sets a registry up through the CLI, times whole
processes and reports them against the targets.

Times are never asserted (a shared machine is too noisy): the document's structure, the
plausibility of every figure, and the one ordering that holds by construction are. Runs
`--quick` (3 runs of each command), on anvil when contracts/node_modules has it, else on the
embedded chain.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from bench_smoke_support import BENCH_DIR, run_bench

SCRIPT = BENCH_DIR / "cli.py"
RUN_TIMEOUT_SECONDS = 600
COMMANDS = ("help", "create_client", "anchor_status", "verify")
FLOORS = ("python_pass", "python_import_typer", "typer_app_help")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(RUN_TIMEOUT_SECONDS + 60)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench-cli")


@pytest.fixture(scope="module")
def result(workdir: Path) -> dict[str, Any]:
    completed = run_bench(SCRIPT, "--quick", "--workdir", str(workdir), timeout=RUN_TIMEOUT_SECONDS)
    assert completed.returncode == 0, completed.stderr
    document: dict[str, Any] = json.loads(completed.stdout)
    return document


def test_machine_and_configuration_are_described(result: dict[str, Any]) -> None:
    machine = result["machine"]
    for key in ("cpu_model", "python_version", "date_utc"):
        assert isinstance(machine[key], str) and machine[key]
    assert len(machine["load_average_1_5_15_at_start"]) == 3
    config = result["config"]
    assert config["runs"] == 3
    assert config["chain"] in {"anvil", "embedded"}
    assert config["console_script"].endswith("carbonledger")


@pytest.mark.parametrize("name", FLOORS + COMMANDS)
def test_every_figure_is_a_plausible_summary(result: dict[str, Any], name: str) -> None:
    figures = result["floors"].get(name) or result["commands"][name]
    assert figures["runs"] == 3
    for kind in ("wall_ms", "cpu_ms"):
        summary = figures[kind]
        assert 0 < summary["min"] <= summary["median"] <= summary["max"], (name, kind, summary)
    # A process's CPU time cannot exceed its wall time by much on one thread of work.
    assert figures["cpu_ms"]["min"] <= figures["wall_ms"]["max"] * 1.5


def test_what_each_command_line_is(result: dict[str, Any]) -> None:
    commands = result["commands"]
    assert commands["help"]["argv"] == ["carbonledger", "--help"]
    assert commands["anchor_status"]["argv"][1:3] == ["anchor", "status"]
    verify = commands["verify"]["argv"]
    assert "verify" in verify
    if result["config"]["chain"] == "anvil":
        assert "--rpc" in verify and "--log-key" in verify
    else:
        assert "--data-dir" in verify


def test_the_floors_are_below_what_builds_on_them(result: dict[str, Any]) -> None:
    """Each includes the one before it: the interpreter, then Typer, then a Typer help."""
    cpu = {name: result["floors"][name]["cpu_ms"]["median"] for name in FLOORS}
    assert cpu["python_pass"] < cpu["python_import_typer"] < cpu["typer_app_help"]
    assert (
        result["floors"]["python_pass"]["cpu_ms"]["min"]
        < (result["commands"]["help"]["cpu_ms"]["median"])
    )


def test_targets_are_reported_not_enforced(result: dict[str, Any]) -> None:
    targets = result["targets"]
    assert targets["help"]["target_ms"] == 300
    assert targets["verify"]["target_ms"] == 1000
    for name, target in targets.items():
        median = result["commands"][name]["wall_ms"]["median"]
        assert target["median_wall_ms"] == median
        assert target["met"] is (median <= target["target_ms"])


def test_temporary_files_are_removed(result: dict[str, Any], workdir: Path) -> None:
    assert result["commands"]
    assert list(workdir.iterdir()) == []


@pytest.mark.parametrize("runs", ["0", "100000"])
def test_absurd_run_counts_are_refused(runs: str) -> None:
    completed = run_bench(SCRIPT, "--runs", runs, timeout=RUN_TIMEOUT_SECONDS)
    assert completed.returncode == 2
    assert "--runs must be between 1 and" in completed.stderr
    assert completed.stdout == ""
