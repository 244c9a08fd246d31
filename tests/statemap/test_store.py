"""The stored state map on SQLite and PostgreSQL, held to the in-memory reference.

One map per backend grows across the hypothesis examples (module-scoped), through log
transactions like the service's: every batch is one transaction with its leaf. The reference
map, a per-key history of values and the root of every version decide what each read must
return; every proof is verified with the pure verifier against the reference's root.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pg_support import fresh_postgres_database
from sqlalchemy import event, func, select, text
from sqlalchemy.pool import Pool
from statemap_support import batches, key_hashes, open_registry_at, sha256, sqlite_url

from ledger.log.store import LogNotInitialisedError
from ledger.registry import Registry
from ledger.statemap.keys import Namespace, StateKey, StateKeyError, encode_value
from ledger.statemap.models import StateNode, StateRoot
from ledger.statemap.proof import EMPTY_HASH, MapProof, verify_state
from ledger.statemap.store import (
    MAX_UPDATES_PER_APPLY,
    PATH_READ_BATCH,
    StateLimitError,
    StateMap,
    StateMapDamagedError,
    StateUpdates,
    StateVersionError,
    apply_hashed_updates,
    bulk_load,
    state_updates,
)
from ledger.statemap.tree import MemoryStateMap

DB_EXAMPLES = settings(max_examples=40, deadline=None)


@dataclass
class StoredMap:
    registry: Registry
    reference: MemoryStateMap = field(default_factory=MemoryStateMap)
    history: dict[bytes, list[tuple[int, bytes | None]]] = field(default_factory=dict)
    roots: dict[int, bytes] = field(default_factory=lambda: {0: EMPTY_HASH})

    @property
    def state_map(self) -> StateMap:
        return StateMap(self.registry.database)

    def commit(self, batch: dict[bytes, bytes | None]) -> int:
        """One log transaction: a leaf and the batch; returns the new version."""
        with self.registry.log.write() as transaction:
            transaction.append({"kind": "test.state/1", "keys": len(batch)})
            version = transaction.next_index
            applied = apply_hashed_updates(transaction.session, version, batch)
        self.reference.apply(version, batch)
        assert applied.root == self.reference.root
        assert applied.key_count == len(self.reference)
        self.roots[version] = applied.root
        for key, value in batch.items():
            self.history.setdefault(key, []).append((version, value))
        return version

    def value_at(self, key: bytes, version: int) -> bytes | None:
        value = None
        for changed, new in self.history.get(key, []):
            if changed <= version:
                value = new
        return value

    def root_at(self, version: int) -> bytes:
        return self.roots[max(v for v in self.roots if v <= version)]


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def stored(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StoredMap]:
    data_dir: Path = tmp_path_factory.mktemp("statemap") / "data"
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = sqlite_url(data_dir)
        else:
            url = stack.enter_context(
                fresh_postgres_database(request.getfixturevalue("postgres_admin_url"))
            )
        yield StoredMap(stack.enter_context(open_registry_at(data_dir, url)))


@pytest.fixture
def registry_map(registry: Registry) -> StateMap:
    return StateMap(registry.database)


def certificate(n: int) -> StateKey:
    return StateKey(Namespace.CERTIFICATE, f"urn:uuid:test-{n}")


def state(n: int) -> dict[str, object]:
    return {"kind": "certificate.state/1", "status": "active", "n": n}


def count_rows(registry: Registry) -> tuple[int, int]:
    with registry.database.read() as session:
        nodes = session.execute(select(func.count()).select_from(StateNode)).scalar_one()
        roots = session.execute(select(func.count()).select_from(StateRoot)).scalar_one()
    return nodes, roots


# ------------------------------------------------------------------ against the reference


@given(
    batch_list=st.lists(batches(), min_size=1, max_size=4),
    queries=st.lists(key_hashes(), max_size=4),
    data=st.data(),
)
@DB_EXAMPLES
def test_stored_map_matches_the_reference(
    stored: StoredMap,
    batch_list: list[dict[bytes, bytes | None]],
    queries: list[bytes],
    data: st.DataObject,
) -> None:
    for batch in batch_list:
        stored.commit(batch)
    state_map = stored.state_map
    head = state_map.root_at()
    assert head.root == stored.reference.root
    assert head.key_count == len(stored.reference)
    assert head.version == stored.registry.log.head().size
    # Members, non-members and recently changed keys, at the head and at an older version.
    # Draws do not depend on the map's state (hypothesis replays them on a grown map): they
    # are positions, reduced to the keys and versions that exist.
    known = sorted(stored.history)
    positions = data.draw(st.lists(st.integers(0, 2**32), max_size=6), label="key positions")
    picked = [known[position % len(known)] for position in positions]
    old_version = data.draw(st.integers(0, 2**32), label="old version") % (head.version + 1)
    for key in [*picked, *queries, *batch_list[-1]]:
        for version in (head.version, old_version):
            result = state_map.prove(key, version)
            expected_root = stored.root_at(version)
            assert result.version == version
            assert result.root == expected_root
            assert result.value == stored.value_at(key, version)
            verify_state(key, result.value, result.proof, expected_root)
            if version == head.version:
                assert result.proof == stored.reference.prove(key).proof
            assert state_map.root_at(version).root == expected_root


def test_large_batches_and_deletions(stored: StoredMap) -> None:
    """Batches well above the per-key path reads (level-by-level reads), deletions that make
    leaves move up, then everything deleted and refilled."""
    keys = [sha256(b"large %d" % n) for n in range(3_000)]
    stored.commit({key: b"v1 %d" % n for n, key in enumerate(keys)})
    stored.commit({key: None for key in keys[::2]} | {key: b"v2" for key in keys[1:200:2]})
    version = stored.commit({key: None for key in keys[1::2]})
    assert stored.state_map.root_at(version).root == stored.reference.root
    last = stored.commit({key: b"v3" for key in keys[: PATH_READ_BATCH + 1]})
    for key in keys[: PATH_READ_BATCH + 3]:
        result = stored.state_map.prove(key, last)
        verify_state(key, result.value, result.proof, stored.reference.root)
        assert result.value == stored.value_at(key, last)
    # Proofs at the version where all 3,000 were present still verify against its root.
    first_version = min(stored.history[keys[0]])[0]
    for key in keys[:50]:
        result = stored.state_map.prove(key, first_version)
        assert result.value is not None
        verify_state(key, result.value, result.proof, stored.roots[first_version])


# ------------------------------------------------------------- the log transaction hook


def test_updates_commit_with_their_leaf(registry: Registry, registry_map: StateMap) -> None:
    with registry.log.write() as transaction:
        index = transaction.append({"kind": "certificate.issued/1", "n": 1})
        updates = state_updates(transaction)
        updates.set(certificate(1), state(1))
        updates.set(certificate(2), state(2))
        # Later callers in the same transaction add to the same collection; last write wins.
        assert state_updates(transaction) is updates
        state_updates(transaction).set(certificate(1), state(10))
        state_updates(transaction).delete(certificate(2))
    assert updates.applied is not None
    assert updates.applied.version == index + 1 == registry.log.head().size
    value = registry_map.get(certificate(1))
    assert value == encode_value(certificate(1), state(10))
    assert registry_map.get(certificate(2)) is None
    assert registry_map.root_at().key_count == 1
    result = registry_map.prove(certificate(1))
    verify_state(certificate(1).hash, value, result.proof, updates.applied.root)
    # A transaction without state changes leaves the map's root as it was.
    with registry.log.write() as transaction:
        transaction.append({"kind": "other/1"})
    assert registry_map.root_at().root == updates.applied.root
    assert registry_map.root_at().version == index + 2


def test_a_state_change_needs_its_entry(registry: Registry) -> None:
    refused = pytest.raises(StateVersionError, match="entry that causes it")
    with refused, registry.log.write() as transaction:
        state_updates(transaction).set(certificate(1), state(1))
    assert count_rows(registry) == (0, 0)
    assert registry.log.head().size == 0


class _FailingCompanion:
    """A companion that runs after the state map's and fails: the map's nodes and root were
    already written in the transaction, and must go with it."""

    def __call__(self, session: object, old_size: int, new_size: int) -> None:
        raise RuntimeError("a later step of the transaction failed")


@pytest.mark.parametrize("where", ["block", "companion"])
def test_rolled_back_transaction_leaves_no_nodes_and_no_root(
    registry: Registry, registry_map: StateMap, where: str
) -> None:
    with registry.log.write() as transaction:
        transaction.append({"kind": "first/1"})
        state_updates(transaction).set(certificate(0), state(0))
    before_rows = count_rows(registry)
    before = registry_map.root_at()
    with pytest.raises(RuntimeError, match="failed"), registry.log.write() as transaction:
        transaction.append({"kind": "second/1"})
        updates = state_updates(transaction)
        for n in range(1, 50):
            updates.set(certificate(n), state(n))
        if where == "block":
            raise RuntimeError("the caller's block failed")
        transaction.flush_companion(_FailingCompanion)
    if where == "companion":
        assert updates.applied is not None  # the map was written, then rolled back
    assert count_rows(registry) == before_rows
    assert registry_map.root_at() == before
    assert registry.log.head().size == 1
    assert registry_map.get(certificate(1)) is None


# --------------------------------------------------------------------------- reads


def test_a_proof_is_one_statement(tmp_path: Path) -> None:
    """Counted by SQLite itself (its trace callback sees every statement a connection runs,
    whatever layer sent it): a proof, member or not, and a root read are one statement each."""
    with open_registry_at(tmp_path, sqlite_url(tmp_path)) as registry:
        state_map = StateMap(registry.database)
        with registry.log.write() as transaction:
            transaction.append({"kind": "x/1"})
            for n in range(300):
                state_updates(transaction).set(certificate(n), state(n))
        statements: list[str] = []

        def trace(dbapi_connection: sqlite3.Connection, _record: object, _proxy: object) -> None:
            dbapi_connection.set_trace_callback(statements.append)

        event.listen(Pool, "checkout", trace)
        try:
            for n in (1, 299, 1_000):  # two members and a non-member
                state_map.prove(certificate(n))
            state_map.root_at()
        finally:
            event.remove(Pool, "checkout", trace)
        # The pool's liveness check (`pool_pre_ping`, decision 15) is not part of the read.
        reads = [statement for statement in statements if statement != "SELECT 1"]
        assert len(reads) == 4, reads
        assert all(statement.lstrip().startswith(("WITH", "SELECT")) for statement in reads)


def test_versions_outside_the_log_are_refused(registry: Registry, registry_map: StateMap) -> None:
    with registry.log.write() as transaction:
        transaction.append({"kind": "x/1"})
        state_updates(transaction).set(certificate(1), state(1))
    assert registry_map.prove(certificate(1), 0).value is None
    assert registry_map.root_at(0).root == EMPTY_HASH
    with pytest.raises(StateVersionError, match=r"outside 0\.\.1"):
        registry_map.prove(certificate(1), 2)
    with pytest.raises(StateVersionError, match="not a log size"):
        registry_map.root_at(-1)


def test_uninitialised_log(tmp_path: Path) -> None:
    from ledger.storage.db import Database  # noqa: PLC0415
    from ledger.storage.migrate import upgrade  # noqa: PLC0415

    database = Database(sqlite_url(tmp_path))
    try:
        upgrade(database)
        with pytest.raises(LogNotInitialisedError):
            StateMap(database).prove(certificate(1))
        with pytest.raises(LogNotInitialisedError):
            StateMap(database).root_at()
    finally:
        database.dispose()


# ------------------------------------------------------------------------ limits


def test_limits_are_refused_with_clear_errors(registry: Registry) -> None:
    with registry.log.write() as transaction:
        transaction.append({"kind": "x/1"})
        updates = StateUpdates()
        with pytest.raises(StateKeyError, match="limit"):
            updates.set(certificate(1), {"kind": "certificate.state/1", "pad": "x" * 20_000})
        with pytest.raises(StateLimitError, match="limit"):
            updates.set_encoded(certificate(1), b"x" * 20_000)
        for n in range(MAX_UPDATES_PER_APPLY):
            updates.delete(certificate(n))
        with pytest.raises(StateLimitError, match=str(MAX_UPDATES_PER_APPLY)):
            updates.delete(certificate(MAX_UPDATES_PER_APPLY))
        updates.delete(certificate(0))  # a key already queued is not a new one
        with pytest.raises(StateLimitError, match="updates in one transaction"):
            apply_hashed_updates(
                transaction.session,
                transaction.next_index,
                {sha256(b"%d" % n): None for n in range(MAX_UPDATES_PER_APPLY + 1)},
            )
        with pytest.raises(StateKeyError, match="32 bytes"):
            apply_hashed_updates(transaction.session, transaction.next_index, {b"short": None})
    assert count_rows(registry) == (0, 0)


def test_versions_must_move_with_the_log(registry: Registry) -> None:
    with registry.log.write() as transaction:
        transaction.append({"kind": "x/1"})
        apply_hashed_updates(transaction.session, 1, {sha256(b"a"): b"1"})
    stale = pytest.raises(StateVersionError, match="already has 1 entries")
    with stale, registry.log.write() as transaction:
        transaction.append({"kind": "x/1"})
        apply_hashed_updates(transaction.session, 1, {sha256(b"a"): b"2"})
    not_empty = pytest.raises(StateVersionError, match="bulk loading needs an empty map")
    with not_empty, registry.log.write() as transaction:
        transaction.append({"kind": "x/1"})
        bulk_load(transaction.session, transaction.next_index, [sha256(b"b")], [b"1"])


# ------------------------------------------------------------------------ damage


def root_row_id(registry: Registry) -> int:
    with registry.database.read() as session:
        row_id = session.execute(
            select(StateRoot.root_id).order_by(StateRoot.version.desc()).limit(1)
        ).scalar_one()
    assert row_id is not None
    return int(row_id)


def test_damaged_nodes_are_detected_not_served(registry: Registry, registry_map: StateMap) -> None:
    with registry.log.write() as transaction:
        transaction.append({"kind": "x/1"})
        for n in range(40):
            state_updates(transaction).set(certificate(n), state(n))
    root_id = root_row_id(registry)
    with registry.database.write() as session:
        node = session.execute(select(StateNode.node).where(StateNode.id == root_id)).scalar_one()
        damaged = node[:10] + bytes([node[10] ^ 1]) + node[11:]
        session.execute(
            text("UPDATE state_node SET node = :node WHERE id = :id"),
            {"node": damaged, "id": root_id},
        )
    with pytest.raises(StateMapDamagedError, match="does not hash"):
        registry_map.prove(certificate(3))
    for batch in (1, 10):  # both ways a batch reads its paths
        damaged_write = pytest.raises(StateMapDamagedError, match="does not hash")
        with damaged_write, registry.log.write() as transaction:
            transaction.append({"kind": "x/1"})
            for n in range(batch):
                state_updates(transaction).set(certificate(n), state(n + 1))


def test_missing_and_misdirected_rows_are_detected(
    registry: Registry, registry_map: StateMap
) -> None:
    with registry.log.write() as transaction:
        transaction.append({"kind": "x/1"})
        for n in range(40):
            state_updates(transaction).set(certificate(n), state(n))
    leaf = registry_map.prove(certificate(7)).proof.leaf
    other = registry_map.prove(certificate(8)).proof.leaf
    assert leaf is not None and other is not None
    with registry.database.write() as session:
        leaf_id, other_id = (
            session.execute(
                select(StateNode.id).where(
                    StateNode.node == b"\x02" + item.key_hash + item.value_hash
                )
            ).scalar_one()
            for item in (leaf, other)
        )
        # A parent pointing at another node's row: the hash check must catch it.
        session.execute(
            text("UPDATE state_node SET left_id = :other WHERE left_id = :leaf"),
            {"other": other_id, "leaf": leaf_id},
        )
        session.execute(
            text("UPDATE state_node SET right_id = :other WHERE right_id = :leaf"),
            {"other": other_id, "leaf": leaf_id},
        )
    with pytest.raises(StateMapDamagedError, match="does not hash"):
        registry_map.prove(certificate(7))
    with registry.database.write() as session:
        session.execute(text("DELETE FROM state_node WHERE id = :id"), {"id": other_id})
    with pytest.raises(StateMapDamagedError, match="not stored"):
        registry_map.prove(certificate(8))


# ------------------------------------------------------------------------ bulk loading


def test_bulk_load_writes_the_nodes_of_batches(tmp_path: Path, database_url: str) -> None:
    """The bulk path and a sequence of batches leave the same rows (same nodes, same
    values), checked on a sample of 2,000 keys with deletions in between."""
    keys = [sha256(b"bulk %d" % n) for n in range(2_000)]
    final = {key: b"value %d" % n for n, key in enumerate(keys) if n % 7}
    with open_registry_at(tmp_path / "batches", sqlite_url(tmp_path / "batches")) as batched:
        for start in range(0, len(keys), 300):
            with batched.log.write() as transaction:
                transaction.append({"kind": "x/1"})
                chunk = keys[start : start + 300]
                apply_hashed_updates(
                    transaction.session,
                    transaction.next_index,
                    {key: b"first" for key in chunk},
                )
        with batched.log.write() as transaction:
            transaction.append({"kind": "x/1"})
            apply_hashed_updates(
                transaction.session,
                transaction.next_index,
                {key: final.get(key) for key in keys},
            )
        batched_rows = live_rows(batched)
        batched_root = StateMap(batched.database).root_at().root
    with open_registry_at(tmp_path / "bulk", database_url) as bulk:
        with bulk.log.write() as transaction:
            transaction.append({"kind": "x/1"})
            ordered = sorted(final)
            loaded = bulk_load(
                transaction.session,
                transaction.next_index,
                ordered,
                [final[key] for key in ordered],
            )
        assert loaded.root == batched_root
        assert loaded.key_count == len(final)
        bulk_rows = live_rows(bulk)
        # A bulk load writes the current tree and nothing else.
        assert len(bulk_rows) == count_rows(bulk)[0]
    assert bulk_rows == batched_rows


def live_rows(registry: Registry) -> set[tuple[bytes, bytes | None]]:
    """(node, value) of the current tree's rows (batches also keep older versions' rows, and
    row ids depend on the order of writing)."""
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
    live: set[tuple[bytes, bytes | None]] = set()
    stack = [root_row_id(registry)]
    while stack:
        node, left_id, right_id, value = rows[stack.pop()]
        live.add((node, value))
        stack.extend(child for child in (left_id, right_id) if child is not None)
    return live


def test_proof_json_from_the_store_round_trips(registry: Registry, registry_map: StateMap) -> None:
    with registry.log.write() as transaction:
        transaction.append({"kind": "x/1"})
        for n in range(20):
            state_updates(transaction).set(certificate(n), state(n))
    for n in (3, 99):
        result = registry_map.prove(certificate(n))
        document = json.loads(json.dumps(result.proof.to_json()))
        verify_state(certificate(n).hash, result.value, MapProof.from_json(document), result.root)
