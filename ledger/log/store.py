"""The append-only log: the one place where a state change becomes a leaf.

Every feature writes through `Log.write()`:

    with log.write() as tx:
        tx.session.add(SomeRow(...))                   # the state change
        index = tx.append({"kind": "thing.done/1", ...})  # its leaf
    # both committed together, or neither

A feature whose own authenticated structure must move with the log (the state map) attaches
a flush companion to the transaction (`LogTransaction.flush_companion`): it runs after the
caller's block, before the leaves are written, in the same database transaction.

Storage (DESIGN §6): leaves in `log_entry`, every complete interior node in
`log_tile` (256 hashes of one level per row). Complete nodes never change, so the
root of any past size and any inclusion or consistency proof are assembled from
O(log n) stored nodes (`ledger.log.merkle` plans which), never recomputed from leaves.

Writers are serialised: SQLite's BEGIN IMMEDIATE, PostgreSQL's row lock on the
head row. Readers never wait for them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from sqlalchemy import BigInteger, CursorResult, literal, null, select, text, union_all, update
from sqlalchemy.orm import Session

from ledger.log.canonical import canonical_entry
from ledger.log.checkpoint import Checkpoint, NoteSigner, NoteVerifier, sign_checkpoint
from ledger.log.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    NodeId,
    ProofRequestError,
    consistency_plan,
    fold_range,
    inclusion_plan,
    leaf_hash,
    range_nodes,
    root_plan,
)
from ledger.log.models import LogEntry, LogHead, LogTile
from ledger.storage.base import utc_now
from ledger.storage.db import Database

TILE_WIDTH = 256
TILE_BYTES = TILE_WIDTH * HASH_SIZE
TILE_LEVEL_SHIFT = 56
"""Tile keys are `level << 56 | tile index`: levels < 63 and indices < 2^54 fit an int64."""
_TILE_INDEX_MASK = (1 << TILE_LEVEL_SHIFT) - 1
_HEAD_MARKER = -1
"""Key of the head row in the combined head-and-tiles read; tile keys are never negative."""
MAX_LEAVES_PER_TRANSACTION = 100_000
"""Bounds the memory of one commit (leaves + new nodes are held until the flush)."""
MAX_ENTRIES_PER_READ = 1_000
HEAD_ROW_ID = 1


class LogError(RuntimeError):
    """The log is missing or cannot accept the operation."""


class LogNotInitialisedError(LogError):
    pass


class EntryNotFoundError(LogError, LookupError):
    pass


@dataclass(frozen=True, slots=True)
class TreeHead:
    origin: str
    size: int
    root: bytes


@dataclass(frozen=True, slots=True)
class InclusionProof:
    index: int
    size: int
    leaf_hash: bytes
    root: bytes
    hashes: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    size1: int
    size2: int
    root1: bytes
    root2: bytes
    hashes: tuple[bytes, ...]


class FlushCompanion(Protocol):
    """Work that must commit with a transaction's leaves, or not at all."""

    def __call__(self, session: Session, old_size: int, new_size: int) -> None:
        """Runs under the writer lock after the caller's block, before the leaves are written;
        `new_size` is the log's size once they are. Raising rolls the whole transaction back."""


CompanionT = TypeVar("CompanionT", bound=FlushCompanion)


class LogTransaction:
    """Handed out by `Log.write()`: a database session plus leaves queued for the log.

    Indices returned by `append` are final once the block commits: the writer lock is
    held for the whole transaction, so nobody else can take them.
    """

    def __init__(self, session: Session, head: LogHead) -> None:
        self.session = session
        self.start_size = head.size
        self._leaves: list[bytes] = []
        self._companions: dict[type[FlushCompanion], FlushCompanion] = {}

    def flush_companion(self, kind: type[CompanionT]) -> CompanionT:
        """The transaction's one `kind()` companion, created on first use (so every caller in
        the transaction adds to the same one)."""
        companion = self._companions.get(kind)
        if companion is None:
            companion = self._companions[kind] = kind()
        return cast(CompanionT, companion)

    def run_companions(self) -> None:
        new_size = self.next_index
        for companion in self._companions.values():
            companion(self.session, self.start_size, new_size)
        assert self.next_index == new_size, "a flush companion must not append leaves"

    @property
    def next_index(self) -> int:
        return self.start_size + len(self._leaves)

    def append(self, entry: Mapping[str, Any]) -> int:
        """Queue one entry (canonicalised with JCS) and return its log index."""
        return self.append_canonical(canonical_entry(entry))

    def append_canonical(self, leaf: bytes) -> int:
        """Queue bytes that are already canonical entry JSON (trusted callers only)."""
        if len(self._leaves) >= MAX_LEAVES_PER_TRANSACTION:
            raise LogError(f"one transaction appends at most {MAX_LEAVES_PER_TRANSACTION} leaves")
        index = self.next_index
        self._leaves.append(leaf)
        return index

    def extend_canonical(self, leaves: Sequence[bytes]) -> range:
        if len(self._leaves) + len(leaves) > MAX_LEAVES_PER_TRANSACTION:
            raise LogError(f"one transaction appends at most {MAX_LEAVES_PER_TRANSACTION} leaves")
        first = self.next_index
        self._leaves.extend(leaves)
        return range(first, first + len(leaves))

    @property
    def pending(self) -> Sequence[bytes]:
        return self._leaves


CHECKPOINT_CACHE_SIZE = 64


class Log:
    def __init__(self, database: Database) -> None:
        self.database = database
        # Signed notes per (signer, size, root): a checkpoint never changes for a tree size,
        # so it is signed once, not on every request (issue 10 item 5). The root is part of
        # the key, so a cache entry can never answer for another tree.
        self._checkpoints: dict[tuple[NoteVerifier, int, bytes], str] = {}

    # ------------------------------------------------------------------ set-up

    def initialise(self, origin: str) -> TreeHead:
        """Create the empty log with its checkpoint origin; idempotent for the same origin."""
        with self.database.write() as session:
            head = session.get(LogHead, HEAD_ROW_ID)
            if head is None:
                head = LogHead(
                    id=HEAD_ROW_ID, origin=origin, size=0, root=EMPTY_ROOT, updated_at=utc_now()
                )
                session.add(head)
            elif head.origin != origin:
                raise LogError(
                    f"the log's origin is {head.origin!r}; it cannot change to {origin!r}"
                )
            return TreeHead(head.origin, head.size, head.root)

    # ------------------------------------------------------------------ writing

    @contextmanager
    def write(self) -> Iterator[LogTransaction]:
        """One transaction: the caller's state changes and its leaves commit together."""
        with self.database.write() as session:
            head = session.execute(
                select(LogHead).where(LogHead.id == HEAD_ROW_ID).with_for_update()
            ).scalar_one_or_none()
            if head is None:
                raise LogNotInitialisedError("the log is not initialised; run `carbonledger init`")
            transaction = LogTransaction(session, head)
            yield transaction
            transaction.run_companions()
            if transaction.pending:
                self._flush(session, head, transaction.pending)

    def append(self, entries: Iterable[Mapping[str, Any]]) -> list[int]:
        """Append entries in one transaction (convenience for callers with no own rows)."""
        with self.write() as transaction:
            return [transaction.append(entry) for entry in entries]

    def _flush(self, session: Session, head: LogHead, leaves: Sequence[bytes]) -> None:
        old_size = head.size
        new_size = old_size + len(leaves)
        frontier_ids = range_nodes(0, old_size)
        partial_tiles = {
            (level, (old_size >> level) // TILE_WIDTH)
            for level in range(new_size.bit_length())
            if (new_size >> level) > (old_size >> level) and (old_size >> level) % TILE_WIDTH
        }
        tiles = _load_tiles(
            session, {(level, index // TILE_WIDTH) for level, index in frontier_ids} | partial_tiles
        )
        # The right edge of the tree: one perfect subtree per set bit of old_size.
        edge = {level: _node_from_tiles(tiles, (level, index)) for level, index in frontier_ids}
        new_nodes, edge = _hash_new_nodes(leaves, edge)
        new_root = fold_range([edge[level] for level in sorted(edge, reverse=True)])

        tile_rows: list[dict[str, Any]] = []
        for level, hashes in new_nodes.items():
            first = old_size >> level
            assert len(hashes) == (new_size >> level) - first
            tile_index, offset = divmod(first, TILE_WIDTH)
            existing = tiles.get((level, tile_index), b"") if offset else b""
            assert len(existing) == offset * HASH_SIZE, "a partial tile must end at the log's edge"
            data = existing + b"".join(hashes)
            for start in range(0, len(data), TILE_BYTES):
                tile_rows.append(
                    {"id": tile_key(level, tile_index), "hashes": data[start : start + TILE_BYTES]}
                )
                tile_index += 1

        _insert_entries(session, old_size, leaves)
        session.execute(
            text(
                "INSERT INTO log_tile (id, hashes) VALUES (:id, :hashes) "
                "ON CONFLICT (id) DO UPDATE SET hashes = excluded.hashes"
            ),
            tile_rows,
        )
        updated: CursorResult[Any] = session.execute(  # type: ignore[assignment]
            update(LogHead)
            .where(LogHead.id == HEAD_ROW_ID, LogHead.size == old_size)
            .values(size=new_size, root=new_root, updated_at=utc_now())
            .execution_options(synchronize_session=False)
        )
        # Append-only: the head moved from exactly the size we read under the lock.
        assert updated.rowcount == 1, "log head changed under the writer lock"
        session.expire(head)

    # ------------------------------------------------------------------ reading

    def head(self) -> TreeHead:
        with self.database.read() as session:
            return _read_head(session)

    def root_at(self, size: int) -> bytes:
        ids = root_plan(size)
        nodes = self._nodes_at(size, set(ids))
        return fold_range([nodes[node] for node in ids])

    def entry(self, index: int) -> bytes:
        with self.database.read() as session:
            data = session.execute(
                select(LogEntry.data).where(LogEntry.idx == index)
            ).scalar_one_or_none()
            if data is None:
                raise EntryNotFoundError(f"no entry at index {index}")
            return data

    def entries(self, start: int, end: int) -> list[bytes]:
        if not 0 <= start <= end or end - start > MAX_ENTRIES_PER_READ:
            raise ProofRequestError(f"entries are read in ranges of at most {MAX_ENTRIES_PER_READ}")
        with self.database.read() as session:
            rows = session.execute(
                select(LogEntry.data)
                .where(LogEntry.idx >= start, LogEntry.idx < end)
                .order_by(LogEntry.idx)
            ).scalars()
            return list(rows)

    def inclusion_proof(self, index: int, size: int | None = None) -> InclusionProof:
        size = self.head().size if size is None else size
        plan = inclusion_plan(index, size)
        root_ids = root_plan(size)
        nodes = self._nodes_at(size, plan.node_ids() | {(0, index)} | set(root_ids))
        return InclusionProof(
            index=index,
            size=size,
            leaf_hash=nodes[(0, index)],
            root=fold_range([nodes[node] for node in root_ids]),
            hashes=tuple(plan.assemble(nodes)),
        )

    def consistency_proof(self, size1: int, size2: int | None = None) -> ConsistencyProof:
        size2 = self.head().size if size2 is None else size2
        plan = consistency_plan(size1, size2)
        old_root_ids, new_root_ids = root_plan(size1), root_plan(size2)
        nodes = self._nodes_at(size2, plan.node_ids() | set(old_root_ids) | set(new_root_ids))
        return ConsistencyProof(
            size1=size1,
            size2=size2,
            root1=fold_range([nodes[node] for node in old_root_ids]),
            root2=fold_range([nodes[node] for node in new_root_ids]),
            hashes=tuple(plan.assemble(nodes)),
        )

    def _nodes_at(self, size: int, node_ids: set[NodeId]) -> dict[NodeId, bytes]:
        """Nodes of the tree of `size` leaves, and the check that the log has reached that
        size, in a single statement: one round trip and one snapshot."""
        tile_keys = sorted({tile_key(level, index // TILE_WIDTH) for level, index in node_ids})
        head_row = select(literal(_HEAD_MARKER, BigInteger), LogHead.root, LogHead.size).where(
            LogHead.id == HEAD_ROW_ID
        )
        tile_rows = select(LogTile.id, LogTile.hashes, null()).where(LogTile.id.in_(tile_keys))
        with self.database.snapshot() as connection:
            rows: list[Any] = list(connection.execute(union_all(head_row, tile_rows)))
        tiles: dict[tuple[int, int], bytes] = {}
        head_size: int | None = None
        for key, data, head_size_column in rows:
            if key == _HEAD_MARKER:
                head_size = head_size_column
            else:
                tiles[key >> TILE_LEVEL_SHIFT, key & _TILE_INDEX_MASK] = data
        if head_size is None:
            raise LogNotInitialisedError("the log is not initialised; run `carbonledger init`")
        _require_size(head_size, size)
        return {node: _node_from_tiles(tiles, node) for node in node_ids}

    def checkpoint(self, signer: NoteSigner, size: int | None = None) -> str:
        """The signed checkpoint note for the current head (or an earlier size)."""
        head = self.head()
        if size is None or size == head.size:
            return self.signed_checkpoint(head, signer)
        return self.signed_checkpoint(TreeHead(head.origin, size, self.root_at(size)), signer)

    def signed_checkpoint(self, head: TreeHead, signer: NoteSigner) -> str:
        """The note for `head`, signed once per (signer, size, root) and then cached."""
        key = (signer.verifier, head.size, head.root)
        note = self._checkpoints.get(key)
        if note is None:
            note = sign_checkpoint(Checkpoint(head.origin, head.size, head.root), signer)
            if len(self._checkpoints) >= CHECKPOINT_CACHE_SIZE:
                self._checkpoints.clear()  # rarely hit; old sizes are rarely asked twice
            self._checkpoints[key] = note
        return note


def _hash_new_nodes(
    leaves: Sequence[bytes], edge: Mapping[int, bytes]
) -> tuple[dict[int, list[bytes]], dict[int, bytes]]:
    """Hash a batch level by level.

    `edge` maps level → the perfect subtree on the tree's right edge at that level (one per
    set bit of the old size). Returns the new complete nodes per level (in index order) and
    the new right edge. At each level the edge node, if any, is the left partner of the first
    new node; an unpaired last node becomes the new edge node of that level.
    """
    sha256 = hashlib.sha256
    new_nodes: dict[int, list[bytes]] = {}
    new_edge = dict(edge)
    current = [sha256(b"\x00" + leaf).digest() for leaf in leaves]
    level = 0
    while current:
        new_nodes[level] = current
        row = [new_edge.pop(level), *current] if level in new_edge else current
        if len(row) % 2:
            new_edge[level] = row[-1]
        current = [
            sha256(b"\x01" + row[i] + row[i + 1]).digest() for i in range(0, len(row) - 1, 2)
        ]
        level += 1
    return new_nodes, new_edge


def _read_head(session: Session) -> TreeHead:
    row = session.execute(
        select(LogHead.origin, LogHead.size, LogHead.root).where(LogHead.id == HEAD_ROW_ID)
    ).one_or_none()
    if row is None:
        raise LogNotInitialisedError("the log is not initialised; run `carbonledger init`")
    return TreeHead(row.origin, row.size, row.root)


def _require_size(head_size: int, size: int) -> None:
    if not 0 <= size <= head_size:
        raise ProofRequestError(f"tree size {size} is outside 0..{head_size} (the current size)")


def tile_key(level: int, tile_index: int) -> int:
    assert 0 <= level < 63 and 0 <= tile_index < 1 << TILE_LEVEL_SHIFT
    return level << TILE_LEVEL_SHIFT | tile_index


def _load_tiles(session: Session, tile_ids: set[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    if not tile_ids:
        return {}
    keys = [tile_key(level, index) for level, index in tile_ids]
    rows = session.execute(select(LogTile.id, LogTile.hashes).where(LogTile.id.in_(keys)))
    return {(key >> TILE_LEVEL_SHIFT, key & _TILE_INDEX_MASK): hashes for key, hashes in rows}


def stored_leaf_hashes(session: Session, indices: Iterable[int]) -> dict[int, bytes]:
    """The stored leaf hashes (level-0 nodes) of committed entries, without reading the leaves.

    For callers that name many leaves by hash (a credential's evidence): one read of 8 KiB
    tiles instead of every leaf's bytes and a SHA-256 each.
    """
    wanted = sorted(set(indices))
    tiles = _load_tiles(session, {(0, index // TILE_WIDTH) for index in wanted})
    return {index: _node_from_tiles(tiles, (0, index)) for index in wanted}


def _node_from_tiles(tiles: Mapping[tuple[int, int], bytes], node: NodeId) -> bytes:
    level, index = node
    tile_index, offset = divmod(index, TILE_WIDTH)
    tile = tiles.get((level, tile_index), b"")
    value = tile[offset * HASH_SIZE : (offset + 1) * HASH_SIZE]
    if len(value) != HASH_SIZE:
        raise LogError(f"stored node {node} is missing: the log's node tiles are damaged")
    return value


def _insert_entries(session: Session, first_index: int, leaves: Sequence[bytes]) -> None:
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # COPY is several times faster than executemany for large batches.
        driver_connection: Any = connection.connection.driver_connection
        with (
            driver_connection.cursor() as cursor,
            cursor.copy("COPY log_entry (idx, data) FROM STDIN (FORMAT BINARY)") as copy,
        ):
            copy.set_types(["int8", "bytea"])
            for index, leaf in enumerate(leaves, start=first_index):
                copy.write_row((index, leaf))
    else:
        connection.exec_driver_sql(
            "INSERT INTO log_entry (idx, data) VALUES (?, ?)",
            list(zip(range(first_index, first_index + len(leaves)), leaves, strict=True)),
        )


def recompute_root(leaves: Iterable[bytes]) -> bytes:
    """Streaming from-scratch root over raw leaves (O(log n) memory), for audits and tests."""
    stack: list[tuple[int, bytes]] = []
    for leaf in leaves:
        level, node = 0, leaf_hash(leaf)
        while stack and stack[-1][0] == level:
            node = hashlib.sha256(b"\x01" + stack.pop()[1] + node).digest()
            level += 1
        stack.append((level, node))
    return fold_range([node for _, node in stack])
