"""The embedded chain's py-evm database, kept in one SQLite file (decision 75).

py-evm stores everything it knows — block headers and bodies, receipts, the canonical-chain
index and the account/storage tries — in one key-value database. This module is that
database on disk, so opening the chain reads the canonical head and nothing else: the cost
is O(1) in the number of past transactions, where the replay journal it replaces was O(n).

It knows nothing about the contract: keys and values are py-evm's own bytes, so a new
contract (or a new ABI) needs no change here.

Writes go to an in-memory overlay and reach the file only in `commit`, one SQLite
transaction per mined block. A crash (kill -9) at any moment therefore leaves the file at
the last committed block: SQLite's write-ahead log makes the transaction all or nothing.
Keys py-evm writes while executing a transaction that is never committed (trie nodes, all
addressed by their hash) only ever live in the overlay.

Read-only handles (`anchor status`, `audit replay`, `verify` while `serve` holds the
writer) hold one read transaction for their whole life: they see the chain as it was at
the moment they opened, whatever the writer commits meanwhile. Anything py-evm writes
through them (a `call` builds scratch state) stays in their overlay and is dropped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from eth.db.backends.base import BaseDB

from attestation.chain.errors import ChainError

FORMAT = "1"
"""meta `format`: the layout of this file; a reader refuses any other."""

_MISSING = object()
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS kv (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


class StateFile(BaseDB):
    """py-evm's key-value database in SQLite, with a write overlay committed per block."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self.reads = 0
        """Keys looked up in the file (not the overlay): the O(1) open is tested on it."""
        self._pending: dict[bytes, bytes | None] = {}
        try:
            if read_only:
                # mode=ro: a reader can never write the file, whatever py-evm asks of it.
                self._db = sqlite3.connect(
                    f"{path.resolve().as_uri()}?mode=ro",
                    uri=True,
                    isolation_level=None,
                    check_same_thread=False,
                )
                self._db.execute("BEGIN")
                self._check_format()  # the first read fixes the snapshot
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
                self._db.execute("PRAGMA journal_mode=WAL")
                # FULL: a committed block survives a power cut, not only a process crash.
                self._db.execute("PRAGMA synchronous=FULL")
                for statement in _SCHEMA:
                    self._db.execute(statement)
                self._check_format()
        except sqlite3.Error as exc:
            raise ChainError(f"the embedded chain state {path} cannot be opened: {exc}") from exc

    def _check_format(self) -> None:
        found = self.meta("format")
        if found is not None and found != FORMAT:
            raise ChainError(
                f"{self.path} has embedded-chain format {found}; this version reads {FORMAT}"
            )

    # ------------------------------------------------------------------ BaseDB

    def __getitem__(self, key: bytes) -> bytes:
        if key in self._pending:
            value = self._pending[key]
            if value is None:
                raise KeyError(key)
            return value
        self.reads += 1
        row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        return bytes(row[0])

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._pending[key] = bytes(value)

    def __delitem__(self, key: bytes) -> None:
        if not self._exists(key):
            raise KeyError(key)
        self._pending[key] = None

    def _exists(self, key: bytes) -> bool:
        if key in self._pending:
            return self._pending[key] is not None
        self.reads += 1
        return self._db.execute("SELECT 1 FROM kv WHERE key = ?", (key,)).fetchone() is not None

    def __iter__(self) -> Iterator[bytes]:
        raise NotImplementedError("py-evm never iterates its database")

    def __len__(self) -> int:
        raise NotImplementedError("py-evm never counts its database")

    # ------------------------------------------------------------------ file

    def meta(self, name: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def commit(self, meta: Mapping[str, str]) -> None:
        """Write the overlay and `meta` in one transaction (all of it or, after a crash, none)."""
        if self.read_only:
            raise ChainError(f"{self.path} is open read-only; `serve` holds the writer")
        # list() of a dict's items runs under the GIL in one step: a call running on another
        # thread (an API request's eth_call) may add scratch keys meanwhile.
        pending = list(self._pending.items())
        written = [(k, v) for k, v in pending if v is not None]
        deleted = [(k,) for k, v in pending if v is None]
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                _write(self._db, written, deleted, {**meta, "format": FORMAT})
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            message = f"the embedded chain state {self.path} cannot be written: {exc}"
            raise ChainError(message) from exc
        # Only now, and only what was written: until COMMIT a reader must find these keys in
        # the overlay, and keys added meanwhile stay for the next block.
        for key, value in pending:
            if self._pending.get(key, _MISSING) is value:
                del self._pending[key]

    def discard(self) -> None:
        """Forget uncommitted writes (a transaction that was never mined)."""
        self._pending.clear()

    def close(self) -> None:
        self._db.close()


def _write(
    db: sqlite3.Connection,
    written: Iterable[tuple[bytes, bytes]],
    deleted: Iterable[tuple[bytes]],
    meta: Mapping[str, str],
) -> None:
    # One function for the whole write, so the crash test can stop the process inside it.
    db.executemany("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", written)
    db.executemany("DELETE FROM kv WHERE key = ?", deleted)
    db.executemany("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", meta.items())
