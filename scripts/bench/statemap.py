#!/usr/bin/env python3
"""Benchmark of the state map (`state-map/1`): proof reads, updates, disk and memory.

Measures what issue 11 (item 1) sets a target for, on SQLite (10^5, 10^6, 10^7 keys) and
PostgreSQL (10^6):

- build: the map loaded with `ledger.statemap.store.bulk_load` in one log transaction (keys
  `certificate/bench-<n>`, values `{"kind":"certificate.state/1","n":<n>}`);
- proof read: `StateMap.prove` of random members and non-members at the head, served alone
  and served plus verified (`ledger.statemap.proof.verify_state` against the root the build
  returned), beside a bare point read of one row of the same table on the same database
  (`SELECT node, value FROM state_node WHERE id = ?`, same connection handling), and the
  ratio of their medians; target ≤ 1 ms median at 10^7 keys;
- updates: one log transaction per batch (one leaf + `state_updates(tx)`, commit included)
  for batches of 1, 100 and 10,000 keys (90 % changed values of existing keys, 10 % new
  keys), as keys/s, with the database bytes each updated key adds (every version is kept);
- proofs at the build's version after the updates (a bundle's anchored size lags the head);
- database bytes per key after the build, and peak RSS of the configuration's process.

Before the runs, a sample of keys is loaded once with `bulk_load` and once with batches
through `apply_hashed_updates`; `bulk_matches_batches` says whether both left the same root
and the same rows for the current tree (the bulk path is only a faster way to the same map).

Prints one JSON document on stdout; progress goes to stderr. Each configuration runs in a
fresh process, so peak RSS is per configuration. Figures measured on a busy machine are not
final: compare the load averages at start and end.

    .venv/bin/python scripts/bench/statemap.py                      # the full run (~half an hour)
    .venv/bin/python scripts/bench/statemap.py --quick --pg-optional   # seconds, smoke test
    .venv/bin/python scripts/bench/statemap.py --sqlite-sizes 1e6 --pg-sizes '' > result.json
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

from _common import (
    DEFAULT_PG_URL,
    current_rss_bytes,
    emit_json,
    free_disk_bytes,
    latency_summary_ms,
    machine_description,
    mib,
    parse_count,
    peak_rss_bytes,
    progress,
    rate,
    run_isolated,
    utc_timestamp,
)
from log import select_backends, sqlite_file_sizes, throwaway_postgres_database
from sqlalchemy import func, select, text

from ledger.registry import Registry, initialise_registry
from ledger.settings import LedgerSettings
from ledger.statemap.keys import Namespace, StateKey, encode_value
from ledger.statemap.models import StateNode, StateRoot
from ledger.statemap.proof import verify_state
from ledger.statemap.store import (
    MapRoot,
    StateMap,
    apply_hashed_updates,
    bulk_load,
    state_updates,
)

MAX_BENCH_SIZE = 5 * 10**7
"""~260 bytes per key on disk, as much again in the WAL while the one-transaction build commits:
refuse sizes that would fill the disk over a typo."""
BYTES_PER_KEY_ESTIMATE = 800
"""Disk needed per key during the build (database and WAL), with margin."""

FULL_SQLITE_SIZES = (10**5, 10**6, 10**7)
FULL_PG_SIZES = (10**6,)
FULL_QUERIES = 2_000
FULL_UPDATE_ROUNDS = {1: 300, 100: 60, 10_000: 3}
FULL_SAMPLE = 20_000

QUICK_SIZES = (2_000,)
QUICK_QUERIES = 60
QUICK_UPDATE_ROUNDS = {1: 10, 100: 3, 10_000: 1}
QUICK_SAMPLE = 600

NEW_KEY_SHARE = 0.1
WARM_UP_QUERIES = 200
DEFAULT_SEED = 11


# ------------------------------------------------------------------------- the keys


def bench_key_text(n: int) -> bytes:
    return b"certificate/bench-%d" % n


def bench_key_hash(n: int) -> bytes:
    return hashlib.sha256(b"certificate/bench-%d" % n).digest()


def bench_value(n: int, generation: int = 0) -> bytes:
    if generation:
        return b'{"generation":%d,"kind":"certificate.state/1","n":%d}' % (generation, n)
    return b'{"kind":"certificate.state/1","n":%d}' % n


def check_bench_encoding() -> None:
    """The byte templates must be exactly what the state map's own encoders produce."""
    for n in (0, 7, 10**7 - 1):
        key = StateKey(Namespace.CERTIFICATE, f"bench-{n}")
        assert key.hash == bench_key_hash(n) and key.text.encode() == bench_key_text(n)
        assert bench_value(n) == encode_value(key, {"kind": "certificate.state/1", "n": n})
        assert bench_value(n, 3) == encode_value(
            key, {"kind": "certificate.state/1", "n": n, "generation": 3}
        )


class SortedKeys:
    """Key hashes 0..size-1 sorted, and the bench number behind each (for its value)."""

    def __init__(self, size: int) -> None:
        hashes = [bench_key_hash(n) for n in range(size)]
        self.numbers = sorted(range(size), key=hashes.__getitem__)
        self.hashes = [hashes[n] for n in self.numbers]


class LazyValues(Sequence[bytes]):
    """The values of sorted keys, computed when read (10^7 values would not fit in memory
    beside the keys)."""

    def __init__(self, numbers: Sequence[int]) -> None:
        self.numbers = numbers

    def __len__(self) -> int:
        return len(self.numbers)

    @overload
    def __getitem__(self, index: int) -> bytes: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[bytes]: ...
    def __getitem__(self, index: int | slice) -> bytes | Sequence[bytes]:
        if isinstance(index, slice):
            return [bench_value(n) for n in self.numbers[index]]
        return bench_value(self.numbers[index])

    def __iter__(self) -> Iterator[bytes]:
        return (bench_value(n) for n in self.numbers)


# -------------------------------------------------------------------- configuration


@dataclass(frozen=True, slots=True)
class RunConfig:
    backend: str
    size: int
    queries: int
    update_rounds: tuple[tuple[int, int], ...]
    seed: int
    data_dir: str
    database_url: str | None


def open_bench_registry(data_dir: str, database_url: str | None) -> Registry:
    return initialise_registry(LedgerSettings(data_dir=Path(data_dir), database_url=database_url))


# ------------------------------------------------------------------------- one run


def run_statemap_benchmark(config: RunConfig) -> dict[str, Any]:
    started = time.perf_counter()
    label = f"{config.backend} {config.size:,}"
    rss_at_start = current_rss_bytes()
    rng = random.Random(config.seed)
    registry = open_bench_registry(config.data_dir, config.database_url)
    try:
        t0 = time.perf_counter()
        keys = SortedKeys(config.size)
        generation_s = time.perf_counter() - t0
        progress(f"{label}: keys generated and sorted in {generation_s:.1f} s; loading")
        t0 = time.perf_counter()
        with registry.log.write() as transaction:
            transaction.append({"kind": "bench.state/1", "keys": config.size})
            built = bulk_load(
                transaction.session,
                transaction.next_index,
                keys.hashes,
                LazyValues(keys.numbers),
            )
        build_s = time.perf_counter() - t0
        progress(f"{label}: built in {build_s:.1f} s ({rate(config.size, build_s):,.0f} keys/s)")
        disk_after_build = database_bytes(registry, config)
        state_map = StateMap(registry.database)
        assert state_map.root_at().root == built.root

        proofs = measure_proofs(state_map, registry, config, built.root, rng)
        progress(
            f"{label}: proof median {proofs['members']['serve']['median_ms']} ms (members), "
            f"{proofs['non_members']['serve']['median_ms']} ms (non-members), point read "
            f"{proofs['point_read']['median_ms']} ms"
        )
        updates = measure_updates(registry, config, rng)
        old_version = measure_old_version_proofs(state_map, config, built, rng)
        disk_after_updates = database_bytes(registry, config)
    finally:
        registry.close()
    if config.backend == "sqlite":
        disk_after_updates = sqlite_file_sizes(Path(config.data_dir), config.size)["database_bytes"]
    updated_keys = sum(item["keys_updated"] for item in updates)
    return {
        "backend": config.backend,
        "size_keys": config.size,
        "root": built.root.hex(),
        "build": {
            "keys": config.size,
            "key_generation_and_sort_s": round(generation_s, 2),
            "bulk_load_s": round(build_s, 2),
            "bulk_load_rate_keys_per_s": rate(config.size, build_s),
            "note": "one log transaction (commit included); keys generated beforehand, untimed",
        },
        "proofs": proofs,
        "updates": updates,
        "old_version_proofs": old_version,
        "disk": {
            "database_bytes_after_build": disk_after_build,
            "bytes_per_key_after_build": round(disk_after_build / config.size, 1),
            "database_bytes_after_updates": disk_after_updates,
            "bytes_added_per_updated_key": round(
                (disk_after_updates - disk_after_build) / updated_keys, 1
            )
            if updated_keys
            else None,
            "note": "every version is kept (docs/state-map.md, Retention): an update adds its "
            "new leaf and the new interior nodes on its path",
        },
        "memory": {
            "rss_at_process_start_bytes": rss_at_start,
            "peak_rss_bytes": peak_rss_bytes(),
        },
        "wall_time_s": round(time.perf_counter() - started, 1),
    }


def measure_proofs(
    state_map: StateMap, registry: Registry, config: RunConfig, root: bytes, rng: random.Random
) -> dict[str, Any]:
    """Members and non-members at the head, each verified against the build's root (the
    benchmark's own knowledge, not the proof's), and the bare point read beside them.

    The three are interleaved query by query, so that whatever else the machine does, and
    whatever the caches hold, weighs on all three alike and their ratio means something.
    """
    rows = row_count(registry)
    # Warm the connection pools, statement caches and the upper levels of the tree first.
    for _ in range(min(WARM_UP_QUERIES, config.queries)):
        state_map.prove(bench_key_hash(rng.randrange(config.size)))
        point_read(registry, rng.randint(1, rows))
    serve: dict[str, list[int]] = {"members": [], "non_members": []}
    verify: dict[str, list[int]] = {"members": [], "non_members": []}
    point_ns: list[int] = []
    depths: list[int] = []
    for _ in range(config.queries):
        n = rng.randrange(config.size)
        claims = {
            "members": (bench_key_hash(n), bench_value(n)),
            "non_members": (bench_key_hash(config.size + rng.randrange(10**9)), None),
        }
        for kind, (key, expected) in claims.items():
            t0 = time.perf_counter_ns()
            result = state_map.prove(key)
            t1 = time.perf_counter_ns()
            verify_state(key, expected, result.proof, root)
            t2 = time.perf_counter_ns()
            assert result.value == expected
            serve[kind].append(t1 - t0)
            verify[kind].append(t2 - t1)
            depths.append(len(result.proof.siblings))
        target = rng.randint(1, rows)
        t0 = time.perf_counter_ns()
        point_read(registry, target)
        point_ns.append(time.perf_counter_ns() - t0)
    results: dict[str, Any] = {
        kind: {
            "queries": len(serve[kind]),
            "verified": len(verify[kind]),
            "serve": latency_summary_ms(serve[kind]),
            "verify": latency_summary_ms(verify[kind]),
            "serve_and_verify": latency_summary_ms(
                [a + b for a, b in zip(serve[kind], verify[kind], strict=True)]
            ),
        }
        for kind in ("members", "non_members")
    }
    results["proof_siblings"] = {
        "median": statistics.median(depths),
        "max": max(depths),
        "log2_keys": round(math.log2(config.size), 1),
    }
    results["point_read"] = latency_summary_ms(point_ns)
    results["point_read_what"] = (
        "one state_node row by primary key (a random row), node and value fetched: one "
        "statement on an autocommit connection through the driver's cursor, as the proof read"
    )
    point_median = results["point_read"]["median_ms"]
    for kind in ("members", "non_members"):
        results[f"{kind[:-1]}_proof_over_point_read_median"] = round(
            results[kind]["serve"]["median_ms"] / point_median, 2
        )
    return results


def row_count(registry: Registry) -> int:
    with registry.database.read() as session:
        return int(session.execute(select(func.max(StateNode.id))).scalar_one())


def point_read(registry: Registry, row_id: int) -> None:
    """The floor of a read: one row by primary key, same database, same handling."""
    with registry.database.snapshot() as connection:
        cursor = connection.connection.cursor()
        try:
            placeholder = "%s" if connection.dialect.name == "postgresql" else "?"
            cursor.execute(
                f"SELECT node, value FROM state_node WHERE id = {placeholder}", (row_id,)
            )
            rows = cursor.fetchall()
        finally:
            cursor.close()
    assert len(rows) == 1 and len(rows[0][0]) == 65


def measure_updates(
    registry: Registry, config: RunConfig, rng: random.Random
) -> list[dict[str, Any]]:
    """Batches through the log's transaction hook, commit included; beside each, the same
    number of transactions of one leaf and no state change (what the map adds to a commit)."""
    results = []
    next_new = config.size
    generation = 0
    for batch, rounds in config.update_rounds:
        transaction_ns: list[int] = []
        for _ in range(rounds):
            generation += 1
            # Distinct keys: existing ones changed, the rest new (all new once the map is
            # smaller than the batch).
            existing = min(round(batch * (1 - NEW_KEY_SHARE)), config.size)
            numbers = rng.sample(range(config.size), existing)
            numbers += range(next_new, next_new + batch - existing)
            next_new += batch - existing
            updates = {
                StateKey(Namespace.CERTIFICATE, f"bench-{n}"): bench_value(n, generation)
                for n in numbers
            }
            assert len(updates) == batch
            t0 = time.perf_counter_ns()
            with registry.log.write() as transaction:
                transaction.append({"kind": "bench.state/1", "generation": generation})
                pending = state_updates(transaction)
                for key, value in updates.items():
                    pending.set_encoded(key, value)
            transaction_ns.append(time.perf_counter_ns() - t0)
        log_only_ns: list[int] = []
        for _ in range(rounds):
            t0 = time.perf_counter_ns()
            with registry.log.write() as transaction:
                transaction.append({"kind": "bench.log-only/1", "generation": generation})
            log_only_ns.append(time.perf_counter_ns() - t0)
        total_s = sum(transaction_ns) / 1e9
        updated = batch * rounds
        with_map = latency_summary_ms(transaction_ns)
        log_only = latency_summary_ms(log_only_ns)
        results.append(
            {
                "batch_keys": batch,
                "transactions": rounds,
                "keys_updated": updated,
                "rate_keys_per_s": rate(updated, total_s),
                "transaction": with_map,
                "log_only_transaction": log_only,
                "transaction_over_log_only_median": round(
                    with_map["median_ms"] / log_only["median_ms"], 2
                ),
            }
        )
        progress(
            f"{config.backend} {config.size:,}: updates in batches of {batch:,}: "
            f"{rate(updated, total_s):,.0f} keys/s"
        )
    return results


def measure_old_version_proofs(
    state_map: StateMap, config: RunConfig, built: MapRoot, rng: random.Random
) -> dict[str, Any]:
    """Proofs at the build's version, read after the updates, against the build's root."""
    serve_ns: list[int] = []
    queries = max(1, config.queries // 4)
    for _ in range(queries):
        n = rng.randrange(config.size)
        key = bench_key_hash(n)
        t0 = time.perf_counter_ns()
        result = state_map.prove(key, built.version)
        serve_ns.append(time.perf_counter_ns() - t0)
        verify_state(key, bench_value(n), result.proof, built.root)
    return {
        "version": built.version,
        "queries": queries,
        "verified": queries,
        "serve": latency_summary_ms(serve_ns),
    }


def database_bytes(registry: Registry, config: RunConfig) -> int:
    if config.backend == "postgresql":
        with registry.database.engine.connect() as connection:
            return int(
                connection.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
            )
    raw = registry.database.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cursor.close()
    finally:
        raw.close()
    return int(sqlite_file_sizes(Path(config.data_dir), config.size)["database_bytes"])


# ---------------------------------------------------------------- bulk = batches check


def check_bulk_matches_batches(
    backend: str, size: int, data_dir: str, database_url: str | None
) -> dict[str, Any]:
    """Load `size` keys with bulk_load into one registry and with batches of at most 1,000
    (with deletions and a refill in between) into another; compare root and current rows."""
    hashes = sorted(bench_key_hash(n) for n in range(size))
    final = {key: b'{"kind":"certificate.state/1","sample":%d}' % i for i, key in enumerate(hashes)}
    bulk_dir, batch_dir = Path(data_dir) / "bulk", Path(data_dir) / "batches"
    bulk = open_bench_registry(str(bulk_dir), database_url)
    try:
        with bulk.log.write() as transaction:
            transaction.append({"kind": "bench.state/1"})
            loaded = bulk_load(
                transaction.session, transaction.next_index, hashes, [final[k] for k in hashes]
            )
        bulk_rows = current_rows(bulk)
    finally:
        bulk.close()
    batched = open_bench_registry(str(batch_dir), None)
    try:
        order = list(hashes)
        random.Random(size).shuffle(order)
        for start in range(0, size, 1_000):
            with batched.log.write() as transaction:
                transaction.append({"kind": "bench.state/1"})
                chunk = order[start : start + 1_000]
                apply_hashed_updates(
                    transaction.session, transaction.next_index, dict.fromkeys(chunk, b"first")
                )
        with batched.log.write() as transaction:
            transaction.append({"kind": "bench.state/1"})
            apply_hashed_updates(
                transaction.session, transaction.next_index, dict.fromkeys(order[::3])
            )
        for start in range(0, size, 1_000):
            with batched.log.write() as transaction:
                transaction.append({"kind": "bench.state/1"})
                chunk = order[start : start + 1_000]
                apply_hashed_updates(
                    transaction.session, transaction.next_index, {k: final[k] for k in chunk}
                )
        batched_root = StateMap(batched.database).root_at().root
        batched_rows = current_rows(batched)
    finally:
        batched.close()
    return {
        "backend_of_bulk_load": backend,
        "keys": size,
        "roots_equal": loaded.root == batched_root,
        "current_rows_equal": bulk_rows == batched_rows,
        "current_rows": len(bulk_rows),
        "bulk_matches_batches": loaded.root == batched_root and bulk_rows == batched_rows,
    }


def current_rows(registry: Registry) -> set[tuple[bytes, bytes | None]]:
    """(node, value) of the rows reachable from the current root (batches also keep older
    versions' rows, and row ids depend on the order of writing)."""
    with registry.database.read() as session:
        rows = {
            row_id: (bytes(node), left_id, right_id, None if value is None else bytes(value))
            for row_id, node, left_id, right_id, value in session.execute(
                select(
                    StateNode.id,
                    StateNode.node,
                    StateNode.left_id,
                    StateNode.right_id,
                    StateNode.value,
                )
            )
        }
        root_id = session.execute(
            select(StateRoot.root_id).order_by(StateRoot.version.desc()).limit(1)
        ).scalar_one()
    reachable: set[tuple[bytes, bytes | None]] = set()
    stack = [] if root_id is None else [root_id]
    while stack:
        node, left_id, right_id, value = rows[stack.pop()]
        reachable.add((node, value))
        stack.extend(child for child in (left_id, right_id) if child is not None)
    return reachable


# -------------------------------------------------------------------------- targets


def design_targets(runs: list[dict[str, Any]]) -> dict[str, Any]:
    at_ten_million = [run for run in runs if run["size_keys"] >= 10**7]
    if not at_ten_million:
        return {"proof_read_at_10e7": {"met": None, "why": "no run of >= 10^7 keys"}}
    medians = {
        f"{run['backend']}_{run['size_keys']}_{kind}_median_ms": run["proofs"][kind]["serve"][
            "median_ms"
        ]
        for run in at_ten_million
        for kind in ("members", "non_members")
    }
    return {
        "proof_read_at_10e7": {
            "target_median_ms": 1.0,
            "measured": medians,
            "met": all(value <= 1.0 for value in medians.values()),
        }
    }


def summary_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for run in runs:
        proofs = run["proofs"]
        rows.append(
            {
                "backend": run["backend"],
                "size_keys": run["size_keys"],
                "build_rate_keys_per_s": run["build"]["bulk_load_rate_keys_per_s"],
                "member_proof_median_ms": proofs["members"]["serve"]["median_ms"],
                "member_proof_p99_ms": proofs["members"]["serve"]["p99_ms"],
                "non_member_proof_median_ms": proofs["non_members"]["serve"]["median_ms"],
                "proof_with_verify_median_ms": proofs["members"]["serve_and_verify"]["median_ms"],
                "point_read_median_ms": proofs["point_read"]["median_ms"],
                "member_proof_over_point_read": proofs["member_proof_over_point_read_median"],
                "median_proof_siblings": proofs["proof_siblings"]["median"],
                "update_rate_keys_per_s_by_batch": {
                    str(item["batch_keys"]): item["rate_keys_per_s"] for item in run["updates"]
                },
                "bytes_per_key": run["disk"]["bytes_per_key_after_build"],
                "bytes_added_per_updated_key": run["disk"]["bytes_added_per_updated_key"],
                "peak_rss_mib": mib(run["memory"]["peak_rss_bytes"]),
            }
        )
    return rows


# ---------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    started = time.perf_counter()
    started_at = utc_timestamp()
    check_bench_encoding()
    machine = machine_description()
    backends, postgres, error = select_backends(
        args.pg_url, skip_postgres=not args.pg_sizes, optional=args.pg_optional, machine=machine
    )
    if error is not None:
        print(error, file=sys.stderr)
        return 2
    postgres["sizes_keys"] = list(args.pg_sizes) if "postgresql" in backends else []

    workdir = Path(tempfile.mkdtemp(prefix="carbonledger-bench-statemap-", dir=args.workdir))
    needed = BYTES_PER_KEY_ESTIMATE * max(args.sqlite_sizes, default=0)
    free = free_disk_bytes(workdir)
    if needed > free:
        shutil.rmtree(workdir, ignore_errors=True)
        print(
            f"error: the largest SQLite run needs ~{mib(needed):,} MiB in {workdir.parent}; "
            f"only {mib(free):,} MiB are free (use --workdir)",
            file=sys.stderr,
        )
        return 2
    progress(f"working in {workdir}")
    runs: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    try:
        for backend in backends:
            progress(f"bulk load vs batches on {args.sample:,} keys ({backend})")
            sample_dir = workdir / f"sample-{backend}"
            if backend == "sqlite":
                checks.append(
                    run_isolated(
                        check_bulk_matches_batches, backend, args.sample, str(sample_dir), None
                    )
                )
            else:
                with throwaway_postgres_database(args.pg_url, keep=False) as url:
                    checks.append(
                        run_isolated(
                            check_bulk_matches_batches, backend, args.sample, str(sample_dir), url
                        )
                    )
            shutil.rmtree(sample_dir, ignore_errors=True)
        for size in args.sqlite_sizes:
            data_dir = workdir / f"sqlite-{size}"
            runs.append(
                run_isolated(run_statemap_benchmark, run_config(args, "sqlite", size, data_dir))
            )
            if not args.keep:
                shutil.rmtree(data_dir, ignore_errors=True)
        if "postgresql" in backends:
            for size in args.pg_sizes:
                with throwaway_postgres_database(args.pg_url, keep=args.keep) as url:
                    config = run_config(args, "postgresql", size, workdir / f"pg-{size}", url)
                    runs.append(run_isolated(run_statemap_benchmark, config))
    finally:
        if args.keep:
            progress(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    total_s = round(time.perf_counter() - started, 1)
    progress(f"done in {total_s} s")
    emit_json(
        {
            "benchmark": "carbonledger state map: proof reads, updates, disk, memory",
            "format_version": 1,
            "started_at_utc": started_at,
            "finished_at_utc": utc_timestamp(),
            "total_wall_time_s": total_s,
            "command": [Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)],
            "config": {
                "quick": args.quick,
                "sqlite_sizes_keys": list(args.sqlite_sizes),
                "postgresql": postgres,
                "queries_per_kind": args.queries,
                "update_rounds_by_batch": {str(b): r for b, r in args.update_rounds},
                "new_key_share_of_updates": NEW_KEY_SHARE,
                "sample_keys": args.sample,
                "seed": args.seed,
                "key_example": bench_key_text(123).decode(),
                "value_example": bench_value(123).decode(),
                "notes": [
                    "one Python thread; PostgreSQL runs in its own server processes",
                    "each configuration runs in a fresh process: peak RSS is its own",
                    "latency percentiles are nearest-rank over the queries",
                    "other work on the machine lowers the figures: compare the load averages",
                ],
            },
            "machine": machine,
            "summary": summary_rows(runs),
            "targets": design_targets(runs),
            "bulk_load_checks": checks,
            "runs": runs,
        }
    )
    return 0


def run_config(
    args: argparse.Namespace, backend: str, size: int, data_dir: Path, url: str | None = None
) -> RunConfig:
    return RunConfig(
        backend=backend,
        size=size,
        queries=args.queries,
        update_rounds=tuple(args.update_rounds),
        seed=args.seed,
        data_dir=str(data_dir),
        database_url=url,
    )


def parse_size(text_value: str) -> int:
    value = parse_count(text_value)
    if value > MAX_BENCH_SIZE:
        raise argparse.ArgumentTypeError(
            f"refusing {value:,} keys: this benchmark's bound is 5*10^7 "
            "(a 10^7-key SQLite map already takes ~2.6 GB of disk, and as much again to build)"
        )
    return value


def parse_size_list(text_value: str) -> tuple[int, ...]:
    return tuple(parse_size(part) for part in text_value.split(",") if part.strip())


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes for the smoke test")
    parser.add_argument("--sqlite-sizes", type=parse_size_list, help="default 1e5,1e6,1e7")
    parser.add_argument("--pg-sizes", type=parse_size_list, help="default 1e6; '' skips")
    parser.add_argument("--queries", type=parse_size, help="proofs per kind (default 2000)")
    parser.add_argument("--sample", type=parse_size, help="keys of the bulk-vs-batches check")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL admin URL")
    parser.add_argument(
        "--pg-optional", action="store_true", help="skip PostgreSQL when it is unreachable"
    )
    parser.add_argument("--workdir", type=Path, help="parent of the temporary directory")
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    quick = args.quick
    if args.sqlite_sizes is None:
        args.sqlite_sizes = QUICK_SIZES if quick else FULL_SQLITE_SIZES
    if args.pg_sizes is None:
        args.pg_sizes = QUICK_SIZES if quick else FULL_PG_SIZES
    if args.queries is None:
        args.queries = QUICK_QUERIES if quick else FULL_QUERIES
    if args.sample is None:
        args.sample = QUICK_SAMPLE if quick else FULL_SAMPLE
    rounds = QUICK_UPDATE_ROUNDS if quick else FULL_UPDATE_ROUNDS
    args.update_rounds = sorted(rounds.items())
    return args


if __name__ == "__main__":
    sys.exit(main())
