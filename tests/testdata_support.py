"""Where the test material lives, and the CI policy for missing prerequisites.

The vectors and reference data are copies kept in the repository (`tests/data/`, sources and
licences in `tests/data/PROVENANCE.md`), so a clone runs its tests with nothing beside it.
`tests/test_testdata_copies.py` compares them with the independent originals when those are
present. An ordinary module (not a conftest) so test files can import it by name.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TESTDATA = Path(__file__).resolve().parent / "data"


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require_testdata(*parts: str) -> Path:
    """A file of `tests/data`; its absence is a broken checkout, so the test fails."""
    path = TESTDATA.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"test data missing at {path} (it is part of the repository)")
    return path
