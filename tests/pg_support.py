"""Throw-away PostgreSQL databases for tests (imported by tests/conftest.py and test helpers)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

PG_ADMIN_URL = os.environ.get(
    "CARBONLEDGER_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
"""The server where each PostgreSQL test gets a fresh database."""


@contextmanager
def fresh_postgres_database(admin_url: str) -> Iterator[str]:
    """Create an empty database on the server of `admin_url`, yield its URL, drop it after."""
    name = "carbonledger_test_" + uuid.uuid4().hex[:12]
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = admin_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
