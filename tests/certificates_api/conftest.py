"""Fixtures for the certificate API tests: the real app over each backend, without its
background threads.

The app's anchoring would anchor the log on the embedded chain, and its expiry sweep expire
certificates, at arbitrary moments; these tests choose the anchored and expired state
themselves, so both are switched off (test_expiry_sweep_api turns the sweep on).
"""

from __future__ import annotations

import pytest
from meter_support import api_app, api_client, auth_headers


@pytest.fixture(autouse=True)
def _no_background_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARBONLEDGER_ANCHOR_ENABLED", "false")
    monkeypatch.setenv("CARBONLEDGER_EXPIRY_SWEEP_SECONDS", "0")


__all__ = ["api_app", "api_client", "auth_headers"]
