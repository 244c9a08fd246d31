"""Engine and session set-up for SQLite (embedded, WAL) and PostgreSQL (production).

Two kinds of transaction exist:
- `Database.read()`: a snapshot for readers; never blocks writers (WAL / MVCC).
- `Database.write()`: a transaction that commits on success. On SQLite it starts with
  BEGIN IMMEDIATE, so the single writer lock is taken up front instead of failing
  with "database is locked" on the first write of a deferred transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.orm import Session, sessionmaker

from ledger.settings import normalise_database_url

SQLITE_BUSY_TIMEOUT_SECONDS = 60
_WRITE_OPTION = "carbonledger_write"


class Database:
    def __init__(self, url: str, *, pool_size: int = 5) -> None:
        url = normalise_database_url(url)
        parsed = make_url(url)
        self.url = url
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {
                "timeout": SQLITE_BUSY_TIMEOUT_SECONDS,
                "check_same_thread": False,
            }
        else:
            kwargs["pool_size"] = pool_size
        self.engine: Engine = create_engine(url, **kwargs)
        # Snapshot reads get a pool of their own whose connections are in autocommit mode from
        # the start: switching a shared connection's isolation level at every checkout and back
        # at every checkin made SQLite discard its prepared statements (SQLAlchemy resets the
        # level with a PRAGMA), so every proof read was parsed and planned again.
        self._autocommit_engine: Engine = create_engine(url, isolation_level="AUTOCOMMIT", **kwargs)
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine)
            _configure_sqlite(self._autocommit_engine, autocommit=True)
        self._write_engine = self.engine.execution_options(**{_WRITE_OPTION: True})
        self._read_sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(self._write_engine, expire_on_commit=False)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only unit of work; anything written is rolled back."""
        with self._read_sessions() as session:
            try:
                yield session
            finally:
                session.rollback()

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A connection without an explicit transaction, for reads done in ONE statement
        (a statement always sees one consistent snapshot). Saves the BEGIN/ROLLBACK round
        trips that dominate a proof read on PostgreSQL."""
        with self._autocommit_engine.connect() as connection:
            yield connection

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A unit of work that commits when the block ends without an exception."""
        with self._write_sessions() as session, session.begin():
            yield session

    def write_connection(self) -> Connection:
        """A raw connection whose transactions take the write lock (for migrations)."""
        return self._write_engine.connect()

    def dispose(self) -> None:
        self.engine.dispose()
        self._autocommit_engine.dispose()


def _configure_sqlite(engine: Engine, *, autocommit: bool = False) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event decide how transactions start (see below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before it is acknowledged, also across power loss.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if autocommit or connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            return
        immediate = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
