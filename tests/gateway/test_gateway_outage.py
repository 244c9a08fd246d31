"""The gateway against a real API that goes away: every reading arrives exactly once.

A real uvicorn server on loopback is stopped while the gateway keeps polling (readings pile
up in its disk queue), the gateway itself is restarted during the outage (a new process
would see only the state directory), then the API comes back and the queue drains.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from gateway_support import (
    NOON_LOCAL,
    ApiServer,
    RegisteredMeter,
    api_settings,
    dead_letter_lines,
    reading_leaves,
    register_solar_meter,
    stored_readings,
    wait_for,
)

from ledger.registry import Registry
from ledger.settings import LedgerSettings
from meter_signing.gateway import ApiClient, Gateway, GatewayConfig, GatewayStore
from meter_signing.modbus import ModbusMeter, ModbusTcpSource, RegisterMap
from meter_signing.simulator import MeterState, Profile, SimulatorServer

pytestmark = pytest.mark.slow
# Short interval and backoff so an outage of a few polls takes seconds.
CONFIG = GatewayConfig(interval_s=1, batch_size=3, backoff_initial_s=0.2, backoff_max_s=0.8)


@contextmanager
def running_gateway(
    meter: RegisteredMeter, modbus_port: int, api_url: str, state_dir: Path
) -> Iterator[Gateway]:
    """A gateway on its own thread, as `gateway run` would be; stopped on exit."""
    store = GatewayStore(state_dir, meter.meter_id)
    device = ModbusMeter(ModbusTcpSource("127.0.0.1", modbus_port), RegisterMap.SDM630)
    api = ApiClient(api_url, meter.client.client_id, meter.client.client_secret, timeout=5)
    gateway = Gateway(
        meter_id=meter.meter_id, key=meter.key, meter=device, store=store, api=api, config=CONFIG
    )
    stop = threading.Event()
    thread = threading.Thread(target=gateway.run, args=(stop,), name="gateway", daemon=True)
    thread.start()
    try:
        yield gateway
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive(), "the gateway did not stop"
        store.close()
        device.close()


def test_api_outage_and_gateway_restart_lose_nothing_and_send_nothing_twice(
    registry: Registry,
    settings: LedgerSettings,
    simulator: Callable[..., SimulatorServer],
    tmp_path: Path,
) -> None:
    meter = register_solar_meter(registry)
    # Real time (speed 1) from noon: export grows ~2.8 Wh/s at 10 kW, within capacity.
    sim = simulator(
        MeterState(Profile.SOLAR, capacity_w=10_000, speed=1, start_sim=NOON_LOCAL),
        RegisterMap.SDM630,
    )
    api = ApiServer(api_settings(settings))
    api.start()
    state_dir = tmp_path / "gateway-state"
    queued_during_outage = 0
    try:
        with running_gateway(meter, sim.port, api.url, state_dir) as first:
            wait_for(lambda: len(stored_readings(registry, meter.meter_id)) >= 2, 20, "uploads")
            api.stop()
            polls = first.stats.polls
            wait_for(lambda: first.stats.polls >= polls + 2, 20, "polls during the outage")
            wait_for(lambda: first.stats.upload_failures >= 1, 20, "a failed upload")
        # The gateway is down now, mid-outage, with readings only on its disk.
        with GatewayStore(state_dir, meter.meter_id) as store:
            queued_during_outage = store.pending_count()
        assert queued_during_outage >= 2

        with running_gateway(meter, sim.port, api.url, state_dir) as second:
            # Still no API: the restarted gateway resumes seq and queues further readings.
            wait_for(lambda: second.stats.polls >= 2, 20, "polls after the restart")
            api.start()
            wait_for(lambda: second.store.pending_count() == 0, 30, "the queue to drain")
            signed_by_now = second.signer.last_seq
            assert signed_by_now is not None
            wait_for(
                lambda: len(stored_readings(registry, meter.meter_id)) >= signed_by_now,
                30,
                "every reading in the registry",
            )
        with GatewayStore(state_dir, meter.meter_id) as store:
            last_seq, _ = store.signer_marks()
            assert store.pending_count() == 0
    finally:
        if api.running:
            api.stop()

    assert last_seq is not None and last_seq >= queued_during_outage + 4
    rows = stored_readings(registry, meter.meter_id)
    leaves = reading_leaves(registry, meter.meter_id)
    # Exactly once: one row and one leaf per signed seq, contiguous from 1, no gaps, no repeats.
    assert [row.seq for row in rows] == list(range(1, last_seq + 1))
    assert [leaf["payload"]["seq"] for leaf in leaves] == list(range(1, last_seq + 1))
    assert len({leaf["sig"] for leaf in leaves}) == len(leaves)
    assert dead_letter_lines(state_dir) == []
    # The readings are the simulator's: clock-aligned whole seconds, a growing export register.
    times = [row.time for row in rows]
    assert times == sorted(set(times))
    exports = [row.export_wh for row in rows]
    assert exports == sorted(exports) and exports[-1] > exports[0]
    assert not any(row.implausible for row in rows)
