#!/usr/bin/env python3
"""Embedded-chain restart benchmark: `carbonledger anchor status` after 10^4 anchors.

Issue 10 (item 7) asks that opening the embedded chain cost O(1) in past transactions and
that `carbonledger anchor status` take ≤ 1 s (whole process) after 10^4 anchors.

Set-up, timed but not the figure: `carbonledger init` in a temporary directory, then in
this process the log grows by one leaf per anchor and each size is anchored on the
registry's embedded chain — real signed transactions, each executed by py-evm and mined in
its own block, committed to the state file as `serve` does. The fast path is only that the
gas estimate (a second EVM run per anchor) is skipped (`preflight=False`) and no anchor
records are written to the registry's database.

Then, round-robin so a change of load spreads over both: the whole `carbonledger anchor
status --json` process (spawn to exit), and `open_embedded_chain(read_only=True)` plus one
`latest` call in this process (the open alone). Prints one JSON document on stdout,
progress on stderr; the target is reported (`met`), never enforced.

    .venv/bin/python scripts/bench/embedded_chain.py                 # 10^4 anchors, 11 runs
    .venv/bin/python scripts/bench/embedded_chain.py --quick         # 50 anchors, 3 runs
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import emit_json, machine_description, progress

from attestation.chain.client import CarbonAnchor, ChainSettings, log_id_for_origin
from attestation.chain.deployment import ensure_log_registered, resolve_contract
from attestation.chain.embedded import STATE_NAME, open_embedded_chain
from ledger.registry import open_registry
from ledger.settings import LedgerSettings

CLI = Path(sys.executable).with_name("carbonledger")
FULL_ANCHORS = 10_000
QUICK_ANCHORS = 50
FULL_RUNS = 11
QUICK_RUNS = 3
TARGET_MS = 1_000
"""Issue 10, Done when: `carbonledger anchor status` ≤ 1 s after 10^4 anchors."""
RUN_TIMEOUT_SECONDS = 120


class BenchError(RuntimeError):
    pass


def environment(data_dir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CARBONLEDGER_")}
    env.update(NO_COLOR="1", COLUMNS="120", CARBONLEDGER_DATA_DIR=str(data_dir))
    return env


def cli(env: dict[str, str], *args: str) -> str:
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


def make_anchors(data_dir: Path, count: int) -> tuple[str, str, float]:
    """(origin, contract address, seconds per anchor): `count` anchors of sizes 1..count."""
    registry = open_registry(LedgerSettings(data_dir=data_dir))
    chain = open_embedded_chain(data_dir)
    try:
        contract = resolve_contract(chain, ChainSettings(), data_dir)  # deploys, like serve
        origin = registry.log.head().origin
        log_id = log_id_for_origin(origin)
        ensure_log_registered(contract, log_id)  # contract v2: the embedded admin registers it
        started = time.perf_counter()
        for n in range(count):
            registry.log.append([{"kind": "bench/1", "n": n}])
            head = registry.log.head()
            proof = registry.log.consistency_proof(n, head.size).hashes if n else ()
            contract.anchor(log_id, head.size, head.root, proof, preflight=False)
            if (n + 1) % 1_000 == 0:
                progress(f"{n + 1} anchors")
        per_anchor = (time.perf_counter() - started) / max(count, 1)
        if contract.latest(log_id).size != count:
            raise BenchError("the chain does not hold the last anchor")
        return origin, contract.address, per_anchor
    finally:
        chain.close()
        registry.close()


def time_status(env: dict[str, str], count: int) -> float:
    started = time.perf_counter()
    answer = json.loads(cli(env, "anchor", "status", "--json"))
    elapsed = time.perf_counter() - started
    if (answer.get("chain") or {}).get("size") != count:
        raise BenchError(f"anchor status did not read the chain: {answer}")
    return elapsed


def time_open(data_dir: Path, address: str, origin: str) -> tuple[float, int]:
    started = time.perf_counter()
    chain = open_embedded_chain(data_dir, read_only=True)
    try:
        CarbonAnchor(chain, address).latest(log_id_for_origin(origin))
        return time.perf_counter() - started, chain.state_reads
    finally:
        chain.close()


def summary_ms(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    return {
        "median": round(statistics.median(ms), 1),
        "min": round(ms[0], 1),
        "max": round(ms[-1], 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--anchors", type=int, default=None)
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="50 anchors, 3 runs (smoke test)")
    parser.add_argument("--workdir", type=Path, default=None, help="kept; default: a temp dir")
    args = parser.parse_args()
    count = args.anchors or (QUICK_ANCHORS if args.quick else FULL_ANCHORS)
    runs = args.runs or (QUICK_RUNS if args.quick else FULL_RUNS)
    if not 1 <= count <= 1_000_000 or not 1 <= runs <= 1_000:
        parser.error("--anchors must be 1..10^6 and --runs 1..1000")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-embedded-"))
    data_dir = workdir / "data"
    try:
        env = environment(data_dir)
        cli(env, "init", "--json")
        progress(f"anchoring {count} times on the embedded chain")
        setup_started = time.perf_counter()
        origin, address, per_anchor = make_anchors(data_dir, count)
        setup_seconds = time.perf_counter() - setup_started
        status: list[float] = []
        opens: list[float] = []
        reads = 0
        for run in range(runs):
            progress(f"run {run + 1}/{runs}")
            status.append(time_status(env, count))
            seconds, reads = time_open(data_dir, address, origin)
            opens.append(seconds)
        state = data_dir / "chain" / STATE_NAME
        status_ms = summary_ms(status)
        emit_json(
            {
                "benchmark": "embedded_chain",
                "machine": machine_description(),
                "load_average_at_end": list(os.getloadavg()),
                "anchors": count,
                "runs": runs,
                "setup_seconds": round(setup_seconds, 1),
                "ms_per_anchor_transaction": round(per_anchor * 1000, 2),
                "state_file_bytes": state.stat().st_size,
                "anchor_status_wall_ms": status_ms,
                "open_and_latest_ms": summary_ms(opens),
                "state_keys_read_by_open_and_latest": reads,
                "target": {
                    "anchor_status_wall_ms": TARGET_MS,
                    "met": status_ms["median"] <= TARGET_MS,
                },
            }
        )
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
