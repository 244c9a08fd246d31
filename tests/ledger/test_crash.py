"""A writer killed with SIGKILL in the middle of batch appends leaves a consistent prefix.

The writer (`ledger_writer.py batches`) appends 200 deterministic leaves per transaction
and prints "ACK <size>" after each commit. The test kills it at a random moment after at
least five acknowledgements, then checks on the same database: every acknowledged
append is present byte for byte, nothing of a partial batch is, the root recomputes,
every stored node tile holds exactly the complete nodes of the stored leaves, proofs
verify, and appending resumes at the old size. Three kills per backend, on one log.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ledger_support import (
    WRITER_SCRIPT,
    check_stored_tiles,
    prefix_roots,
    read_all_entries,
)
from ledger_writer import crash_leaf

from ledger.log.merkle import verify_consistency, verify_inclusion
from ledger.log.store import recompute_root
from ledger.registry import Registry
from ledger.settings import LedgerSettings

BATCH = 200
KILLS = 3
MIN_ACKS = 5


def run_and_kill_writer(settings: LedgerSettings, rng: random.Random, log_file: Path) -> list[int]:
    """Start a batch writer, SIGKILL it mid-work after >= MIN_ACKS acks; return all acks."""
    command = [
        sys.executable,
        str(WRITER_SCRIPT),
        "batches",
        "--data-dir",
        str(settings.data_dir),
        "--url",
        settings.resolved_database_url(),
        "--batch",
        str(BATCH),
    ]
    wanted = MIN_ACKS + rng.randrange(10)
    with log_file.open("w") as errors:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True)
        try:
            assert process.stdout is not None
            acks: list[int] = []
            while len(acks) < wanted:
                line = process.stdout.readline()
                if not line:
                    process.wait()
                    pytest.fail(f"writer exited early:\n{log_file.read_text()}")
                acks.append(int(line.removeprefix("ACK ")))
            # Let it get into the next transaction(s), then kill it without warning.
            time.sleep(rng.uniform(0.0, 0.05))
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
            assert process.returncode == -signal.SIGKILL
            # Acks printed before the kill but not read yet count as acknowledged too.
            acks.extend(
                int(line.removeprefix("ACK ")) for line in process.stdout.read().splitlines()
            )
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
    return acks


def check_after_crash(registry: Registry, earlier_sizes: list[int], acks: list[int]) -> int:
    head = registry.log.head()
    last_ack = acks[-1]
    assert acks == list(range(acks[0], last_ack + 1, BATCH)), "acks are not one per batch"
    # Everything acknowledged is there; at most the one batch that committed while the
    # writer was being killed (its ACK never printed) is there in addition.
    assert last_ack <= head.size <= last_ack + BATCH
    assert head.size % BATCH == 0, f"size {head.size} holds part of a batch"

    leaves = read_all_entries(registry)
    # … and nothing beyond the head: no leaf of the interrupted batch was left behind.
    assert registry.log.entries(head.size, head.size + BATCH * 4) == []
    for index, leaf in enumerate(leaves):
        assert leaf == crash_leaf(index), f"entry {index} differs from what was appended"

    assert recompute_root(leaves) == head.root
    roots = prefix_roots(leaves)
    assert roots[head.size] == head.root
    check_stored_tiles(registry, leaves)

    for size in sorted({*earlier_sizes, *acks}):
        assert registry.log.root_at(size) == roots[size]
        if size:
            consistency = registry.log.consistency_proof(size)
            verify_consistency(size, head.size, consistency.hashes, roots[size], head.root)
    rng = random.Random(head.size)
    for index in {0, head.size - 1, last_ack - 1, *rng.sample(range(head.size), 30)}:
        proof = registry.log.inclusion_proof(index)
        assert proof.root == head.root
        verify_inclusion(index, head.size, proof.leaf_hash, proof.hashes, head.root)
    return head.size


def resume(registry: Registry, size: int) -> int:
    """A new writer continues exactly at the old size."""
    with registry.log.write() as transaction:
        assert transaction.next_index == size
        indices = transaction.extend_canonical([crash_leaf(i) for i in range(size, size + BATCH)])
    assert indices == range(size, size + BATCH)
    head = registry.log.head()
    assert head.size == size + BATCH
    assert head.root == recompute_root(read_all_entries(registry))
    return head.size


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigkill_mid_batch_leaves_a_consistent_prefix(registry: Registry, tmp_path: Path) -> None:
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    sizes = [0]
    for kill in range(KILLS):
        acks = run_and_kill_writer(registry.settings, rng, tmp_path / f"writer-{kill}.log")
        assert len(acks) >= MIN_ACKS
        assert acks[0] == sizes[-1] + BATCH, f"the writer did not start at the head (seed {seed})"
        size = check_after_crash(registry, sizes, acks)
        print(f"kill {kill}: last ack {acks[-1]}, size after crash {size} (seed {seed})")
        sizes.append(size)
        sizes.append(resume(registry, size))
