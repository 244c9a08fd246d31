"""Concurrent writers never lose, repeat or skip an index (issue 2, "Tests").

Each writer is a separate process with its own engine (`ledger_writer.py appends`), so
the database's lock — PostgreSQL's row lock on the log head, SQLite's BEGIN IMMEDIATE
with its busy timeout — is what serialises them. All writers are released together
once every one has opened its registry. One more test runs threads that share one
`Registry`, as the API server does.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
from ledger_support import (
    WRITER_SCRIPT,
    open_test_registry,
    prefix_roots,
    read_all_entries,
    sqlite_url,
)
from ledger_writer import WRITER_KIND, writer_entry

from ledger.log.canonical import parse_entry
from ledger.log.merkle import verify_consistency, verify_inclusion
from ledger.log.store import recompute_root
from ledger.registry import Registry

WRITER_TIMEOUT_SECONDS = 150


def run_writer_processes(
    data_dir: Path, url: str, writers: int, appends: int
) -> tuple[dict[int, list[int]], float]:
    """Start `writers` processes, release them together, return the indices each got."""
    command = [sys.executable, str(WRITER_SCRIPT), "appends", "--data-dir", str(data_dir)]
    processes = [
        subprocess.Popen(
            [*command, "--url", url, "--writer", str(writer), "--count", str(appends)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for writer in range(writers)
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            line = process.stdout.readline()
            if line.strip() != "READY":
                process.kill()
                _, errors = process.communicate()
                pytest.fail(f"writer did not start: {line!r}\n{errors}")
        started = time.perf_counter()
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("GO\n")
            process.stdin.flush()
        returned: dict[int, list[int]] = {}
        for writer, process in enumerate(processes):
            output, errors = process.communicate(timeout=WRITER_TIMEOUT_SECONDS)
            assert process.returncode == 0, f"writer {writer} failed:\n{errors}"
            done = [line for line in output.splitlines() if line.startswith("DONE ")]
            assert len(done) == 1, f"writer {writer} printed {output!r}"
            returned[writer] = json.loads(done[0].removeprefix("DONE "))
        elapsed = time.perf_counter() - started
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return returned, elapsed


def check_log_after_writers(
    registry: Registry, writers: int, appends: int, returned: dict[int, list[int]]
) -> None:
    total = writers * appends
    head = registry.log.head()
    assert head.size == total

    # Every index the writers were given is a distinct member of 0..total-1.
    given = sorted(index for indices in returned.values() for index in indices)
    assert given == list(range(total)), "an index was repeated, skipped or lost"

    leaves = read_all_entries(registry)
    position: dict[tuple[int, int], int] = {}
    per_writer: defaultdict[int, list[int]] = defaultdict(list)
    for index, leaf in enumerate(leaves):
        entry = parse_entry(leaf)
        assert entry["kind"] == WRITER_KIND
        key = (entry["writer"], entry["seq"])
        assert key not in position, f"entry {key} stored twice (at {position[key]} and {index})"
        position[key] = index
        per_writer[entry["writer"]].append(entry["seq"])
    assert sorted(per_writer) == list(range(writers))
    for writer, sequence in per_writer.items():
        # Each writer's entries appear in the order it appended them, none missing.
        assert sequence == list(range(appends)), f"writer {writer} out of order or incomplete"
        # The index `append` returned is where the entry really is.
        assert returned[writer] == [position[(writer, seq)] for seq in range(appends)]

    assert recompute_root(leaves) == head.root
    roots = prefix_roots(leaves)
    assert roots[total] == head.root

    rng = random.Random(total)
    for _ in range(40):
        size1, size2 = sorted(rng.randint(1, total) for _ in range(2))
        proof = registry.log.consistency_proof(size1, size2)
        assert (proof.root1, proof.root2) == (roots[size1], roots[size2])
        verify_consistency(size1, size2, proof.hashes, roots[size1], roots[size2])
        index = rng.randrange(size2)
        inclusion = registry.log.inclusion_proof(index, size2)
        verify_inclusion(index, size2, inclusion.leaf_hash, inclusion.hashes, roots[size2])


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_eight_postgresql_writer_processes_thousand_appends_each(
    postgres_url: str, tmp_path: Path
) -> None:
    writers, appends = 8, 1000
    data_dir = tmp_path / "data"
    with open_test_registry(data_dir, postgres_url) as registry:
        returned, elapsed = run_writer_processes(data_dir, postgres_url, writers, appends)
        print(f"postgresql: {writers} x {appends} single-entry appends in {elapsed:.1f} s")
        check_log_after_writers(registry, writers, appends, returned)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_four_sqlite_writer_processes(tmp_path: Path) -> None:
    writers, appends = 4, 250
    data_dir = tmp_path / "data"
    url = sqlite_url(data_dir)
    with open_test_registry(data_dir, url) as registry:
        returned, elapsed = run_writer_processes(data_dir, url, writers, appends)
        print(f"sqlite: {writers} x {appends} single-entry appends in {elapsed:.1f} s")
        check_log_after_writers(registry, writers, appends, returned)


def test_threads_sharing_one_registry(registry: Registry) -> None:
    """Threads of one process (one engine and pool) append concurrently."""
    threads, appends = 4, 100
    barrier = threading.Barrier(threads)
    returned: dict[int, list[int]] = {}
    failures: list[BaseException] = []

    def work(writer: int) -> None:
        try:
            barrier.wait()
            indices: list[int] = []
            for seq in range(appends):
                indices.extend(registry.log.append([writer_entry(writer, seq)]))
            returned[writer] = indices
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    workers = [threading.Thread(target=work, args=(writer,)) for writer in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=WRITER_TIMEOUT_SECONDS)
    assert not failures, failures
    check_log_after_writers(registry, threads, appends, returned)
