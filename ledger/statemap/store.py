"""The stored state map: nodes by hash, one root per log size, and the log transaction hook.

    with registry.log.write() as tx:
        index = tx.append({"kind": "certificate.retired/1", ...})   # the leaf
        state_updates(tx).set(key, {"kind": "certificate.state/1", ...})  # what it changes
    # the leaf, the map's new nodes and its root at the new size commit together, or neither

Versions are log sizes: the map at version N is the state after entries 0..N-1 (what the
checkpoint for size N will carry). A transaction that changes the map writes its new nodes
(`state_node`, addressed by hash, shared by every version that contains them) and its root
(`state_root`, keyed by the log size after its leaves). Nothing is ever updated or deleted,
so every past version stays provable (docs/state-map.md, "Retention").

Reads follow the log's conventions (decision 15): a proof at any version is one statement on
an autocommit connection — the log's size, the version's root and, through a recursive CTE,
the nodes on the key's path, one index lookup per level (≈ log2 n). Every node read is
checked against the hash its parent names before it goes into a proof.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload

from sqlalchemy import Connection, select, text
from sqlalchemy.orm import Session

from ledger.log.models import LogHead
from ledger.log.store import HEAD_ROW_ID, LogNotInitialisedError, LogTransaction
from ledger.statemap.keys import MAX_VALUE_BYTES, StateKey, StateKeyError, encode_value
from ledger.statemap.models import StateRoot
from ledger.statemap.proof import EMPTY_HASH, INTERIOR_PREFIX, KEY_BITS, leaf_node, value_hash
from ledger.statemap.tree import (
    MissingNodeError,
    StateProofResult,
    StateTreeError,
    build_tree,
    proof_from_path,
    split_point,
    update_tree,
)
from ledger.storage.db import Database

MAX_UPDATES_PER_APPLY = 100_000
"""Bounds one transaction's memory (its updates and the nodes they create), like the log's
`MAX_LEAVES_PER_TRANSACTION`."""
FETCH_CHUNK = 5_000
"""Node hashes per `IN` lookup: under every driver's parameter limit."""
INSERT_CHUNK = 10_000
PATH_READ_BATCH = 4
"""Up to this many updates, each key's path is read with one statement (the proof query);
larger batches read the paths level by level, each node once."""


class StateMapError(RuntimeError):
    """The state map cannot perform the operation."""


class StateMapDamagedError(StateMapError):
    """Stored nodes are missing or do not hash to what their parents say."""


class StateVersionError(StateMapError, ValueError):
    """A version outside what the log and the map have, or one that does not move forward."""


class StateLimitError(StateMapError, ValueError):
    """A batch or value beyond the state map's limits."""


@dataclass(frozen=True, slots=True)
class MapRoot:
    """The map at a version: its root and how many keys it holds."""

    version: int
    root: bytes
    key_count: int


# ------------------------------------------------------------------------------ reads

_HEAD_AT_VERSION = """
SELECT l.size AS log_size,
       (SELECT r.root FROM state_root AS r WHERE r.version <= COALESCE(:version, l.size)
        ORDER BY r.version DESC LIMIT 1) AS root,
       (SELECT r.key_count FROM state_root AS r WHERE r.version <= COALESCE(:version, l.size)
        ORDER BY r.version DESC LIMIT 1) AS key_count
FROM log_head AS l WHERE l.id = :head_id
"""

_WALK = """
walk(depth, node, value) AS (
    SELECT 0, n.node, n.value FROM {seed}
    UNION ALL
    SELECT w.depth + 1, n.node, n.value
    FROM walk AS w JOIN state_node AS n ON n.hash = substr(
        w.node, CASE substr(CAST(:bits AS TEXT), w.depth + 1, 1) WHEN '1' THEN 34 ELSE 2 END, 32)
    WHERE substr(w.node, 1, 1) = :interior AND w.depth < :max_depth
)
"""

_PROOF_SQL = (
    "WITH RECURSIVE head AS ("  # noqa: S608 - constant SQL pieces
    + _HEAD_AT_VERSION
    + "),"
    + _WALK.format(seed="head JOIN state_node AS n ON n.hash = head.root")
    + "SELECT -1 AS depth, root AS node, NULL AS value, log_size, key_count FROM head "
    "UNION ALL SELECT depth, node, value, NULL, NULL FROM walk"
)
"""One statement, one snapshot: the log's size, the version's root and key count, and the
nodes on the key's path from that root down to a leaf or an empty child."""

_PATH_SQL = (
    "WITH RECURSIVE "  # noqa: S608 - constant SQL pieces
    + _WALK.format(seed="state_node AS n WHERE n.hash = :root")
    + "SELECT depth, node FROM walk"
)
"""The nodes on a key's path from a given root (a batch's reads at the head)."""

_NAMED_PARAMETER = re.compile(r"(?<![:\w]):(\w+)")


@functools.cache
def _in_driver_style(sql: str, dialect: str) -> str:
    """`:name` parameters as the driver spells them (psycopg: `%(name)s`)."""
    return _NAMED_PARAMETER.sub(r"%(\1)s", sql) if dialect == "postgresql" else sql


def _driver_rows(
    connection: Connection, sql: str, parameters: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    """Run `sql` on the driver's own cursor: SQLAlchemy's statement and row handling cost
    as much as a proof's lookups."""
    cursor = connection.connection.cursor()
    try:
        cursor.execute(_in_driver_style(sql, connection.dialect.name), parameters)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _key_bits(key_hash: bytes) -> str:
    return format(int.from_bytes(key_hash, "big"), "0256b")


def _walk_parameters(key_hash: bytes) -> dict[str, Any]:
    return {"bits": _key_bits(key_hash), "interior": INTERIOR_PREFIX, "max_depth": KEY_BITS}


class StateMap:
    """Reads of the stored map; writes go through `state_updates(tx)` (or `apply`)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def root_at(self, version: int | None = None) -> MapRoot:
        """The root after entries 0..version-1 (default: the log's current size)."""
        _check_version_argument(version)
        with self.database.snapshot() as connection:
            rows = _driver_rows(
                connection, _HEAD_AT_VERSION, {"version": version, "head_id": HEAD_ROW_ID}
            )
        if not rows:
            raise LogNotInitialisedError("the log is not initialised; run `carbonledger init`")
        log_size, root, key_count = rows[0]
        resolved = _resolve_version(version, log_size)
        return MapRoot(resolved, EMPTY_HASH if root is None else bytes(root), key_count or 0)

    def prove(self, key: StateKey | bytes, version: int | None = None) -> StateProofResult:
        """The key's value (None if absent) at `version` (default: the log's current size),
        with its membership or non-membership proof against that version's root."""
        _check_version_argument(version)
        key_hash = key.hash if isinstance(key, StateKey) else key
        if len(key_hash) != 32:
            raise StateKeyError("a state-map key hash is 32 bytes")
        parameters = {"version": version, "head_id": HEAD_ROW_ID} | _walk_parameters(key_hash)
        with self.database.snapshot() as connection:
            rows = _driver_rows(connection, _PROOF_SQL, parameters)
        # Rows: (depth, node, value, log size, key count); depth -1 is the head row.
        head = next((row for row in rows if row[0] == -1), None)
        if head is None:
            raise LogNotInitialisedError("the log is not initialised; run `carbonledger init`")
        resolved = _resolve_version(version, head[3])
        root = EMPTY_HASH if head[1] is None else bytes(head[1])
        path = sorted((row[0], bytes(row[1]), row[2]) for row in rows if row[0] >= 0)
        if [depth for depth, _, _ in path] != list(range(len(path))):
            raise StateMapDamagedError(f"the path of key {key_hash.hex()} has gaps")
        try:
            result = proof_from_path(root, key_hash, [node for _, node, _ in path])
        except StateTreeError as exc:
            raise StateMapDamagedError(f"state map at version {resolved}: {exc}") from exc
        value: bytes | None = None
        if result.leaf is not None:
            stored = path[-1][2]
            if stored is None or value_hash(bytes(stored)) != result.leaf[33:65]:
                raise StateMapDamagedError(
                    f"the stored value of key {key_hash.hex()} does not match its leaf"
                )
            value = bytes(stored)
        return StateProofResult(key_hash, resolved, root, value, result.proof)

    def get(self, key: StateKey | bytes, version: int | None = None) -> bytes | None:
        return self.prove(key, version).value

    def apply(
        self, session: Session, version: int, updates: Mapping[StateKey, bytes | None]
    ) -> MapRoot:
        """See `apply_updates`."""
        return apply_updates(session, version, updates)


def _check_version_argument(version: int | None) -> None:
    if version is not None and (isinstance(version, bool) or version < 0):
        raise StateVersionError(f"version {version!r} is not a log size")


def _resolve_version(version: int | None, log_size: int) -> int:
    if version is None:
        return log_size
    if version > log_size:
        raise StateVersionError(f"version {version} is outside 0..{log_size} (the log's size)")
    return version


# ----------------------------------------------------------------------------- writes


def apply_updates(
    session: Session, version: int, updates: Mapping[StateKey, bytes | None]
) -> MapRoot:
    """Apply (key → encoded value, or None to delete) as map version `version`.

    Runs inside the log's write transaction, before that transaction's leaves are written,
    with `version` = the log's size after them (what `StateUpdates` does): the map's new nodes
    and root then commit with the leaves, or not at all. Values are `encode_value` bytes.
    Deleting an absent key changes nothing.
    """
    hashed: dict[bytes, bytes | None] = {}
    for key, value in updates.items():
        if not isinstance(key, StateKey):
            raise StateKeyError(f"state-map updates are keyed by StateKey, not {type(key)}")
        hashed[key.hash] = value
    return apply_hashed_updates(session, version, hashed)


def apply_hashed_updates(
    session: Session, version: int, updates: Mapping[bytes, bytes | None]
) -> MapRoot:
    """`apply_updates` for callers that hold key hashes (an auditor's replay, a migration)."""
    if len(updates) > MAX_UPDATES_PER_APPLY:
        raise StateLimitError(
            f"{len(updates)} updates in one transaction; the limit is {MAX_UPDATES_PER_APPLY}"
        )
    for key_hash, value in updates.items():
        if len(key_hash) != 32:
            raise StateKeyError(f"a state-map key hash is 32 bytes, not {len(key_hash)}")
        if value is not None and len(value) > MAX_VALUE_BYTES:
            raise StateLimitError(
                f"value of key {key_hash.hex()} is {len(value)} bytes; the limit is "
                f"{MAX_VALUE_BYTES}"
            )
    latest = _lock_and_check(session, version)
    reader = _PrefetchedNodes(session)
    if len(updates) <= PATH_READ_BATCH:
        for key_hash in updates:
            reader.read_path(latest.root, key_hash)
    else:
        reader.read_levels(latest.root, sorted(updates))
    try:
        change = update_tree(latest.root, updates.items(), reader)
    except StateTreeError as exc:
        raise StateMapDamagedError(f"state map at version {latest.version}: {exc}") from exc
    key_count = latest.key_count + change.key_count_delta
    assert key_count >= 0, "more keys deleted than the map held"
    _insert_nodes(
        session,
        (
            (digest, node, change.new_values.get(digest))
            for digest, node in change.new_nodes.items()
        ),
    )
    session.add(StateRoot(version=version, root=change.root, key_count=key_count))
    session.flush()
    return MapRoot(version, change.root, key_count)


def bulk_load(
    session: Session, version: int, keys: Sequence[bytes], values: Sequence[bytes]
) -> MapRoot:
    """Fill an empty map with `keys` (key hashes, sorted and distinct) and their encoded
    `values`, as `version` (the transaction contract of `apply_updates`).

    The tree comes from the builder `apply_updates` uses, so the nodes are the ones batches
    of the same keys would leave. Nodes go to the database in chunks (memory holds the keys,
    not the tree) and each value is read twice (for its row, for the tree), so `values` may
    compute its items on demand. For building a map from scratch (benchmarks, a registry's
    first map); not bounded by `MAX_UPDATES_PER_APPLY`.
    """
    if len(keys) != len(values):
        raise ValueError(f"{len(keys)} keys but {len(values)} values")
    latest = _lock_and_check(session, version)
    if latest.version != 0:
        raise StateVersionError(f"bulk loading needs an empty map; it has version {latest.version}")
    staging = _Staging(session)
    for key, value in zip(keys, values, strict=True):
        if len(key) != 32:
            raise StateKeyError(f"a state-map key hash is 32 bytes, not {len(key)}")
        if len(value) > MAX_VALUE_BYTES:
            raise StateLimitError(f"a value is {len(value)} bytes; the limit is {MAX_VALUE_BYTES}")
        leaf = leaf_node(key, value_hash(value))
        staging.add(hashlib.sha256(leaf).digest(), leaf, value)
    root = build_tree(keys, _LeafView(keys, values), staging.add)
    staging.move_into_place()
    session.add(StateRoot(version=version, root=root, key_count=len(keys)))
    session.flush()
    return MapRoot(version, root, len(keys))


class _Staging:
    """Rows of a bulk load, gathered in an unindexed temporary table and moved into
    `state_node` in hash order at the end: B-tree pages then fill one after the other,
    where inserting in tree order (random hashes) touches a random page per row."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.postgres = session.get_bind().dialect.name == "postgresql"
        self.pending: list[tuple[bytes, bytes, bytes | None]] = []
        session.execute(text("DROP TABLE IF EXISTS state_node_staging"))
        session.execute(
            text(
                "CREATE TEMPORARY TABLE state_node_staging (hash BYTEA, node BYTEA, value BYTEA)"
                if self.postgres
                else "CREATE TEMPORARY TABLE state_node_staging (hash BLOB, node BLOB, value BLOB)"
            )
        )

    def add(self, digest: bytes, node: bytes, value: bytes | None = None) -> None:
        self.pending.append((digest, node, value))
        if len(self.pending) >= INSERT_CHUNK:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        connection = self.session.connection()
        if self.postgres:
            driver_connection: Any = connection.connection.driver_connection
            with (
                driver_connection.cursor() as cursor,
                cursor.copy("COPY state_node_staging FROM STDIN (FORMAT BINARY)") as copy,
            ):
                copy.set_types(["bytea", "bytea", "bytea"])
                for row in self.pending:
                    copy.write_row(row)
        else:
            connection.exec_driver_sql(
                "INSERT INTO state_node_staging VALUES (?, ?, ?)", self.pending
            )
        self.pending.clear()

    def move_into_place(self) -> None:
        self.flush()
        self.session.execute(
            text(
                "INSERT INTO state_node (hash, node, value) SELECT hash, node, value "
                "FROM state_node_staging ORDER BY hash ON CONFLICT (hash) DO NOTHING"
            )
        )
        self.session.execute(text("DROP TABLE state_node_staging"))


class _LeafView(Sequence[bytes]):
    """The leaf nodes of (key, value) pairs, computed when asked for, not held."""

    def __init__(self, keys: Sequence[bytes], values: Sequence[bytes]) -> None:
        self.keys = keys
        self.values = values

    def __len__(self) -> int:
        return len(self.keys)

    @overload
    def __getitem__(self, index: int) -> bytes: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[bytes]: ...
    def __getitem__(self, index: int | slice) -> bytes | Sequence[bytes]:
        if isinstance(index, slice):
            raise TypeError("leaf views are read one leaf at a time")
        return leaf_node(self.keys[index], value_hash(self.values[index]))


def _lock_and_check(session: Session, version: int) -> MapRoot:
    """Take (or confirm) the log's writer lock and check that `version` is the size this
    transaction is about to create. Returns the map's latest version."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise StateVersionError(f"map version {version!r} is not a log size of at least 1")
    log_size = session.execute(
        select(LogHead.size).where(LogHead.id == HEAD_ROW_ID).with_for_update()
    ).scalar_one_or_none()
    if log_size is None:
        raise LogNotInitialisedError("the log is not initialised; run `carbonledger init`")
    if version <= log_size:
        raise StateVersionError(
            f"map version {version} must be the size after this transaction's leaves; the log "
            f"already has {log_size} entries (a state change needs the entry that causes it)"
        )
    row = session.execute(
        select(StateRoot.version, StateRoot.root, StateRoot.key_count)
        .order_by(StateRoot.version.desc())
        .limit(1)
    ).one_or_none()
    if row is None:
        return MapRoot(0, EMPTY_HASH, 0)
    # The map never runs ahead of the log: its versions are sizes the log has reached.
    assert row.version <= log_size, "state map is ahead of the log"
    return MapRoot(row.version, row.root, row.key_count)


def _insert_nodes(session: Session, rows: Iterable[tuple[bytes, bytes, bytes | None]]) -> None:
    """Insert nodes that may exist already (a value set back to an earlier one): a node's
    row is a function of its hash, so an existing row is the same row.

    Rows go in hash order, so consecutive inserts land on the same or neighbouring B-tree
    pages (hashes are random: in any other order each insert touches a page of its own), and
    through the driver directly: SQLAlchemy's per-value bind processing cost more than the
    inserts themselves.
    """
    batch = sorted(rows)
    if not batch:
        return
    connection = session.connection()
    placeholder = "%s" if connection.dialect.name == "postgresql" else "?"
    statement = (
        "INSERT INTO state_node (hash, node, value) "  # noqa: S608 - only the placeholders vary
        f"VALUES ({placeholder}, {placeholder}, {placeholder}) ON CONFLICT (hash) DO NOTHING"
    )
    for start in range(0, len(batch), INSERT_CHUNK):
        connection.exec_driver_sql(statement, batch[start : start + INSERT_CHUNK])


class _PrefetchedNodes:
    """Old nodes of the paths a batch touches, read before the batch is computed: with one
    statement per key for small batches, level by level (each node once) for large ones.
    A node the computation needs beyond those (the leaf that moves up after a deletion) is
    read on demand."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.nodes: dict[bytes, bytes] = {}

    def __call__(self, node_hash: bytes) -> bytes:
        node = self.nodes.get(node_hash)
        if node is None:
            self.fetch([node_hash])
            node = self.nodes.get(node_hash)
            if node is None:
                raise MissingNodeError(f"node {node_hash.hex()} is not stored")
        return node

    def read_path(self, root: bytes, key_hash: bytes) -> None:
        if root == EMPTY_HASH:
            return
        rows = _driver_rows(
            self.session.connection(), _PATH_SQL, {"root": root} | _walk_parameters(key_hash)
        )
        for _, stored in rows:
            node = bytes(stored)
            self.nodes[hashlib.sha256(node).digest()] = node

    def read_levels(self, root: bytes, keys: Sequence[bytes]) -> None:
        frontier = [(0, root, 0, len(keys))] if root != EMPTY_HASH else []
        while frontier:
            self.fetch({node_hash for _, node_hash, _, _ in frontier} - self.nodes.keys())
            next_frontier = []
            for depth, node_hash, lo, hi in frontier:
                node = self.nodes.get(node_hash)
                if node is None:
                    raise StateMapDamagedError(f"node {node_hash.hex()} is not stored")
                if node[0] != INTERIOR_PREFIX[0]:
                    continue
                mid = split_point(keys, depth, lo, hi)
                left, right = node[1:33], node[33:65]
                if lo < mid and left != EMPTY_HASH:
                    next_frontier.append((depth + 1, left, lo, mid))
                if mid < hi and right != EMPTY_HASH:
                    next_frontier.append((depth + 1, right, mid, hi))
            frontier = next_frontier

    def fetch(self, hashes: Collection[bytes]) -> None:
        wanted = list(hashes)
        connection = self.session.connection()
        placeholder = "%s" if connection.dialect.name == "postgresql" else "?"
        # The driver's cursor directly: SQLAlchemy's row objects cost more than the lookups.
        cursor = connection.connection.cursor()
        try:
            rows: list[tuple[bytes, bytes]] = []
            for start in range(0, len(wanted), FETCH_CHUNK):
                chunk = wanted[start : start + FETCH_CHUNK]
                cursor.execute(
                    "SELECT hash, node FROM state_node WHERE hash IN "  # noqa: S608 - placeholders
                    f"({', '.join([placeholder] * len(chunk))})",
                    tuple(chunk),
                )
                rows.extend(cursor.fetchall())
        finally:
            cursor.close()
        for node_hash, stored in rows:
            node = bytes(stored)
            # A damaged row must not pass for the node its key names.
            if hashlib.sha256(node).digest() != node_hash:
                raise StateMapDamagedError(f"stored node {bytes(node_hash).hex()} is damaged")
            self.nodes[bytes(node_hash)] = node


# ------------------------------------------------------------------ the log's companion


class StateUpdates:
    """The state-map changes of one log transaction (`state_updates(tx)`).

    The last change of a key in the transaction wins. Just before the transaction's leaves
    are written, the changes are applied as the version = the log's size after them; a
    transaction that changes the map must append at least one entry (the cause).
    """

    def __init__(self) -> None:
        self._pending: dict[StateKey, bytes | None] = {}
        self.applied: MapRoot | None = None

    def set(self, key: StateKey, value: Mapping[str, Any]) -> None:
        """Set the key's value (a JSON object with `kind` = `<namespace>.state/<n>`)."""
        self._queue(key, encode_value(key, value))

    def set_encoded(self, key: StateKey, value: bytes) -> None:
        """Set a value already in its `encode_value` spelling (trusted callers only)."""
        if len(value) > MAX_VALUE_BYTES:
            raise StateLimitError(
                f"value of {key.text} is {len(value)} bytes; the limit is {MAX_VALUE_BYTES}"
            )
        self._queue(key, value)

    def delete(self, key: StateKey) -> None:
        self._queue(key, None)

    def __len__(self) -> int:
        return len(self._pending)

    def _queue(self, key: StateKey, value: bytes | None) -> None:
        if key not in self._pending and len(self._pending) >= MAX_UPDATES_PER_APPLY:
            raise StateLimitError(
                f"one transaction changes at most {MAX_UPDATES_PER_APPLY} state-map keys"
            )
        self._pending[key] = value

    def __call__(self, session: Session, old_size: int, new_size: int) -> None:
        if not self._pending:
            return
        if new_size == old_size:
            raise StateVersionError(
                "a transaction that changes the state map must append the entry that causes it"
            )
        self.applied = apply_updates(session, new_size, self._pending)


def state_updates(transaction: LogTransaction) -> StateUpdates:
    """The transaction's state-map changes (one collection per transaction)."""
    return transaction.flush_companion(StateUpdates)
