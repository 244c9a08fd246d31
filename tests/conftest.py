"""Shared fixtures: a registry on SQLite and on PostgreSQL (a fresh database per test).

PostgreSQL is reached at CARBONLEDGER_TEST_PG_URL (default postgresql://postgres@127.0.0.1:5432/test).
Under CI=true an unreachable server fails the PostgreSQL tests; elsewhere they skip with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pg_support import PG_ADMIN_URL, fresh_postgres_database
from testdata_support import running_in_ci

from ledger.registry import Registry, initialise_registry
from ledger.settings import LedgerSettings


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=5) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as exc:
        message = f"PostgreSQL unreachable at {PG_ADMIN_URL}: {exc}".strip()
        if running_in_ci():
            pytest.fail(message + " (CI=true: PostgreSQL tests must run)")
        pytest.skip(message)
    return PG_ADMIN_URL


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    with fresh_postgres_database(postgres_admin_url) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'carbonledger.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> LedgerSettings:
    return LedgerSettings(data_dir=tmp_path / "data", database_url=database_url)


@pytest.fixture
def registry(settings: LedgerSettings) -> Iterator[Registry]:
    """An initialised, empty registry on each backend."""
    opened = initialise_registry(settings)
    try:
        yield opened
    finally:
        opened.close()
