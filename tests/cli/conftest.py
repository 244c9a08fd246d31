"""Fixtures for the CLI tests: a data directory and database per test, on each backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import CliRegistry, isolated_env, run

from ledger.settings import LedgerSettings


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path) -> dict[str, str | None]:
    """Environment for an empty, uninitialised registry on each backend."""
    return isolated_env(data_dir=str(tmp_path / "data"), database_url=database_url)


@pytest.fixture
def cli_registry(cli_env: dict[str, str | None], database_url: str, tmp_path: Path) -> CliRegistry:
    """The same registry after `carbonledger init`."""
    result = run(["init", "--json"], cli_env)
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    return CliRegistry(
        env=cli_env,
        settings=LedgerSettings(data_dir=tmp_path / "data", database_url=database_url),
        origin=info["origin"],
        verifier_key=info["verifierKey"],
    )
