"""Fixtures for the anchoring scheduler, API and CLI tests: anvil nodes and a registry
with a meter key and signed readings (helpers in anvil_node_support, metered_log_support)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from anvil_node_support import AnvilNode
from metered_log_support import MeteredLog, metered_log


@pytest.fixture
def anvil_node(tmp_path: Path) -> Iterator[AnvilNode]:
    """A fresh anvil (automine) for one test; stopped by its pid at the end, always."""
    node = AnvilNode(tmp_path / "anvil")
    node.start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def metered(tmp_path: Path) -> Iterator[MeteredLog]:
    with metered_log(tmp_path / "registry") as fixture:
        yield fixture
