#!/usr/bin/env python3
"""Benchmark of the carbonledger log: batched append, proof latency, memory, disk.

Measures what DESIGN §8 sets targets for (issue 2, item 7):
- batched append rate on SQLite (10^6 and 10^7 leaves) and PostgreSQL (10^6);
- inclusion- and consistency-proof latency (median, p90, p99) at intermediate sizes
  (10^5, 10^6, …) and at the final size, served alone and served plus verified;
- peak RSS, and RSS sampled along the appends, to show memory does not grow with the log;
- bytes on disk per leaf;
- references measured in the same run: the SHA-256 leaf-hashing floor on the same leaves,
  an in-memory RFC 9162 tree build, and pymerkle 7.0.0 (GPL-3.0, a test-only dependency
  used here only as an outside reference, never imported by carbonledger itself).

Prints one JSON document on stdout; progress goes to stderr. Every figure names its unit
in its key. Each configuration runs in a fresh process, so peak RSS is per configuration.

    .venv/bin/python scripts/bench/log.py                       # the full run (minutes)
    .venv/bin/python scripts/bench/log.py --quick               # seconds, for the smoke test
    .venv/bin/python scripts/bench/log.py --sqlite-sizes 1e6 --pg-sizes '' > result.json
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from _common import (
    DEFAULT_PG_URL,
    Profiler,
    current_rss_bytes,
    emit_json,
    free_disk_bytes,
    latency_summary_ms,
    machine_description,
    mib,
    parse_count,
    path_size_bytes,
    peak_rss_bytes,
    percentile,
    progress,
    rate,
    run_isolated,
    utc_timestamp,
)
from sqlalchemy import text
from sqlalchemy.engine import make_url

from ledger.log.canonical import canonical_entry
from ledger.log.merkle import leaf_hash, verify_consistency, verify_inclusion
from ledger.log.store import MAX_LEAVES_PER_TRANSACTION, Log, recompute_root
from ledger.registry import initialise_registry
from ledger.settings import LedgerSettings

MAX_BENCH_SIZE = 10**8
"""A 10^8-leaf SQLite log takes ~11 GB of disk (~108 bytes per leaf measured); refuse more
rather than fill the disk over a typo (1e9 for 1e6)."""
MAX_PYMERKLE_SIZE = 10**6
"""pymerkle's InmemoryTree keeps a Python object per node and appends one leaf at a time."""

FULL_SQLITE_SIZES = (10**6, 10**7)
FULL_PG_SIZES = (10**6,)
FULL_BATCH = 10_000
FULL_QUERIES = 1_000
FULL_REFERENCE_SIZE = 10**5
FULL_FLOOR_SIZE = 10**6
INTERMEDIATE_PROOF_SIZE_FLOOR = 10**5
"""Proofs are also measured at every power of ten from here up to the final size."""

QUICK_SIZES = (3_000,)
QUICK_BATCH = 500
QUICK_QUERIES = 50
QUICK_REFERENCE_SIZE = 1_000
QUICK_PROOF_SIZES = (1_000,)

DEFAULT_SEED = 9162
RSS_SAMPLE_PERCENTS = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
SQLITE_BYTES_PER_LEAF_ESTIMATE = 150
"""Disk needed per leaf, with margin (measured ~100 bytes incl. WAL); checked before a run."""

SHA256 = hashlib.sha256
LEAF_HASH_PREFIX = b"\x00"


# ------------------------------------------------------------------------------ leaves


def bench_leaf(n: int) -> bytes:
    """The n-th benchmark leaf: canonical JSON bytes, like every real log entry."""
    return b'{"kind":"bench/1","n":%d}' % n


def bench_leaves(start: int, end: int) -> list[bytes]:
    return [b'{"kind":"bench/1","n":%d}' % n for n in range(start, end)]


def check_leaves_are_canonical() -> None:
    """The fast byte template must produce exactly what the log's JCS encoder produces."""
    for n in (0, 1, 9, 10, 12_345, 10**7 - 1, MAX_BENCH_SIZE):
        assert bench_leaf(n) == canonical_entry({"kind": "bench/1", "n": n}), n


def hash_leaves(leaves: Sequence[bytes]) -> None:
    """The hashing floor: RFC 9162 leaf hashes of the batch, nothing else, in plain Python."""
    sha256, prefix = SHA256, LEAF_HASH_PREFIX
    for leaf in leaves:
        sha256(prefix + leaf).digest()


# ------------------------------------------------------------------------ configuration


@dataclass(frozen=True, slots=True)
class LogRunConfig:
    """One measured configuration; picklable, handed to a fresh process."""

    backend: str
    size: int
    batch: int
    proof_sizes: tuple[int, ...]
    queries: int
    seed: int
    data_dir: str
    database_url: str | None
    profile_dir: str | None


# ----------------------------------------------------------------- the carbonledger run


def run_log_benchmark(config: LogRunConfig) -> dict[str, Any]:
    """Append `config.size` leaves in batches, measuring proofs at each proof size."""
    run_started = time.perf_counter()
    label = f"{config.backend} {config.size:,}"
    rss_at_start = current_rss_bytes()
    registry = initialise_registry(
        LedgerSettings(data_dir=Path(config.data_dir), database_url=config.database_url)
    )
    log = registry.log
    rng = random.Random(config.seed)
    append_profiler = Profiler(config.profile_dir is not None)
    proof_profiler = Profiler(config.profile_dir is not None)

    batch_ns: list[int] = []
    batch_rates: list[float] = []
    generation_ns = 0
    hashing_ns = 0
    leaf_bytes = 0
    rss_samples: list[dict[str, Any]] = []
    sampled_leaves = sampled_ns = 0
    checkpoints: list[dict[str, Any]] = []
    percents = list(RSS_SAMPLE_PERCENTS)
    rss_before_appends = current_rss_bytes()
    appended = 0
    try:
        for stop in sorted({*config.proof_sizes, config.size}):
            while appended < stop:
                end = min(appended + config.batch, stop)
                # Leaves are built before the clock starts: their generation is not the log's.
                t0 = time.perf_counter_ns()
                leaves = bench_leaves(appended, end)
                t1 = time.perf_counter_ns()
                with append_profiler.active(), log.write() as transaction:
                    transaction.extend_canonical(leaves)
                t2 = time.perf_counter_ns()
                hash_leaves(leaves)
                t3 = time.perf_counter_ns()
                generation_ns += t1 - t0
                batch_ns.append(t2 - t1)
                batch_rates.append(len(leaves) / ((t2 - t1) / 1e9))
                hashing_ns += t3 - t2
                leaf_bytes += sum(map(len, leaves))
                appended = end
                if percents and appended * 100 >= percents[0] * config.size:
                    rss = current_rss_bytes()
                    # The rate of this stretch alone shows whether appends slow as the log grows.
                    timed_ns = sum(batch_ns)
                    stretch_rate = rate(appended - sampled_leaves, (timed_ns - sampled_ns) / 1e9)
                    sampled_leaves, sampled_ns = appended, timed_ns
                    while percents and appended * 100 >= percents[0] * config.size:
                        rss_samples.append(
                            {
                                "progress_pct": percents.pop(0),
                                "leaves": appended,
                                "rss_bytes": rss,
                                "append_rate_since_previous_sample_leaves_per_s": stretch_rate,
                            }
                        )
                    progress(
                        f"{label}: {appended:,} leaves, "
                        f"{rate(appended, sum(batch_ns) / 1e9):,.0f} leaves/s so far, "
                        f"RSS {mib(rss_samples[-1]['rss_bytes'])} MiB"
                    )
            with proof_profiler.active():
                checkpoint = measure_proofs(log, stop, config.queries, rng)
            checkpoint["cumulative_append_rate_leaves_per_s"] = rate(appended, sum(batch_ns) / 1e9)
            checkpoints.append(checkpoint)
            progress(
                f"{label}: proofs at {stop:,}: inclusion median "
                f"{checkpoint['inclusion']['serve']['median_ms']} ms, consistency median "
                f"{checkpoint['consistency']['serve']['median_ms']} ms"
            )
        assert log.head().size == config.size, "the log must hold exactly the appended leaves"
        disk = measure_disk(registry.database.dialect, registry.database.engine, config)
    finally:
        registry.close()
    if config.backend == "sqlite":
        # Closed now, so the WAL is checkpointed and the files hold everything.
        disk.update(sqlite_file_sizes(Path(config.data_dir), config.size))

    if config.profile_dir is not None:
        stem = Path(config.profile_dir) / f"{config.backend}-{config.size}"
        append_profiler.save(stem.with_name(stem.name + "-append.pstats"), f"{label} append")
        proof_profiler.save(stem.with_name(stem.name + "-proofs.pstats"), f"{label} proofs")

    append_s = sum(batch_ns) / 1e9
    append_rate = rate(config.size, append_s)
    hash_rate = rate(config.size, hashing_ns / 1e9)
    sorted_rates = sorted(batch_rates)
    return {
        "backend": config.backend,
        "size_leaves": config.size,
        "profiled": config.profile_dir is not None,
        "append": {
            "leaves": config.size,
            "batch_leaves": config.batch,
            "batches": len(batch_ns),
            "mean_leaf_bytes": round(leaf_bytes / config.size, 1),
            "timed_append_s": round(append_s, 3),
            "append_rate_leaves_per_s": append_rate,
            "median_batch_rate_leaves_per_s": round(statistics.median(batch_rates), 1),
            "p10_batch_rate_leaves_per_s": round(percentile(sorted_rates, 0.10), 1),
            "slowest_batch_ms": round(max(batch_ns) / 1e6, 3),
            "leaf_generation_s": round(generation_ns / 1e9, 3),
            "note": "one transaction (commit included) per batch; leaf generation untimed",
        },
        "hash_floor": {
            "what": "hashlib SHA-256 RFC 9162 leaf hash of the same leaves, plain Python loop",
            "seconds_s": round(hashing_ns / 1e9, 3),
            "leaf_hash_rate_leaves_per_s": hash_rate,
            "append_rate_over_leaf_hash_rate": round(append_rate / hash_rate, 4),
        },
        "proofs": checkpoints,
        "memory": {
            "rss_at_process_start_bytes": rss_at_start,
            "rss_before_appends_bytes": rss_before_appends,
            "rss_samples": rss_samples,
            "rss_growth_10pct_to_100pct_bytes": rss_samples[-1]["rss_bytes"]
            - rss_samples[0]["rss_bytes"],
            # The kernel's high-water mark is updated lazily; a sample can exceed it slightly.
            "peak_rss_bytes": max(peak_rss_bytes(), *(s["rss_bytes"] for s in rss_samples)),
        },
        "disk": disk,
        "wall_time_s": round(time.perf_counter() - run_started, 1),
    }


def measure_proofs(log: Log, tree_size: int, queries: int, rng: random.Random) -> dict[str, Any]:
    """Random inclusion and consistency proofs against the tree of `tree_size` (the head).

    Each proof is verified with the pure verifiers against values the benchmark knows
    independently of the proof: the leaf hash recomputed from the leaf's bytes and the
    root recorded in the head (a consistency proof's old root is the log's own, as a
    client holding an older checkpoint would have it). Serve and verify are timed apart.
    """
    head = log.head()
    assert head.size == tree_size
    serve_ns: list[int] = []
    verify_ns: list[int] = []
    for _ in range(queries):
        index = rng.randrange(tree_size)
        expected_leaf_hash = leaf_hash(bench_leaf(index))
        t0 = time.perf_counter_ns()
        inclusion = log.inclusion_proof(index, tree_size)
        t1 = time.perf_counter_ns()
        verify_inclusion(index, tree_size, expected_leaf_hash, inclusion.hashes, head.root)
        t2 = time.perf_counter_ns()
        serve_ns.append(t1 - t0)
        verify_ns.append(t2 - t1)
    inclusion_result = proof_latencies(serve_ns, verify_ns)

    serve_ns, verify_ns = [], []
    for _ in range(queries):
        old_size = rng.randint(1, tree_size)
        t0 = time.perf_counter_ns()
        consistency = log.consistency_proof(old_size, tree_size)
        t1 = time.perf_counter_ns()
        verify_consistency(old_size, tree_size, consistency.hashes, consistency.root1, head.root)
        t2 = time.perf_counter_ns()
        serve_ns.append(t1 - t0)
        verify_ns.append(t2 - t1)
    return {
        "tree_size": tree_size,
        "root": head.root.hex(),
        "inclusion": inclusion_result,
        "consistency": proof_latencies(serve_ns, verify_ns),
    }


def proof_latencies(serve_ns: list[int], verify_ns: list[int]) -> dict[str, Any]:
    return {
        "queries": len(serve_ns),
        "verified": len(verify_ns),
        "serve": latency_summary_ms(serve_ns),
        "verify": latency_summary_ms(verify_ns),
        "serve_and_verify": latency_summary_ms(
            [serve + verify for serve, verify in zip(serve_ns, verify_ns, strict=True)]
        ),
    }


def measure_disk(dialect: str, engine: Any, config: LogRunConfig) -> dict[str, Any]:
    """Per-table sizes as the database reports them."""
    if dialect == "postgresql":
        with engine.connect() as connection:
            row = connection.execute(
                text(
                    "SELECT pg_database_size(current_database()), "
                    "pg_total_relation_size('log_entry'), pg_total_relation_size('log_tile')"
                )
            ).one()
        database_bytes, entry_bytes, tile_bytes = (int(value) for value in row)
        return {
            "database_bytes": database_bytes,
            "log_entry_table_bytes": entry_bytes,
            "log_tile_table_bytes": tile_bytes,
            "bytes_per_leaf": round(database_bytes / config.size, 1),
            "log_tables_bytes_per_leaf": round((entry_bytes + tile_bytes) / config.size, 1),
        }
    # A raw DBAPI connection: SQLAlchemy would wrap these pragmas in a transaction, where a
    # WAL checkpoint cannot run.
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        try:
            cursor.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")
            tables = {name: int(size) for name, size in cursor.fetchall()}
        except Exception:  # dbstat is a compile-time option of SQLite
            tables = {}
        cursor.close()
    finally:
        raw.close()
    result: dict[str, Any] = {}
    if tables:
        result["log_entry_table_bytes"] = tables.get("log_entry")
        result["log_tile_table_bytes"] = tables.get("log_tile")
    return result


def sqlite_file_sizes(data_dir: Path, size: int) -> dict[str, Any]:
    database = data_dir / "carbonledger.db"
    files = {
        path.name: path.stat().st_size
        for path in (database, database.with_name(database.name + "-wal"))
        if path.exists()
    }
    total = sum(files.values())
    return {
        "files_bytes": files,
        "database_bytes": total,
        "bytes_per_leaf": round(total / size, 1),
    }


# ------------------------------------------------------------------------- references


def run_floor_reference(size: int, batch: int) -> dict[str, Any]:
    """Pure-Python hashing floors over the benchmark's leaves, with no storage at all."""
    leaves = bench_leaves(0, size)
    t0 = time.perf_counter_ns()
    for start in range(0, size, batch):
        hash_leaves(leaves[start : start + batch])
    t1 = time.perf_counter_ns()
    root = recompute_root(leaves)
    t2 = time.perf_counter_ns()
    return {
        "leaves": size,
        "leaf_hash_rate_leaves_per_s": rate(size, (t1 - t0) / 1e9),
        "in_memory_tree_rate_leaves_per_s": rate(size, (t2 - t1) / 1e9),
        "in_memory_tree_what": (
            "ledger.log.store.recompute_root: leaf and interior hashes, no storage"
        ),
        "root": root.hex(),
    }


def run_pymerkle_reference(
    size: int, batch: int, queries: int, seed: int, data_dir: str
) -> dict[str, Any]:
    """pymerkle 7.0.0 through its documented API: InmemoryTree and SqliteTree, sha256."""
    import pymerkle  # noqa: PLC0415 - GPL reference, imported only inside this measurement

    leaves = bench_leaves(0, size)
    result: dict[str, Any] = {
        "version": pymerkle.__version__,
        "license": "GPL-3.0 (test-only dependency; never imported by carbonledger)",
        "size_leaves": size,
    }

    def inmemory_append(tree: Any, chunk: Sequence[bytes]) -> None:
        for leaf in chunk:
            tree.append_entry(leaf)

    def sqlite_append(tree: Any, chunk: Sequence[bytes]) -> None:
        tree.append_entries(chunk)

    inmemory = pymerkle.InmemoryTree(algorithm="sha256")
    result["inmemory_tree"] = measure_pymerkle_tree(
        inmemory, inmemory_append, leaves, batch, queries, seed, pymerkle
    )
    result["inmemory_tree"]["append_api"] = "InmemoryTree.append_entry per leaf"
    del inmemory

    database = Path(data_dir) / "pymerkle.db"
    database.parent.mkdir(parents=True, exist_ok=True)
    with pymerkle.SqliteTree(str(database), algorithm="sha256") as on_disk:
        result["sqlite_tree"] = measure_pymerkle_tree(
            on_disk, sqlite_append, leaves, batch, queries, seed, pymerkle
        )
    result["sqlite_tree"]["append_api"] = "SqliteTree.append_entries per batch"
    result["sqlite_tree"]["database_bytes"] = path_size_bytes(database)
    result["peak_rss_bytes"] = peak_rss_bytes()
    return result


def measure_pymerkle_tree(
    tree: Any,
    append: Callable[[Any, Sequence[bytes]], None],
    leaves: Sequence[bytes],
    batch: int,
    queries: int,
    seed: int,
    pymerkle: Any,
) -> dict[str, Any]:
    size = len(leaves)
    batch_ns: list[int] = []
    batch_rates: list[float] = []
    for start in range(0, size, batch):
        chunk = leaves[start : start + batch]
        t0 = time.perf_counter_ns()
        append(tree, chunk)
        elapsed = time.perf_counter_ns() - t0
        batch_ns.append(elapsed)
        batch_rates.append(len(chunk) / (elapsed / 1e9))
    assert tree.get_size() == size
    root = tree.get_root()
    rng = random.Random(seed)

    serve_ns: list[int] = []
    verify_ns: list[int] = []
    for _ in range(queries):
        index = rng.randrange(size)
        expected_leaf_hash = leaf_hash(bench_leaf(index))
        t0 = time.perf_counter_ns()
        proof = tree.prove_inclusion(index + 1, size)  # pymerkle counts leaves from one
        t1 = time.perf_counter_ns()
        pymerkle.verify_inclusion(expected_leaf_hash, root, proof)
        t2 = time.perf_counter_ns()
        serve_ns.append(t1 - t0)
        verify_ns.append(t2 - t1)
    inclusion = proof_latencies(serve_ns, verify_ns)

    serve_ns, verify_ns = [], []
    for _ in range(queries):
        old_size = rng.randint(1, size)
        old_root = tree.get_root(old_size)  # untimed: the verifier's own knowledge
        t0 = time.perf_counter_ns()
        proof = tree.prove_consistency(old_size, size)
        t1 = time.perf_counter_ns()
        pymerkle.verify_consistency(old_root, root, proof)
        t2 = time.perf_counter_ns()
        serve_ns.append(t1 - t0)
        verify_ns.append(t2 - t1)
    append_s = sum(batch_ns) / 1e9
    return {
        "timed_append_s": round(append_s, 3),
        "append_rate_leaves_per_s": rate(size, append_s),
        "median_batch_rate_leaves_per_s": round(statistics.median(batch_rates), 1),
        "root": root.hex(),
        "proofs": {
            "tree_size": size,
            "inclusion": inclusion,
            "consistency": proof_latencies(serve_ns, verify_ns),
        },
    }


# --------------------------------------------------------------------------- PostgreSQL


def postgres_server_facts(admin_url: str) -> dict[str, str]:
    with psycopg.connect(admin_url, connect_timeout=5) as connection:
        facts = {}
        for setting in ("server_version", "synchronous_commit", "fsync", "shared_buffers"):
            row = connection.execute(f"SHOW {setting}").fetchone()
            assert row is not None
            facts[setting] = str(row[0])
        return facts


def select_backends(
    url: str, *, skip_postgres: bool, optional: bool, machine: dict[str, Any]
) -> tuple[list[str], dict[str, Any], str | None]:
    """(backends, postgres facts for the JSON, error): SQLite always; PostgreSQL unless told
    to skip it, or when it is unreachable and optional. The server's facts go into `machine`;
    `error` is the line to exit with when PostgreSQL was required but is unreachable."""
    postgres: dict[str, Any] = {"url": redact(url)}
    if skip_postgres:
        return ["sqlite"], postgres, None
    try:
        machine["postgresql"] = postgres_server_facts(url)
        machine["postgresql_version"] = machine["postgresql"]["server_version"]
        return ["sqlite", "postgresql"], postgres, None
    except psycopg.Error as exc:
        reason = f"PostgreSQL unreachable at {redact(url)}: {exc}".strip()
        if not optional:
            return ["sqlite"], postgres, f"error: {reason} (use --no-pg or --pg-optional)"
        progress(f"skipping PostgreSQL: {reason}")
        postgres["skipped"] = reason
        return ["sqlite"], postgres, None


@contextmanager
def throwaway_postgres_database(admin_url: str, *, keep: bool) -> Iterator[str]:
    """A fresh database for one run, dropped afterwards (even after a failure)."""
    name = "carbonledger_bench_" + uuid.uuid4().hex[:12]
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        if keep:
            progress(f"kept PostgreSQL database {name}")
        else:
            with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ------------------------------------------------------------------------ the whole run


def proof_sizes_for(size: int, explicit: Sequence[int] | None) -> tuple[int, ...]:
    """Where proofs are measured besides the final size: powers of ten from 10^5 by default."""
    if explicit is not None:
        return tuple(sorted(s for s in explicit if 0 < s < size))
    sizes = []
    power = INTERMEDIATE_PROOF_SIZE_FLOOR
    while power < size:
        sizes.append(power)
        power *= 10
    return tuple(sizes)


def compare(
    runs: list[dict[str, Any]], floor: dict[str, Any] | None, reference: dict[str, Any] | None
) -> dict[str, Any]:
    """Ratios between carbonledger and the references, and agreement of their roots."""
    result: dict[str, Any] = {}
    roots = {
        (run["backend"], checkpoint["tree_size"]): checkpoint["root"]
        for run in runs
        for checkpoint in run["proofs"]
    }
    if floor is not None:
        stored = {root for (_, size), root in roots.items() if size == floor["leaves"]}
        result["floor_root_matches_log"] = (floor["root"] in stored) if stored else None
        for run in runs:
            key = f"{run['backend']}_{run['size_leaves']}_append_over_in_memory_tree"
            result[key] = round(
                run["append"]["append_rate_leaves_per_s"]
                / floor["in_memory_tree_rate_leaves_per_s"],
                4,
            )
    if reference is None:
        return result
    size = reference["size_leaves"]
    for run in runs:
        checkpoint = next((item for item in run["proofs"] if item["tree_size"] == size), None)
        if checkpoint is None:
            continue
        prefix = f"{run['backend']}_{run['size_leaves']}_vs_pymerkle_at_{size}"
        for tree in ("inmemory_tree", "sqlite_tree"):
            theirs = reference[tree]
            result[f"{prefix}_{tree}"] = {
                "append_rate_carbonledger_over_pymerkle": round(
                    checkpoint["cumulative_append_rate_leaves_per_s"]
                    / theirs["append_rate_leaves_per_s"],
                    2,
                ),
                "inclusion_median_latency_pymerkle_over_carbonledger": round(
                    theirs["proofs"]["inclusion"]["serve"]["median_ms"]
                    / checkpoint["inclusion"]["serve"]["median_ms"],
                    2,
                ),
                "consistency_median_latency_pymerkle_over_carbonledger": round(
                    theirs["proofs"]["consistency"]["serve"]["median_ms"]
                    / checkpoint["consistency"]["serve"]["median_ms"],
                    2,
                ),
                "roots_equal": theirs["root"] == checkpoint["root"],
            }
    return result


def design_targets(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """DESIGN §8 targets next to what this run measured (measured, not enforced)."""
    sqlite_runs = [run for run in runs if run["backend"] == "sqlite"]
    big_sqlite = [run for run in sqlite_runs if run["size_leaves"] >= 10**6]
    targets: dict[str, Any] = {}
    if big_sqlite:
        slowest = min(run["append"]["append_rate_leaves_per_s"] for run in big_sqlite)
        targets["sqlite_batched_append"] = {
            "target_leaves_per_s": 200_000,
            "measured_slowest_run_leaves_per_s": slowest,
            "met": slowest >= 200_000,
        }
    else:
        targets["sqlite_batched_append"] = {"met": None, "why": "no SQLite run of >= 10^6"}
    at_ten_million = [run for run in runs if run["size_leaves"] >= 10**7]
    if at_ten_million:
        medians = {
            f"{run['backend']}_{run['size_leaves']}_{kind}_median_ms": run["proofs"][-1][kind][
                "serve"
            ]["median_ms"]
            for run in at_ten_million
            for kind in ("inclusion", "consistency")
        }
        targets["proof_latency_at_10e7"] = {
            "target_median_ms": 1.0,
            "measured": medians,
            "met": all(value <= 1.0 for value in medians.values()),
        }
    else:
        targets["proof_latency_at_10e7"] = {"met": None, "why": "no run of >= 10^7 leaves"}
    if len(sqlite_runs) >= 2:
        smallest = min(sqlite_runs, key=lambda run: run["size_leaves"])
        largest = max(sqlite_runs, key=lambda run: run["size_leaves"])
        ratio = largest["memory"]["peak_rss_bytes"] / smallest["memory"]["peak_rss_bytes"]
        targets["memory_flat_in_log_size"] = {
            "criterion": "peak RSS of the largest SQLite run within 10% of the smallest's",
            "sizes_leaves": [smallest["size_leaves"], largest["size_leaves"]],
            "peak_rss_bytes": [
                smallest["memory"]["peak_rss_bytes"],
                largest["memory"]["peak_rss_bytes"],
            ],
            "peak_rss_ratio": round(ratio, 3),
            "met": ratio <= 1.10,
        }
    else:
        targets["memory_flat_in_log_size"] = {"met": None, "why": "needs two SQLite sizes"}
    return targets


def summary_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per configuration: the figures a README table shows."""
    rows = []
    for run in runs:
        final = run["proofs"][-1]
        rows.append(
            {
                "backend": run["backend"],
                "size_leaves": run["size_leaves"],
                "append_rate_leaves_per_s": run["append"]["append_rate_leaves_per_s"],
                "median_batch_rate_leaves_per_s": run["append"]["median_batch_rate_leaves_per_s"],
                "append_over_leaf_hash_rate": run["hash_floor"]["append_rate_over_leaf_hash_rate"],
                "inclusion_median_ms": final["inclusion"]["serve"]["median_ms"],
                "inclusion_p99_ms": final["inclusion"]["serve"]["p99_ms"],
                "consistency_median_ms": final["consistency"]["serve"]["median_ms"],
                "consistency_p99_ms": final["consistency"]["serve"]["p99_ms"],
                "inclusion_with_verify_median_ms": final["inclusion"]["serve_and_verify"][
                    "median_ms"
                ],
                "consistency_with_verify_median_ms": final["consistency"]["serve_and_verify"][
                    "median_ms"
                ],
                "peak_rss_mib": mib(run["memory"]["peak_rss_bytes"]),
                "disk_bytes_per_leaf": run["disk"].get("bytes_per_leaf"),
                "wall_time_s": run["wall_time_s"],
            }
        )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    started = time.perf_counter()
    check_leaves_are_canonical()
    started_at = utc_timestamp()
    machine = machine_description()

    postgres: dict[str, Any] = {"url": redact(args.pg_url), "sizes_leaves": list(args.pg_sizes)}
    pg_sizes = args.pg_sizes
    if pg_sizes:
        try:
            machine["postgresql"] = postgres_server_facts(args.pg_url)
            machine["postgresql_version"] = machine["postgresql"]["server_version"]
        except psycopg.Error as exc:
            reason = f"PostgreSQL unreachable at {redact(args.pg_url)}: {exc}".strip()
            if not args.pg_optional:
                print(
                    f"error: {reason}\n(pass --pg-sizes '' to measure SQLite only, or "
                    "--pg-optional to skip PostgreSQL when it is unreachable)",
                    file=sys.stderr,
                )
                return 2
            progress(f"skipping PostgreSQL: {reason}")
            postgres["skipped"] = reason
            pg_sizes = ()

    workdir = Path(tempfile.mkdtemp(prefix="carbonledger-bench-", dir=args.workdir))
    # SQLite runs are deleted one after the other, so only the largest must fit.
    needed = SQLITE_BYTES_PER_LEAF_ESTIMATE * max(args.sqlite_sizes, default=0)
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
    floor = reference = None
    try:
        if args.floor_size:
            progress(f"hashing floor over {args.floor_size:,} leaves")
            floor = run_isolated(run_floor_reference, args.floor_size, args.batch)
        if args.pymerkle_size:
            progress(f"pymerkle reference at {args.pymerkle_size:,} leaves")
            reference = run_isolated(
                run_pymerkle_reference,
                args.pymerkle_size,
                args.batch,
                args.queries,
                args.seed,
                str(workdir / "pymerkle"),
            )
        for size in args.sqlite_sizes:
            data_dir = workdir / f"sqlite-{size}"
            runs.append(run_isolated(run_log_benchmark, log_config(args, "sqlite", size, data_dir)))
            if not args.keep:
                shutil.rmtree(data_dir, ignore_errors=True)
        for size in pg_sizes:
            with throwaway_postgres_database(args.pg_url, keep=args.keep) as url:
                config = log_config(args, "postgresql", size, workdir / f"pg-{size}", url)
                runs.append(run_isolated(run_log_benchmark, config))
    finally:
        if args.keep:
            progress(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    total_s = round(time.perf_counter() - started, 1)
    progress(f"done in {total_s} s")
    emit_json(
        {
            "benchmark": "carbonledger log: batched append and proof latency",
            "format_version": 1,
            "started_at_utc": started_at,
            "finished_at_utc": utc_timestamp(),
            "total_wall_time_s": total_s,
            "command": [Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)],
            "config": {
                "quick": args.quick,
                "sqlite_sizes_leaves": list(args.sqlite_sizes),
                "postgresql": postgres,
                "batch_leaves": args.batch,
                "queries_per_proof_kind": args.queries,
                "seed": args.seed,
                "profiled": args.profile is not None,
                "leaf_example": bench_leaf(123).decode(),
                "notes": [
                    "the benchmark runs on one Python thread; PostgreSQL runs in its own "
                    "server processes",
                    "each configuration runs in a fresh process: peak RSS is its own",
                    "latency percentiles are nearest-rank over the queries",
                    "other work on the machine lowers the figures: compare the load averages "
                    "at start and end",
                ],
            },
            "machine": machine
            | {"load_average_1_5_15_at_end": [round(value, 2) for value in os.getloadavg()]},
            "summary": summary_rows(runs),
            "targets": design_targets(runs),
            "runs": runs,
            "reference": {"hashing_floor": floor, "pymerkle": reference},
            "comparisons": compare(runs, floor, reference),
        }
    )
    return 0


def log_config(
    args: argparse.Namespace,
    backend: str,
    size: int,
    data_dir: Path,
    database_url: str | None = None,
) -> LogRunConfig:
    return LogRunConfig(
        backend=backend,
        size=size,
        batch=args.batch,
        proof_sizes=proof_sizes_for(size, args.proof_sizes),
        queries=args.queries,
        seed=args.seed,
        data_dir=str(data_dir),
        database_url=database_url,
        profile_dir=str(args.profile) if args.profile else None,
    )


def redact(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


# -------------------------------------------------------------------------- arguments


def parse_size(text_value: str) -> int:
    """An integer count of leaves: 1000000, 1_000_000, 1e6 or 10^6."""
    value = parse_count(text_value)
    if value > MAX_BENCH_SIZE:
        raise argparse.ArgumentTypeError(
            f"refusing {value:,} leaves: this benchmark's bound is 10^8 "
            "(a 10^8-leaf SQLite log already takes ~11 GB of disk)"
        )
    return value


def parse_size_list(text_value: str) -> tuple[int, ...]:
    """Comma-separated sizes; an empty string means none (e.g. --pg-sizes '' skips PG)."""
    return tuple(parse_size(part) for part in text_value.split(",") if part.strip())


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"tiny sizes ({QUICK_SIZES[0]:,} leaves) for the smoke test; explicit flags win",
    )
    parser.add_argument(
        "--sqlite-sizes", type=parse_size_list, help="default 1000000,10000000 (quick: 3000)"
    )
    parser.add_argument("--pg-sizes", type=parse_size_list, help="default 1000000 (quick: 3000)")
    parser.add_argument(
        "--proof-sizes",
        type=parse_size_list,
        help="intermediate sizes where proofs are measured (default: 10^5, 10^6, … below "
        "each run's final size; quick: 1000)",
    )
    parser.add_argument("--batch", type=parse_size, help="leaves per transaction (default 10000)")
    parser.add_argument("--queries", type=parse_size, help="proofs per kind and size (1000)")
    parser.add_argument(
        "--pymerkle-size",
        type=int,
        help="pymerkle reference size, 0 to skip (default 100000; quick: 1000)",
    )
    parser.add_argument(
        "--floor-size",
        type=int,
        help="leaves for the in-memory hashing floor, 0 to skip (default 1000000; quick: 3000)",
    )
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL admin URL")
    parser.add_argument(
        "--pg-optional",
        action="store_true",
        help="skip PostgreSQL when unreachable instead of failing",
    )
    parser.add_argument("--workdir", type=Path, help="parent of the temporary directory")
    parser.add_argument(
        "--keep", action="store_true", help="keep the SQLite files and PostgreSQL databases"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the queries")
    parser.add_argument(
        "--profile",
        type=Path,
        help="write cProfile stats of the append and proof phases to this directory "
        "(profiling slows everything: the figures of such a run are not comparable)",
    )
    args = parser.parse_args(argv)

    def pick(value: Any, full: Any, quick: Any) -> Any:
        return value if value is not None else (quick if args.quick else full)

    args.sqlite_sizes = pick(args.sqlite_sizes, FULL_SQLITE_SIZES, QUICK_SIZES)
    args.pg_sizes = pick(args.pg_sizes, FULL_PG_SIZES, QUICK_SIZES)
    args.proof_sizes = pick(args.proof_sizes, None, QUICK_PROOF_SIZES)
    args.batch = pick(args.batch, FULL_BATCH, QUICK_BATCH)
    args.queries = pick(args.queries, FULL_QUERIES, QUICK_QUERIES)
    args.pymerkle_size = pick(args.pymerkle_size, FULL_REFERENCE_SIZE, QUICK_REFERENCE_SIZE)
    args.floor_size = pick(args.floor_size, FULL_FLOOR_SIZE, QUICK_SIZES[0])
    if args.batch > MAX_LEAVES_PER_TRANSACTION:
        parser.error(f"--batch is at most {MAX_LEAVES_PER_TRANSACTION:,} (the log's limit)")
    if not 0 <= args.pymerkle_size <= MAX_PYMERKLE_SIZE:
        parser.error(f"--pymerkle-size is 0..{MAX_PYMERKLE_SIZE:,} (its tree lives in memory)")
    if not 0 <= args.floor_size <= MAX_BENCH_SIZE:
        parser.error("--floor-size is 0..10^8")
    if not args.sqlite_sizes and not args.pg_sizes:
        parser.error("nothing to measure: give --sqlite-sizes and/or --pg-sizes")
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    return args


if __name__ == "__main__":
    sys.exit(main())
