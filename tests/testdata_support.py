"""Where the shared test material lives, and the CI policy for missing prerequisites.

An ordinary module (not a conftest) so test files can import it by name.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "testdata"


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require_testdata(*parts: str) -> Path:
    path = TESTDATA.joinpath(*parts)
    if not path.exists():
        message = f"shared test data missing at {path}"
        if running_in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path
