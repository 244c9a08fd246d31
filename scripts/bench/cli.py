#!/usr/bin/env python3
"""Start-up benchmark of the `carbonledger` command line: whole processes, as a user runs them.

Measures what issue 9 (item 5) sets targets for: `carbonledger --help` ≤ 0.3 s and
`carbonledger verify BUNDLE` ≤ 1 s wall (median), plus `admin create-client` and a read-only
`anchor status`, each as a fresh process of the installed console script. Beside them, the
same-run floors every Python command line pays: `python -c pass` (the interpreter) and
`python -c "import typer"` (the framework), and a one-command Typer app's `--help` (the
framework's help, with Rich).

Set-up, not timed: a registry in a temporary directory, made with the CLI itself (`init`,
`admin create-client`, `meter keygen`, `meter register`, `meter sign`, `readings import`,
`chain deploy`, `anchor now`), on a local anvil when its binary is there (the verifier's real
path, `verify --rpc`) or else on the embedded chain (`verify --data-dir`); then a proof bundle
of one anchored reading.

Each run is timed from spawn to exit (wall) and by the kernel's account of the child (user +
system CPU). Commands are run round-robin, so a change of load on the machine
spreads over all of them; the CPU figures are the steadier ones on a busy machine, the wall
figures are what the targets are about. Prints one JSON document on stdout, progress on
stderr; targets are reported (`met`), never enforced.

    .venv/bin/python scripts/bench/cli.py                # 21 runs of each command
    .venv/bin/python scripts/bench/cli.py --quick        # 3 runs, for the smoke test
    .venv/bin/python scripts/bench/cli.py --chain embedded --runs 11 > cli.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import (
    ANVIL_ADMIN_KEY,
    ANVIL_DEV_KEY,
    REPO_ROOT,
    emit_json,
    machine_description,
    progress,
)

from attestation.chain.localnode import ANVIL_CHAIN_ID, LocalAnvil

CLI = Path(sys.executable).with_name("carbonledger")
DEFAULT_ANVIL = REPO_ROOT / "contracts" / "node_modules" / ".bin" / "anvil"
FULL_RUNS = 21
QUICK_RUNS = 3
MAX_RUNS = 1_000
RUN_TIMEOUT_SECONDS = 120
TARGETS_MS = {"help": 300, "verify": 1_000}
"""Issue 9, item 5: median wall time of the whole process."""
METER = "bench-pv-1"
ORGANISATION = "Bench Solar"
READINGS = 4
TYPER_HELP_APP = (
    "import typer\n"
    "app = typer.Typer(rich_markup_mode='markdown', add_completion=False)\n"
    "@app.command()\n"
    "def one(flag: bool = False) -> None:\n"
    "    'A command.'\n"
    "@app.command()\n"
    "def two() -> None:\n"
    "    'Another.'\n"
    "app()\n"
)


class BenchError(RuntimeError):
    """The set-up or a measured command failed; the message says which and why."""


# ----------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class Sample:
    wall_s: float
    cpu_s: float


def run_once(argv: Sequence[str], env: dict[str, str]) -> Sample:
    """One whole process: wall time from spawn to exit, and the child's own CPU time.

    (Not its peak RSS: a forked child's high-water mark starts at its parent's.)"""
    started = time.perf_counter()
    process = subprocess.Popen(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert process.stderr is not None
    error_output = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stderr.close()
    if process.returncode != 0:
        raise BenchError(
            f"{' '.join(argv[:3])} … exited {process.returncode}: {error_output.decode()[-800:]}"
        )
    return Sample(wall, usage.ru_utime + usage.ru_stime)


def summary(samples: Sequence[Sample]) -> dict[str, Any]:
    walls = sorted(sample.wall_s * 1000 for sample in samples)
    cpus = sorted(sample.cpu_s * 1000 for sample in samples)
    return {
        "runs": len(samples),
        "wall_ms": {
            "median": round(statistics.median(walls), 1),
            "min": round(walls[0], 1),
            "max": round(walls[-1], 1),
        },
        "cpu_ms": {
            "median": round(statistics.median(cpus), 1),
            "min": round(cpus[0], 1),
            "max": round(cpus[-1], 1),
        },
    }


def cli(env: dict[str, str], *args: str) -> str:
    """Run a set-up step through the CLI; its stdout, or BenchError with its stderr."""
    completed = subprocess.run(
        [str(CLI), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )
    if completed.returncode != 0:
        raise BenchError(f"carbonledger {' '.join(args[:2])} failed: {completed.stderr.strip()}")
    return completed.stdout


# -------------------------------------------------------------------------------- set-up


@dataclass(frozen=True)
class Registry:
    env: dict[str, str]
    """The operator's environment (data dir; the chain, with the anchorer key)."""
    reader_env: dict[str, str]
    """The same without any signing key: what `anchor status` must get by with."""
    bundle: Path
    verify_args: tuple[str, ...]
    chain: str


def clean_environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CARBONLEDGER_")}
    env.update(NO_COLOR="1", COLUMNS="120")
    return env


def build_registry(workdir: Path, anvil: LocalAnvil | None) -> Registry:
    data_dir = workdir / "data"
    env = {**clean_environment(), "CARBONLEDGER_DATA_DIR": str(data_dir)}
    reader_env = dict(env)
    if anvil is not None:
        chain = {"CARBONLEDGER_CHAIN_RPC": anvil.url, "CARBONLEDGER_CHAIN_ID": str(ANVIL_CHAIN_ID)}
        env.update(chain, CARBONLEDGER_CHAIN_ANCHORER_KEY=ANVIL_DEV_KEY)
        reader_env.update(chain)
    log_key = json.loads(cli(env, "init", "--json"))["verifierKey"]
    cli(env, "admin", "create-client", "--org", ORGANISATION, "--scopes", "readings:write")
    key = workdir / "meter.pem"
    cli(env, "meter", "keygen", "--out", str(key))
    cli(
        env,
        *("meter", "register", "--meter", METER, "--org", ORGANISATION),
        *("--role", "generation", "--province", "CN-JS", "--grid-region", "east"),
        *("--source", "solar", "--capacity-w", "5000", "--key", str(key)),
        *("--valid-from", "2026-01-01T00:00:00Z"),
    )
    rows = workdir / "readings.csv"
    with rows.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["seq", "time", "importWh", "exportWh"])
        for seq in range(1, READINGS + 1):
            writer.writerow([seq, f"2026-06-01T{seq:02d}:00:00Z", 0, 1_000 * seq])
    signed = workdir / "signed.csv"
    cli(env, "meter", "sign", "--meter", METER, "--key", str(key), "--csv", str(rows),
        "--format", "csv", "--out", str(signed))  # fmt: skip
    imported = json.loads(cli(env, "readings", "import", str(signed), "--org", ORGANISATION,
                              "--json"))  # fmt: skip
    if imported["accepted"] != READINGS:
        raise BenchError(f"readings import accepted {imported['accepted']} of {READINGS}")
    admin_env = {**env, "CARBONLEDGER_CHAIN_ADMIN_KEY": ANVIL_ADMIN_KEY} if anvil else env
    contract = json.loads(cli(admin_env, "chain", "deploy", "--json"))["contract"]
    if anvil is not None:
        cli(admin_env, "chain", "register-log", "--json")
    cli(env, "anchor", "now", "--json")
    bundle = workdir / "bundle.json"
    bundle.write_bytes(reading_bundle(data_dir, imported["lastIndex"]))
    if anvil is not None:
        verify_args: tuple[str, ...] = (
            *("verify", str(bundle), "--rpc", anvil.url),
            *("--contract", contract, "--chain-id", str(ANVIL_CHAIN_ID), "--log-key", log_key),
        )
    else:
        verify_args = (
            *("--data-dir", str(data_dir), "verify", str(bundle)),
            *("--accept-embedded-chain", "--contract", contract),
        )
    return Registry(env, reader_env, bundle, verify_args, "anvil" if anvil else "embedded")


def reading_bundle(data_dir: Path, index: int) -> bytes:
    """The proof bundle of one anchored reading, as the registry serves it."""
    from attestation.bundles.build import build_bundle  # noqa: PLC0415
    from attestation.bundles.format import bundle_bytes  # noqa: PLC0415
    from ledger.registry import open_registry  # noqa: PLC0415
    from ledger.settings import LedgerSettings  # noqa: PLC0415

    registry = open_registry(LedgerSettings(data_dir=data_dir), migrate=False)
    try:
        return bundle_bytes(build_bundle(registry.log, registry.signer, [index]))
    finally:
        registry.close()


# --------------------------------------------------------------------------------- runs


def measure(registry: Registry, runs: int) -> dict[str, dict[str, Any]]:
    python = sys.executable
    client_args = ("admin", "create-client", "--org", "Bench Buyer", "--scopes", "log:read")
    cases: dict[str, tuple[list[str], dict[str, str]]] = {
        "python_pass": ([python, "-c", "pass"], registry.env),
        "python_import_typer": ([python, "-c", "import typer"], registry.env),
        "typer_app_help": ([python, "-c", TYPER_HELP_APP, "--help"], registry.env),
        "help": ([str(CLI), "--help"], registry.env),
        "create_client": ([str(CLI), *client_args, "--json"], registry.env),
        "anchor_status": ([str(CLI), "anchor", "status", "--json"], registry.reader_env),
        "verify": ([str(CLI), *registry.verify_args], clean_environment()),
    }
    samples: dict[str, list[Sample]] = {name: [] for name in cases}
    for name, (argv, env) in cases.items():
        run_once(argv, env)  # warm the page cache and the .pyc files; not counted
        progress(f"warmed {name}")
    for round_number in range(runs):
        for name, (argv, env) in cases.items():
            samples[name].append(run_once(argv, env))
        progress(f"round {round_number + 1}/{runs}")
    results = {}
    for name, (argv, _) in cases.items():
        shown = [
            Path(argv[0]).name,
            *(arg if len(arg) < 60 else arg[:57] + "…" for arg in argv[1:]),
        ]
        results[name] = {"argv": shown, **summary(samples[name])}
    return results


def document(registry: Registry, results: dict[str, dict[str, Any]], runs: int) -> dict[str, Any]:
    floors = ("python_pass", "python_import_typer", "typer_app_help")
    targets = {}
    for name, limit in TARGETS_MS.items():
        median = results[name]["wall_ms"]["median"]
        targets[name] = {"target_ms": limit, "median_wall_ms": median, "met": median <= limit}
    return {
        "benchmark": "cli-start-up",
        "machine": machine_description(),
        "config": {"runs": runs, "chain": registry.chain, "console_script": str(CLI)},
        "floors": {name: results[name] for name in floors},
        "commands": {name: value for name, value in results.items() if name not in floors},
        "targets": targets,
    }


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=FULL_RUNS, help="measured runs per command")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_RUNS} runs (smoke test)")
    parser.add_argument(
        "--chain",
        choices=("auto", "anvil", "embedded"),
        default="auto",
        help="where the bundle is anchored (auto: anvil when its binary exists)",
    )
    parser.add_argument("--anvil", type=Path, default=DEFAULT_ANVIL, help="the anvil binary")
    parser.add_argument("--workdir", type=Path, help="parent of the temporary directory")
    arguments = parser.parse_args(argv)
    if arguments.quick:
        arguments.runs = QUICK_RUNS
    if not 1 <= arguments.runs <= MAX_RUNS:
        parser.error(f"--runs must be between 1 and {MAX_RUNS}")
    if arguments.chain == "anvil" and not arguments.anvil.exists():
        parser.error(f"no anvil at {arguments.anvil}; run `npm ci` in contracts/")
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    if not CLI.exists():
        print(f"error: no console script at {CLI}; run `make install`", file=sys.stderr)
        return 2
    use_anvil = arguments.chain == "anvil" or (
        arguments.chain == "auto" and arguments.anvil.exists()
    )
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="bench-cli-", dir=arguments.workdir))
    anvil = LocalAnvil(arguments.anvil) if use_anvil else None
    try:
        if anvil is not None:
            anvil.start()
        progress(f"setting up a registry in {workdir} ({'anvil' if anvil else 'embedded chain'})")
        registry = build_registry(workdir, anvil)
        results = measure(registry, arguments.runs)
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        if anvil is not None:
            anvil.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    output = document(registry, results, arguments.runs)
    output["total_wall_time_s"] = round(time.perf_counter() - started, 1)
    emit_json(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
