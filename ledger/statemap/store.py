"""The stored state map: nodes appended in write order, a root per log size, and the hook
into the log's transactions.

    with registry.log.write() as tx:
        index = tx.append({"kind": "certificate.retired/1", ...})   # the leaf
        state_updates(tx).set(key, {"kind": "certificate.state/1", ...})  # what it changes
    # the leaf, the map's new nodes and its root at the new size commit together, or neither

Versions are log sizes: the map at version N is the state after entries 0..N-1 (what the
checkpoint for size N will carry). A transaction that changes the map appends its new nodes to
`state_node` and its root to `state_root` (keyed by the log size after its leaves). Nodes are
shared by every later version that still contains them and are never changed or deleted, so
every past version stays provable (docs/state-map.md, "Retention").

Rows are numbered in the order they are written and an interior row names the rows of its
children, so reads follow row ids and writes only ever append (decision 60): keyed by hash, each
new node would land on a B-tree page of its own. Nothing read is trusted: each node is checked
against the hash its parent holds before it is used or goes into a proof.

Reads follow the log's conventions (decision 15): a proof at any version is one statement on an
autocommit connection — the log's size, the version's root and, through a recursive CTE, the
nodes on the key's path, one primary-key lookup per level (≈ log2 n).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from ledger.log.models import LogHead
from ledger.log.store import HEAD_ROW_ID, LogNotInitialisedError, LogTransaction
from ledger.statemap.keys import MAX_VALUE_BYTES, StateKey, StateKeyError, encode_value
from ledger.statemap.proof import (
    EMPTY_HASH,
    INTERIOR_PREFIX,
    KEY_BITS,
    key_bit,
    leaf_node,
    value_hash,
)
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
"""Row ids per `IN` lookup: under every driver's parameter limit."""
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


# ------------------------------------------------------------------------------- SQL

_HEAD_AT_VERSION = """
SELECT l.size AS log_size, r.root AS root, r.root_id AS root_id, r.key_count AS key_count
FROM log_head AS l LEFT JOIN state_root AS r ON r.version = (
    SELECT s.version FROM state_root AS s WHERE s.version <= COALESCE(:version, l.size)
    ORDER BY s.version DESC LIMIT 1)
WHERE l.id = :head_id
"""
"""The log's size and the newest map version at or below the asked-for size (or the log's
size): its root, the root's row and the key count; NULLs before the map's first version."""

_WALK = """
walk(depth, id, node, left_id, right_id, value) AS (
    SELECT 0, n.id, n.node, n.left_id, n.right_id, n.value FROM {seed}
    UNION ALL
    SELECT w.depth + 1, n.id, n.node, n.left_id, n.right_id, n.value
    FROM walk AS w JOIN state_node AS n ON n.id = CASE substr(CAST(:bits AS TEXT), w.depth + 1, 1)
        WHEN '1' THEN w.right_id ELSE w.left_id END
    WHERE w.depth < :max_depth
)
"""
"""Down a key's path: the child on the side of the key's next bit, until a leaf (no child
rows) or an empty child (NULL)."""

_PROOF_SQL = (
    "WITH RECURSIVE head AS ("  # noqa: S608 - constant SQL pieces
    + _HEAD_AT_VERSION
    + "),"
    + _WALK.format(seed="head JOIN state_node AS n ON n.id = head.root_id")
    + "SELECT -1, root, NULL, log_size, key_count FROM head "
    "UNION ALL SELECT depth, node, value, NULL, NULL FROM walk"
)
"""One statement, one snapshot: the log's size, the version's root and key count, and the
nodes on the key's path from that root down to a leaf or an empty child."""

_PATH_SQL = (
    "WITH RECURSIVE "  # noqa: S608 - constant SQL pieces
    + _WALK.format(seed="state_node AS n WHERE n.id = :root_id")
    + "SELECT id, node, left_id, right_id FROM walk"
)
"""The rows on a key's path from the head's root (a small batch's reads)."""

_LATEST = """
SELECT r.version, r.root, r.root_id, r.key_count,
       (SELECT COALESCE(MAX(n.id), 0) FROM state_node AS n)
FROM state_root AS r ORDER BY r.version DESC LIMIT 1
"""

_NAMED_PARAMETER = re.compile(r"(?<![:\w]):(\w+)")


@functools.cache
def _in_driver_style(sql: str, dialect: str) -> str:
    """`:name` parameters as the driver spells them (psycopg: `%(name)s`)."""
    return _NAMED_PARAMETER.sub(r"%(\1)s", sql) if dialect == "postgresql" else sql


def _driver_rows(
    connection: Connection, sql: str, parameters: Mapping[str, Any] | Sequence[Any]
) -> list[tuple[Any, ...]]:
    """Run `sql` on the driver's own cursor: SQLAlchemy's statement and row handling cost
    as much as a proof's lookups."""
    cursor = connection.connection.cursor()
    try:
        cursor.execute(_in_driver_style(sql, connection.dialect.name), parameters)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _walk_parameters(key_hash: bytes) -> dict[str, Any]:
    return {"bits": format(int.from_bytes(key_hash, "big"), "0256b"), "max_depth": KEY_BITS}


# ------------------------------------------------------------------------------ reads


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
        log_size, root, _, key_count = rows[0]
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
    head = _lock_and_check(session, version)
    rows = _StoredRows(session, head.root, head.root_id)
    if len(updates) <= PATH_READ_BATCH:
        for key_hash in updates:
            rows.read_path(key_hash)
    else:
        rows.read_levels(sorted(updates))
    try:
        change = update_tree(head.root, updates.items(), rows.node)
    except StateTreeError as exc:
        raise StateMapDamagedError(f"state map at version {head.version}: {exc}") from exc
    key_count = head.key_count + change.key_count_delta
    assert key_count >= 0, "more keys deleted than the map held"
    root_id = rows.append(change.new_nodes, change.new_values, head.next_id, change.root)
    _insert_root(session, version, change.root, root_id, key_count)
    return MapRoot(version, change.root, key_count)


def bulk_load(
    session: Session, version: int, keys: Sequence[bytes], values: Sequence[bytes]
) -> MapRoot:
    """Fill an empty map with `keys` (key hashes, sorted and distinct) and their encoded
    `values`, as `version` (the transaction contract of `apply_updates`).

    The tree comes from the builder `apply_updates` uses, so the nodes are the ones batches
    of the same keys would leave. Rows are streamed to the database in chunks — the leaves in
    key order, then the interior nodes children first — so memory holds the keys, not the tree,
    and each value is read twice (for its row, for the tree): `values` may compute its items on
    demand. For building a map from scratch (benchmarks, a registry's first map); not bounded
    by `MAX_UPDATES_PER_APPLY`.
    """
    if len(keys) != len(values):
        raise ValueError(f"{len(keys)} keys but {len(values)} values")
    head = _lock_and_check(session, version)
    if head.version != 0:
        raise StateVersionError(f"bulk loading needs an empty map; it has version {head.version}")
    writer = _RowWriter(session.connection())
    first_leaf_id = head.next_id
    for offset, (key, value) in enumerate(zip(keys, values, strict=True)):
        if len(key) != 32:
            raise StateKeyError(f"a state-map key hash is 32 bytes, not {len(key)}")
        if len(value) > MAX_VALUE_BYTES:
            raise StateLimitError(f"a value is {len(value)} bytes; the limit is {MAX_VALUE_BYTES}")
        writer.add((first_leaf_id + offset, leaf_node(key, value_hash(value)), None, None, value))
    # Built bottom-up, each node is consumed by its parent right after its sibling: the ids of
    # the nodes waiting for a parent (at most one per level) are all that must be remembered.
    waiting: dict[bytes, int] = {}
    next_id = first_leaf_id + len(keys)

    def leaf_at(index: int) -> bytes:
        leaf = leaf_node(keys[index], value_hash(values[index]))
        waiting[hashlib.sha256(leaf).digest()] = first_leaf_id + index
        return leaf

    def sink(digest: bytes, node: bytes) -> None:
        nonlocal next_id
        left, right = node[1:33], node[33:65]
        left_id = None if left == EMPTY_HASH else waiting.pop(left)
        right_id = None if right == EMPTY_HASH else waiting.pop(right)
        writer.add((next_id, node, left_id, right_id, None))
        waiting[digest] = next_id
        next_id += 1

    root = build_tree(keys, _LeafView(len(keys), leaf_at), sink)
    writer.flush()
    root_id = waiting.pop(root) if keys else None
    assert not waiting, "every node but the root has a parent"
    _insert_root(session, version, root, root_id, len(keys))
    return MapRoot(version, root, len(keys))


class _LeafView(Sequence[bytes]):
    """Leaf nodes made when the builder asks for them, not held."""

    def __init__(self, size: int, leaf_at: Any) -> None:
        self.size = size
        self.leaf_at = leaf_at

    def __len__(self) -> int:
        return self.size

    @overload
    def __getitem__(self, index: int) -> bytes: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[bytes]: ...
    def __getitem__(self, index: int | slice) -> bytes | Sequence[bytes]:
        if isinstance(index, slice):
            raise TypeError("leaves are made one at a time")
        leaf: bytes = self.leaf_at(index)
        return leaf

    def __iter__(self) -> Iterator[bytes]:
        raise TypeError("leaves are made one at a time")


@dataclass(frozen=True, slots=True)
class _Head:
    version: int
    root: bytes
    root_id: int | None
    key_count: int
    next_id: int


def _lock_and_check(session: Session, version: int) -> _Head:
    """Take (or confirm) the log's writer lock, check that `version` is the size this
    transaction is about to create, and read the map's newest version and next row id."""
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
    rows = _driver_rows(session.connection(), _LATEST, {})
    if not rows:
        next_id = _driver_rows(
            session.connection(), "SELECT COALESCE(MAX(id), 0) FROM state_node", {}
        )[0][0]
        return _Head(0, EMPTY_HASH, None, 0, next_id + 1)
    latest, root, root_id, key_count, max_id = rows[0]
    # The map never runs ahead of the log: its versions are sizes the log has reached.
    assert latest <= log_size, "state map is ahead of the log"
    return _Head(latest, bytes(root), root_id, key_count, max_id + 1)


def _insert_root(
    session: Session, version: int, root: bytes, root_id: int | None, key_count: int
) -> None:
    _driver_execute(
        session.connection(),
        "INSERT INTO state_root (version, root, root_id, key_count) VALUES (?, ?, ?, ?)",
        [(version, root, root_id, key_count)],
    )


def _driver_execute(connection: Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """An executemany through the driver (`?` placeholders)."""
    if connection.dialect.name == "postgresql":
        sql = sql.replace("?", "%s")
    cursor = connection.connection.cursor()
    try:
        cursor.executemany(sql, rows)
    finally:
        cursor.close()


_NodeRow = tuple[int, bytes, int | None, int | None, bytes | None]
"""(id, node, left child's id, right child's id, value)."""


class _RowWriter:
    """Appends node rows in chunks: through COPY on PostgreSQL, an executemany on SQLite."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.pending: list[_NodeRow] = []

    def add(self, row: _NodeRow) -> None:
        self.pending.append(row)
        if len(self.pending) >= INSERT_CHUNK:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        if self.connection.dialect.name == "postgresql":
            driver_connection: Any = self.connection.connection.driver_connection
            with (
                driver_connection.cursor() as cursor,
                cursor.copy(
                    "COPY state_node (id, node, left_id, right_id, value) FROM STDIN "
                    "(FORMAT BINARY)"
                ) as copy,
            ):
                copy.set_types(["int8", "bytea", "int8", "int8", "bytea"])
                for row in self.pending:
                    copy.write_row(row)
        else:
            _driver_execute(
                self.connection,
                "INSERT INTO state_node (id, node, left_id, right_id, value) "
                "VALUES (?, ?, ?, ?, ?)",
                self.pending,
            )
        self.pending.clear()


class _StoredRows:
    """The old tree's rows a batch reads, and the rows it appends.

    Paths are read before the batch is computed (one statement per key for small batches,
    level by level for large ones, each row once); every row read is checked against the hash
    its parent holds, and the ids of its children are remembered, so that a node the
    computation needs beyond the paths (the leaf that moves up after a deletion) is one
    lookup by id, and new interior nodes can name the rows of old children.
    """

    def __init__(self, session: Session, root: bytes, root_id: int | None) -> None:
        self.connection = session.connection()
        self.root = root
        self.nodes: dict[bytes, bytes] = {}
        self.ids: dict[bytes, int] = {}
        if root != EMPTY_HASH:
            if root_id is None:
                raise StateMapDamagedError("the map's root has no stored row")
            self.ids[root] = root_id

    def node(self, node_hash: bytes) -> bytes:
        """The `NodeReader` of `update_tree`."""
        node = self.nodes.get(node_hash)
        if node is None:
            row_id = self.ids.get(node_hash)
            if row_id is None:
                raise MissingNodeError(f"node {node_hash.hex()} is not on a path that was read")
            self._fetch({row_id: node_hash})
            node = self.nodes[node_hash]
        return node

    def read_path(self, key_hash: bytes) -> None:
        if self.root == EMPTY_HASH:
            return
        rows = _driver_rows(
            self.connection,
            _PATH_SQL,
            {"root_id": self.ids[self.root]} | _walk_parameters(key_hash),
        )
        expected = self.root
        for depth, (row_id, stored, left_id, right_id) in enumerate(rows):
            node = bytes(stored)
            self._remember(expected, row_id, node, left_id, right_id)
            if node[0] != INTERIOR_PREFIX[0]:
                break
            expected = node[33:65] if key_bit(key_hash, depth) else node[1:33]
            if expected == EMPTY_HASH:
                break

    def read_levels(self, keys: Sequence[bytes]) -> None:
        frontier = [] if self.root == EMPTY_HASH else [(0, self.root, 0, len(keys))]
        while frontier:
            self._fetch(
                {self.ids[h]: h for _, h, _, _ in frontier if h not in self.nodes},
            )
            next_frontier = []
            for depth, node_hash, lo, hi in frontier:
                node = self.nodes[node_hash]
                if node[0] != INTERIOR_PREFIX[0]:
                    continue
                mid = split_point(keys, depth, lo, hi)
                left, right = node[1:33], node[33:65]
                if lo < mid and left != EMPTY_HASH:
                    next_frontier.append((depth + 1, left, lo, mid))
                if mid < hi and right != EMPTY_HASH:
                    next_frontier.append((depth + 1, right, mid, hi))
            frontier = next_frontier

    def _fetch(self, wanted: Mapping[int, bytes]) -> None:
        """Read rows by id; `wanted` maps each id to the hash its parent holds."""
        ids = list(wanted)
        placeholder = "%s" if self.connection.dialect.name == "postgresql" else "?"
        for start in range(0, len(ids), FETCH_CHUNK):
            chunk = ids[start : start + FETCH_CHUNK]
            rows = _driver_rows(
                self.connection,
                "SELECT id, node, left_id, right_id FROM state_node "  # noqa: S608 - placeholders
                f"WHERE id IN ({', '.join([placeholder] * len(chunk))})",
                tuple(chunk),
            )
            for row_id, node, left_id, right_id in rows:
                self._remember(wanted[row_id], row_id, bytes(node), left_id, right_id)
        missing = [row_id for row_id, h in wanted.items() if h not in self.nodes]
        if missing:
            raise StateMapDamagedError(f"state-map rows {missing[:5]} are missing")

    def _remember(
        self,
        expected: bytes,
        row_id: int,
        node: bytes,
        left_id: int | None,
        right_id: int | None,
    ) -> None:
        # A damaged row must not pass for the node its parent names.
        if hashlib.sha256(node).digest() != expected:
            raise StateMapDamagedError(f"state-map row {row_id} does not hash to {expected.hex()}")
        self.nodes[expected] = node
        self.ids[expected] = row_id
        if node[0] == INTERIOR_PREFIX[0]:
            for child, child_id in ((node[1:33], left_id), (node[33:65], right_id)):
                if child != EMPTY_HASH:
                    if child_id is None:
                        raise StateMapDamagedError(f"state-map row {row_id} lacks a child's id")
                    self.ids[child] = child_id

    def append(
        self,
        new_nodes: Mapping[bytes, bytes],
        new_values: Mapping[bytes, bytes],
        next_id: int,
        root: bytes,
    ) -> int | None:
        """Append the batch's new nodes (a node whose row exists already, like a value set
        back, keeps that row) and return the row id of `root` (None for the empty map)."""
        fresh = [digest for digest in new_nodes if digest not in self.ids]
        for offset, digest in enumerate(fresh):
            self.ids[digest] = next_id + offset
        writer = _RowWriter(self.connection)
        for digest in fresh:
            node = new_nodes[digest]
            left_id = right_id = None
            if node[0] == INTERIOR_PREFIX[0]:
                left, right = node[1:33], node[33:65]
                left_id = None if left == EMPTY_HASH else self.ids[left]
                right_id = None if right == EMPTY_HASH else self.ids[right]
            writer.add((self.ids[digest], node, left_id, right_id, new_values.get(digest)))
        writer.flush()
        return None if root == EMPTY_HASH else self.ids[root]


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
