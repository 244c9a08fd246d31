"""Writers in parallel, readers beside them, and every root recomputed from the log alone.

Each writer thread has its own registry (its own engine and pool), so the database's writer
lock is what serialises them — and what the map's row numbering relies on. Every transaction's
entry carries the state changes it makes, so the test can do what `audit replay` will do:
read the entries in log order, derive the changes from them, recompute every version's root
in memory and compare it with every stored root.
"""

from __future__ import annotations

import random
import threading
from typing import Any

from sqlalchemy import select
from statemap_support import open_registry_at

from ledger.log.canonical import parse_entry
from ledger.registry import Registry
from ledger.settings import LedgerSettings
from ledger.statemap.keys import Namespace, StateKey, encode_value
from ledger.statemap.models import StateRoot
from ledger.statemap.proof import verify_state
from ledger.statemap.store import StateMap, state_updates
from ledger.statemap.tree import MemoryStateMap

WRITERS = 3
TRANSACTIONS_PER_WRITER = 15
KIND = "test.state-change/1"


def value_of(key: StateKey, n: int) -> bytes:
    return encode_value(key, {"kind": "certificate.state/1", "n": n})


def writer(settings: LedgerSettings, number: int, errors: list[BaseException]) -> None:
    rng = random.Random(number)
    try:
        with open_registry_at(settings.data_dir, settings.resolved_database_url()) as registry:
            for transaction_number in range(TRANSACTIONS_PER_WRITER):
                changes: list[list[Any]] = []
                for _ in range(rng.randint(1, 6)):
                    key = StateKey(Namespace.CERTIFICATE, f"w{number}-{rng.randrange(12)}")
                    n = None if rng.random() < 0.2 else transaction_number
                    changes.append([key.text, n])
                with registry.log.write() as transaction:
                    transaction.append({"kind": KIND, "changes": changes})
                    updates = state_updates(transaction)
                    for text, n in changes:
                        key = StateKey.parse(text)
                        if n is None:
                            updates.delete(key)
                        else:
                            updates.set_encoded(key, value_of(key, n))
    except BaseException as exc:  # reported by the test, not lost in the thread
        errors.append(exc)


def reader(registry: Registry, stop: threading.Event, errors: list[BaseException]) -> None:
    """Every proof served while writers commit verifies against the root it came with, and
    that root is the stored root of its version."""
    rng = random.Random(99)
    state_map = StateMap(registry.database)
    try:
        while not stop.is_set():
            key = StateKey(Namespace.CERTIFICATE, f"w{rng.randrange(WRITERS)}-{rng.randrange(12)}")
            result = state_map.prove(key)
            verify_state(key.hash, result.value, result.proof, result.root)
            assert state_map.root_at(result.version).root == result.root
    except BaseException as exc:
        errors.append(exc)


def replay_roots(registry: Registry) -> dict[int, bytes]:
    """Every version's root from the entries alone (the auditor's recomputation)."""
    memory = MemoryStateMap()
    roots: dict[int, bytes] = {}
    size = registry.log.head().size
    for start in range(0, size, 1_000):
        for index, leaf in enumerate(registry.log.entries(start, min(size, start + 1_000)), start):
            entry = parse_entry(leaf)
            if entry["kind"] != KIND:
                continue
            changes: dict[bytes, bytes | None] = {}
            for text, n in entry["changes"]:
                key = StateKey.parse(text)
                changes[key.hash] = None if n is None else value_of(key, n)
            roots[index + 1] = memory.apply(index + 1, changes)
    return roots


def test_parallel_writers_and_a_replay_from_the_entries(settings: LedgerSettings) -> None:
    with open_registry_at(settings.data_dir, settings.resolved_database_url()) as registry:
        errors: list[BaseException] = []
        stop = threading.Event()
        threads = [
            threading.Thread(target=writer, args=(settings, number, errors))
            for number in range(WRITERS)
        ]
        watcher = threading.Thread(target=reader, args=(registry, stop, errors))
        watcher.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=240)
        stop.set()
        watcher.join(timeout=60)
        assert not errors, errors
        assert registry.log.head().size == WRITERS * TRANSACTIONS_PER_WRITER

        with registry.database.read() as session:
            stored = {
                version: bytes(root)
                for version, root in session.execute(select(StateRoot.version, StateRoot.root))
            }
        # One map version per transaction, each the log size after its entry, and each root
        # what the entries up to it imply.
        assert sorted(stored) == list(range(1, WRITERS * TRANSACTIONS_PER_WRITER + 1))
        assert replay_roots(registry) == stored
