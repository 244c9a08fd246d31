"""Fixtures for the meter registry tests: see tests/meter_support.py."""

from meter_support import api_app, api_client, auth_headers

__all__ = ["api_app", "api_client", "auth_headers"]
