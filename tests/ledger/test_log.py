"""The stored log on SQLite and PostgreSQL: the write path, reads, limits, checkpoints."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ledger_support import BruteTree, prefix_roots, read_all_entries
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from ledger.access.models import Organisation
from ledger.log.canonical import CanonicalizationError, canonical_entry
from ledger.log.checkpoint import Checkpoint, NoteVerifier, open_checkpoint
from ledger.log.merkle import EMPTY_ROOT, ProofRequestError, verify_consistency, verify_inclusion
from ledger.log.store import (
    MAX_ENTRIES_PER_READ,
    MAX_LEAVES_PER_TRANSACTION,
    EntryNotFoundError,
    Log,
    LogError,
    LogNotInitialisedError,
    LogTransaction,
    recompute_root,
)
from ledger.registry import Registry, open_registry
from ledger.settings import LedgerSettings
from ledger.storage.db import Database
from ledger.storage.migrate import upgrade


def entry(number: int) -> dict[str, Any]:
    return {"kind": "test.entry/1", "n": number}


def leaves(start: int, stop: int) -> list[bytes]:
    return [canonical_entry(entry(number)) for number in range(start, stop)]


def grow(log: Log, batches: list[int]) -> list[bytes]:
    """Append batches of entries (one transaction each); return every stored leaf."""
    size = log.head().size
    for batch in batches:
        with log.write() as transaction:
            transaction.extend_canonical(leaves(size, size + batch))
        size += batch
    return leaves(0, size)


def organisation_count(registry: Registry) -> int:
    with registry.database.read() as session:
        return session.scalar(select(func.count()).select_from(Organisation)) or 0


# ----------------------------------------------------------------------- appending


def test_appends_in_one_transaction_get_consecutive_indices(registry: Registry) -> None:
    log = registry.log
    with log.write() as transaction:
        assert (transaction.start_size, transaction.next_index) == (0, 0)
        first = [transaction.append(entry(n)) for n in range(3)]
        fourth = transaction.append_canonical(canonical_entry(entry(3)))
        rest = transaction.extend_canonical(leaves(4, 9))
        assert transaction.next_index == 9
        # Nothing is visible before the commit.
        assert log.head().size == 0
    assert first == [0, 1, 2]
    assert fourth == 3
    assert rest == range(4, 9)
    head = log.head()
    assert head.size == 9
    assert log.entries(0, 9) == leaves(0, 9)
    assert head.root == recompute_root(leaves(0, 9))

    with log.write() as transaction:
        assert transaction.start_size == 9
        assert [transaction.append(entry(n)) for n in range(9, 12)] == [9, 10, 11]
    assert log.append([entry(12), entry(13)]) == [12, 13]
    assert log.head().size == 14
    assert log.head().root == recompute_root(leaves(0, 14))


def test_entries_are_stored_canonically(registry: Registry) -> None:
    messy = {"n": 1, "kind": "test.entry/1", "nested": {"b": 2, "a": [1, {"z": 0, "y": "é"}]}}
    [index] = registry.log.append([messy])
    assert registry.log.entry(index) == canonical_entry(messy)
    assert registry.log.entry(index).startswith(b'{"kind":"test.entry/1","n":1,"nested":{"a":')


def test_a_refused_entry_queues_nothing(registry: Registry) -> None:
    with registry.log.write() as transaction:
        transaction.append(entry(0))
        with pytest.raises(CanonicalizationError):
            transaction.append({"kind": "test.entry/1", "value": 0.5})
        assert transaction.next_index == 1
    assert registry.log.head().size == 1


def test_an_empty_write_changes_nothing(registry: Registry) -> None:
    grow(registry.log, [3])
    before = registry.log.head()
    with registry.log.write() as transaction:
        assert transaction.pending == []
    assert registry.log.head() == before


# ------------------------------------------------------------------------ rollback


def _raise_in_block(transaction: LogTransaction) -> None:
    raise RuntimeError("the caller's state change failed")


def _duplicate_row_at_flush(transaction: LogTransaction) -> None:
    # The unique organisation name fails when the session flushes, i.e. inside the
    # log's own flush of the leaves, after the block has ended normally.
    transaction.session.add(Organisation(id=str(uuid.uuid4()), name="existing"))


def _fail_at_commit(transaction: LogTransaction) -> None:
    # Everything (caller rows, leaves, tiles, head) is written; the commit itself fails.
    def refuse(session: Session) -> None:
        raise RuntimeError("commit refused")

    event.listen(transaction.session, "before_commit", refuse)


FAILURES: dict[str, Callable[[LogTransaction], None]] = {
    "exception-in-block": _raise_in_block,
    "caller-row-fails-at-flush": _duplicate_row_at_flush,
    "commit-fails": _fail_at_commit,
}


@pytest.mark.parametrize("fail", FAILURES.values(), ids=FAILURES.keys())
def test_a_failed_write_rolls_back_rows_and_leaves(
    registry: Registry, fail: Callable[[LogTransaction], None]
) -> None:
    log = registry.log
    with log.write() as transaction:
        transaction.session.add(Organisation(id=str(uuid.uuid4()), name="existing"))
        transaction.extend_canonical(leaves(0, 300))
    before = log.head()
    assert before.size == 300
    organisations = organisation_count(registry)

    with pytest.raises(Exception) as raised, log.write() as transaction:
        transaction.session.add(Organisation(id=str(uuid.uuid4()), name="new"))
        transaction.extend_canonical(leaves(300, 700))  # crosses tile boundaries
        fail(transaction)
    assert not isinstance(raised.value, AssertionError)

    assert log.head() == before
    assert organisation_count(registry) == organisations
    with pytest.raises(EntryNotFoundError):
        log.entry(300)
    assert log.entries(0, 1000) == leaves(0, 300)

    # The log is intact: the next append takes index 300 and roots recompute.
    with log.write() as transaction:
        transaction.session.add(Organisation(id=str(uuid.uuid4()), name="new"))
        assert transaction.extend_canonical(leaves(300, 700)) == range(300, 700)
    assert organisation_count(registry) == organisations + 1
    assert log.head().root == recompute_root(leaves(0, 700))
    assert log.root_at(300) == before.root


class AbandonError(Exception):
    """Raised to leave a write block without committing."""


def test_max_leaves_per_transaction(registry: Registry) -> None:
    log = registry.log
    grow(log, [5])
    leaf = canonical_entry(entry(0))
    with pytest.raises(AbandonError), log.write() as transaction:
        assert transaction.extend_canonical([leaf] * MAX_LEAVES_PER_TRANSACTION) == range(
            5, 5 + MAX_LEAVES_PER_TRANSACTION
        )
        with pytest.raises(LogError, match="at most"):
            transaction.append_canonical(leaf)
        with pytest.raises(LogError, match="at most"):
            transaction.append(entry(1))
        with pytest.raises(LogError, match="at most"):
            transaction.extend_canonical([leaf])
        assert len(transaction.pending) == MAX_LEAVES_PER_TRANSACTION
        raise AbandonError("rather than commit 100,000 leaves")

    with pytest.raises(AbandonError), log.write() as transaction:
        transaction.extend_canonical([leaf] * (MAX_LEAVES_PER_TRANSACTION - 1))
        with pytest.raises(LogError, match="at most"):
            transaction.extend_canonical([leaf, leaf])
        assert transaction.append_canonical(leaf) == 5 + MAX_LEAVES_PER_TRANSACTION - 1
        raise AbandonError
    assert log.head().size == 5


# -------------------------------------------------------------------------- reading


def test_proofs_beyond_the_head_are_refused(registry: Registry) -> None:
    log = registry.log
    requests: tuple[Callable[[], object], ...] = (
        lambda: log.inclusion_proof(0),
        lambda: log.inclusion_proof(0, 0),
        lambda: log.consistency_proof(0, 0),
        lambda: log.consistency_proof(1, 1),
    )
    for request in requests:
        with pytest.raises(ProofRequestError):
            request()
    grow(log, [10])
    requests = (
        lambda: log.inclusion_proof(0, 11),
        lambda: log.inclusion_proof(10),
        lambda: log.inclusion_proof(10, 10),
        lambda: log.inclusion_proof(-1),
        lambda: log.inclusion_proof(5, 5),
        lambda: log.consistency_proof(1, 11),
        lambda: log.consistency_proof(11),
        lambda: log.consistency_proof(0, 5),
        lambda: log.consistency_proof(6, 5),
        lambda: log.root_at(11),
        lambda: log.root_at(-1),
        lambda: log.checkpoint(registry.signer, size=11),
    )
    for request in requests:
        with pytest.raises(ProofRequestError):
            request()
    # The edges that are allowed.
    verify_inclusion(9, 10, *_proof_and_root(log, 9, 10))
    assert log.consistency_proof(10).hashes == ()
    assert log.root_at(10) == log.head().root
    assert log.root_at(0) == EMPTY_ROOT


def _proof_and_root(log: Log, index: int, size: int) -> tuple[bytes, tuple[bytes, ...], bytes]:
    proof = log.inclusion_proof(index, size)
    return proof.leaf_hash, proof.hashes, proof.root


def test_entry_of_a_missing_index(registry: Registry) -> None:
    log = registry.log
    with pytest.raises(EntryNotFoundError):
        log.entry(0)
    grow(log, [4])
    assert log.entry(3) == canonical_entry(entry(3))
    for index in (4, 5, -1, 2**62):
        with pytest.raises(EntryNotFoundError):
            log.entry(index)
    assert issubclass(EntryNotFoundError, LookupError)


def test_entries_are_read_in_bounded_ranges(registry: Registry) -> None:
    log = registry.log
    stored = grow(log, [MAX_ENTRIES_PER_READ + 200])
    assert log.entries(0, MAX_ENTRIES_PER_READ) == stored[:MAX_ENTRIES_PER_READ]
    assert log.entries(200, MAX_ENTRIES_PER_READ + 200) == stored[200:]
    assert log.entries(7, 7) == []
    for start, end in ((0, MAX_ENTRIES_PER_READ + 1), (5, 4), (-1, 3), (-5, -1)):
        with pytest.raises(ProofRequestError):
            log.entries(start, end)
    # A range reaching past the head returns what exists.
    size = len(stored)
    assert log.entries(size - 3, size + 10) == stored[-3:]


def test_root_at_every_past_size_matches_a_recomputation(registry: Registry) -> None:
    """Irregular batches that cross tile boundaries on levels 0 and 1."""
    log = registry.log
    stored = grow(log, [1, 2, 5, 1, 13, 230, 4, 1, 255, 1, 100, 1, 530])
    assert len(stored) == 1144
    roots = prefix_roots(stored)
    for size in range(len(stored) + 1):
        assert log.root_at(size) == roots[size], f"root at size {size}"
    for size in (0, 1, 255, 256, 257, 511, 512, 513, 614, 1024, 1144):
        assert roots[size] == recompute_root(stored[:size])
    assert read_all_entries(registry) == stored
    tree = BruteTree(stored)
    for index, size in ((0, 1144), (255, 256), (256, 1144), (1143, 1144), (700, 1024)):
        proof = log.inclusion_proof(index, size)
        assert list(proof.hashes) == tree.path(index, size)
    for size1, size2 in ((1, 1144), (256, 513), (255, 1144), (1000, 1001)):
        consistency = log.consistency_proof(size1, size2)
        assert list(consistency.hashes) == tree.consistency(size1, size2)
        verify_consistency(size1, size2, consistency.hashes, roots[size1], roots[size2])


def test_readers_see_only_committed_state(registry: Registry) -> None:
    log = registry.log
    grow(log, [3])
    before = log.head()
    with log.write() as transaction:
        transaction.extend_canonical(leaves(3, 10))
        assert log.head() == before
        with pytest.raises(EntryNotFoundError):
            log.entry(3)
        with pytest.raises(ProofRequestError):
            log.inclusion_proof(5)
    assert log.head().size == 10


# --------------------------------------------------------------------- checkpoints


def test_checkpoint_names_the_current_head(registry: Registry) -> None:
    log, signer = registry.log, registry.signer
    verifier = NoteVerifier.parse(signer.verifier.encode())
    empty = open_checkpoint(log.checkpoint(signer), verifier)
    assert empty == Checkpoint(log.head().origin, 0, EMPTY_ROOT)

    grow(log, [7, 30])
    head = log.head()
    opened = open_checkpoint(log.checkpoint(signer), verifier)
    assert (opened.origin, opened.size, opened.root_hash) == (head.origin, 37, head.root)
    assert head.origin == signer.name  # the key name is the origin (docs/decisions.md §3)
    past = open_checkpoint(log.checkpoint(signer, size=7), verifier)
    assert (past.size, past.root_hash) == (7, log.root_at(7))
    assert past.root_hash == recompute_root(leaves(0, 7))


# ------------------------------------------------------------------- initialisation


def test_a_write_on_an_uninitialised_database_is_refused(database_url: str, tmp_path: Path) -> None:
    database = Database(database_url)
    try:
        upgrade(database)  # the schema exists; the log does not
        log = Log(database)
        with pytest.raises(LogNotInitialisedError), log.write() as transaction:
            transaction.append(entry(0))
        for read in (log.head, lambda: log.root_at(0), lambda: log.inclusion_proof(0, 1)):
            with pytest.raises(LogNotInitialisedError):
                read()
        settings = LedgerSettings(data_dir=tmp_path / "data", database_url=database_url)
        with pytest.raises(LogNotInitialisedError):
            open_registry(settings, migrate=False)

        head = log.initialise("example.org/log")
        assert (head.size, head.root) == (0, EMPTY_ROOT)
        assert log.append([entry(0)]) == [0]
    finally:
        database.dispose()


def test_initialise_is_idempotent_and_the_origin_is_fixed(registry: Registry) -> None:
    log = registry.log
    grow(log, [2])
    origin = log.head().origin
    assert log.initialise(origin) == log.head()
    with pytest.raises(LogError, match="cannot change"):
        log.initialise(origin + "-other")
    assert log.head().size == 2
