"""Fixtures for the gateway tests: a simulated meter on a loopback Modbus port."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from meter_signing.modbus import RegisterMap
from meter_signing.simulator import MeterState, SimulatorServer


@pytest.fixture
def simulator() -> Iterator[Callable[..., SimulatorServer]]:
    """Start simulators on free loopback ports; all are stopped after the test."""
    started: list[SimulatorServer] = []

    def start(state: MeterState, register_map: RegisterMap | None = None) -> SimulatorServer:
        server = SimulatorServer(state, register_map=register_map, host="127.0.0.1", port=0)
        started.append(server.start())
        return server

    yield start
    for server in started:
        server.stop()
