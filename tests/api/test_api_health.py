"""Liveness never touches the database; readiness does, and says 503 when it cannot."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
from api_helpers import assert_problem
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from api.problems import NOT_READY
from ledger.registry import Registry


def test_liveness_answers_ok(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readiness_reports_the_current_log_size(client: TestClient, registry: Registry) -> None:
    assert client.get("/readyz").json() == {"status": "ready", "size": 0}
    registry.log.append([{"kind": "test/1", "n": n} for n in range(3)])
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "size": 3}


def test_readiness_is_503_problem_when_the_database_is_gone(
    client: TestClient, registry: Registry, database_url: str
) -> None:
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        registry.close()
        admin = url.set(database="postgres").render_as_string(hide_password=False)
        with psycopg.connect(admin.replace("+psycopg", ""), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE "{url.database}" WITH (FORCE)')
    else:
        # Close the app's pooled connections (they would keep the old file open), then
        # put a directory where the database file was: SQLite cannot open it.
        client.app.state.registry.database.dispose()  # type: ignore[attr-defined]
        path = Path(str(url.database))
        shutil.move(path, path.with_suffix(".moved"))
        path.mkdir()
    liveness = client.get("/healthz")
    readiness = client.get("/readyz")

    assert liveness.status_code == 200
    body = assert_problem(readiness, NOT_READY, instance="/readyz")
    # The cause is logged, not shown to an anonymous caller.
    assert "sqlite" not in body["detail"].lower()
    assert "postgres" not in body["detail"].lower()
