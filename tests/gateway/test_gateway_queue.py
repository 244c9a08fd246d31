"""Gateway polling, signing and queueing, and how API answers move items out of the queue."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from gateway_support import (
    ApiServer,
    RegisteredMeter,
    api_settings,
    dead_letter_lines,
    reading_leaves,
    register_solar_meter,
    stored_readings,
)

from ledger.registry import Registry
from ledger.settings import LedgerSettings
from meter_signing.gateway import (
    ApiClient,
    Gateway,
    GatewayConfig,
    GatewayError,
    GatewayStore,
    UploadError,
    next_boundary,
)
from meter_signing.keys import generate_meter_key
from meter_signing.modbus import ModbusMeter, ModbusTcpSource, RegisterMap, RegisterValues
from meter_signing.signing import verify_envelope
from meter_signing.simulator import MeterState, Profile, SimulatorServer

UNUSED_API = "http://127.0.0.1:9"  # discard port: nothing listens, nothing is sent


class FixedMeter:
    """A meter whose registers the test sets (for the queue tests that need no Modbus)."""

    def __init__(self) -> None:
        self.import_wh, self.export_wh = 0, 0

    def read(self) -> RegisterValues:
        self.export_wh += 500
        return RegisterValues(self.import_wh, self.export_wh, resolution_wh=1)


def boundary_now(offset: int = 0) -> int:
    # Half an hour back: after the test key's validFrom (an hour back), before now.
    return int(datetime.now(UTC).timestamp()) // 60 * 60 - 1800 + offset


@pytest.mark.parametrize("register_map", list(RegisterMap))
def test_gateway_signs_the_simulators_values_within_the_maps_resolution(
    simulator: Callable[..., SimulatorServer], tmp_path: Path, register_map: RegisterMap
) -> None:
    state = MeterState(
        Profile.SOLAR, speed=0, import_wh=8_765_432.1, export_wh=1_234_567.8, sunspec_wh_sf=1
    )
    server = simulator(state, register_map)
    key = generate_meter_key("ES256")
    device = ModbusMeter(ModbusTcpSource("127.0.0.1", server.port), register_map)
    with GatewayStore(tmp_path / "state", "sim-1") as store:
        gateway = Gateway(
            meter_id="sim-1",
            key=key,
            meter=device,
            store=store,
            api=ApiClient(UNUSED_API, "id", "secret"),
        )
        moment = boundary_now()
        reading = gateway.poll(moment)
        queued = store.pending(10)
    device.close()
    assert reading is not None
    resolution = 10 if register_map is RegisterMap.SUNSPEC else 2
    payload = reading.payload
    assert 0 <= state.import_wh - payload.import_wh < resolution
    assert 0 <= state.export_wh - payload.export_wh < resolution
    assert payload.time == datetime.fromtimestamp(moment, UTC)
    assert payload.seq == 1
    # What sits in the queue is the signed envelope itself, verifiable with the meter key.
    assert [item.seq for item in queued] == [1]
    assert verify_envelope(queued[0].envelope, key.public_spki) == reading


def test_seq_and_time_resume_from_disk_after_a_restart(tmp_path: Path) -> None:
    key = generate_meter_key()
    state_dir = tmp_path / "state"
    first_time = boundary_now()
    with GatewayStore(state_dir, "m-1") as store:
        gateway = Gateway(
            meter_id="m-1",
            key=key,
            meter=FixedMeter(),
            store=store,
            api=ApiClient(UNUSED_API, "id", "secret"),
        )
        assert gateway.poll(first_time) is not None
        assert gateway.poll(first_time + 60) is not None
    with GatewayStore(state_dir, "m-1") as store:
        restarted = Gateway(
            meter_id="m-1",
            key=key,
            meter=FixedMeter(),
            store=store,
            api=ApiClient(UNUSED_API, "id", "secret"),
        )
        # The same boundary again (a restart within one interval) is skipped, not re-signed.
        assert restarted.poll(first_time + 60) is None
        third = restarted.poll(first_time + 120)
        assert third is not None and third.payload.seq == 3
        assert [item.seq for item in store.pending(10)] == [1, 2, 3]


def test_a_state_directory_belongs_to_one_meter(tmp_path: Path) -> None:
    GatewayStore(tmp_path, "meter-a").close()
    with pytest.raises(GatewayError, match="belongs to meter 'meter-a'"):
        GatewayStore(tmp_path, "meter-b")


def test_polls_align_to_wall_clock_multiples() -> None:
    assert next_boundary(1_000_000_000.0, 900) == 1_000_000_800  # next :00/:15/:30/:45
    assert next_boundary(1_000_000_800.0, 900) == 1_000_001_700  # strictly after
    assert next_boundary(59.999, 60) == 60
    with pytest.raises(GatewayError):
        GatewayConfig(interval_s=0)


def test_backoff_grows_exponentially_with_bounded_jitter(tmp_path: Path) -> None:
    config = GatewayConfig(backoff_initial_s=1.0, backoff_max_s=60.0)
    with GatewayStore(tmp_path, "m-1") as store:
        gateway = Gateway(
            meter_id="m-1",
            key=generate_meter_key(),
            meter=FixedMeter(),
            store=store,
            api=ApiClient(UNUSED_API, "id", "secret"),
            config=config,
            rng=random.Random(7),
        )
        for failures, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (40, 60.0)):
            gateway._failures = failures
            delays = [gateway.backoff_delay() for _ in range(50)]
            assert all(ceiling / 2 <= delay <= ceiling for delay in delays), (failures, delays)
            assert len(set(delays)) > 1  # jittered, not one fixed value


# ------------------------------------------------------------------ with a real API


@pytest.fixture
def live_api(settings: LedgerSettings, registry: Registry) -> Iterator[ApiServer]:
    server = ApiServer(api_settings(settings))
    server.start()
    yield server
    if server.running:
        server.stop()


def make_gateway(
    meter: RegisteredMeter, url: str, store: GatewayStore, **kwargs: object
) -> Gateway:
    return Gateway(
        meter_id=meter.meter_id,
        key=meter.key,
        meter=FixedMeter(),
        store=store,
        api=ApiClient(url, meter.client.client_id, meter.client.client_secret),
        **kwargs,  # type: ignore[arg-type]
    )


def test_a_lost_acknowledgement_is_resent_as_a_duplicate_without_a_new_leaf(
    registry: Registry, live_api: ApiServer, tmp_path: Path
) -> None:
    meter = register_solar_meter(registry)
    with GatewayStore(tmp_path / "state", meter.meter_id) as store:
        gateway = make_gateway(meter, live_api.url, store)
        for minute in range(3):
            gateway.poll(boundary_now(60 * minute))
        # The API stores the batch but the answer never reaches the gateway (a crash, a cut
        # connection): the items are still queued.
        first = gateway.api.submit([item.envelope for item in store.pending(10)])
        assert [outcome["status"] for outcome in first] == ["accepted"] * 3
        size_after_first = registry.log.head().size
        assert store.pending_count() == 3

        assert gateway.drain(until=float("inf")) is None
        assert store.pending_count() == 0
        assert gateway.stats.acknowledged == 3
    assert registry.log.head().size == size_after_first  # duplicates add no leaf
    assert [leaf["payload"]["seq"] for leaf in reading_leaves(registry, meter.meter_id)] == [
        1,
        2,
        3,
    ]


def test_rejected_readings_go_to_the_dead_letter_file_and_do_not_block_the_queue(
    registry: Registry, live_api: ApiServer, tmp_path: Path
) -> None:
    meter = register_solar_meter(registry)
    state_dir = tmp_path / "state"
    with GatewayStore(state_dir, meter.meter_id) as store:
        gateway = make_gateway(meter, live_api.url, store)
        gateway.poll(boundary_now())
        # A reading signed with a key the registry does not know: `bad-signature`.
        rogue = RegisteredMeter(meter.meter_id, generate_meter_key(), meter.client)
        rogue_gateway = make_gateway(rogue, live_api.url, store)
        rogue_gateway.poll(boundary_now(60))
        gateway.signer = gateway._resume_signer()
        gateway.poll(boundary_now(120))
        assert gateway.drain(until=float("inf")) is None
        assert store.pending_count() == 0
    lines = [json.loads(line) for line in dead_letter_lines(state_dir)]
    assert len(lines) == 1
    assert lines[0]["reason"] == "bad-signature"
    assert lines[0]["envelope"]["payload"]["seq"] == 2
    assert [row.seq for row in stored_readings(registry, meter.meter_id)] == [1, 3]


def test_wrong_credentials_keep_the_readings_queued(
    registry: Registry, live_api: ApiServer, tmp_path: Path
) -> None:
    meter = register_solar_meter(registry)
    with GatewayStore(tmp_path / "state", meter.meter_id) as store:
        gateway = make_gateway(meter, live_api.url, store)
        gateway.api = ApiClient(live_api.url, meter.client.client_id, "wrong-secret")
        gateway.poll(boundary_now())
        with pytest.raises(UploadError, match="token request failed: HTTP 401"):
            gateway.upload_batch()
        retry_at = gateway.drain(until=float("inf"))
        assert retry_at is not None and store.pending_count() == 1
    assert stored_readings(registry, meter.meter_id) == []


def test_a_too_large_batch_is_halved_and_retried(
    registry: Registry, settings: LedgerSettings, tmp_path: Path
) -> None:
    limited = api_settings(settings).model_copy(update={"max_readings_per_batch": 2})
    server = ApiServer(limited)
    server.start()
    try:
        meter = register_solar_meter(registry)
        with GatewayStore(tmp_path / "state", meter.meter_id) as store:
            gateway = make_gateway(meter, server.url, store, config=GatewayConfig(batch_size=8))
            for minute in range(5):
                gateway.poll(boundary_now(60 * minute))
            # 8 -> 4 -> 2 within one drain: a too-large answer is not an outage, no backoff.
            assert gateway.drain(until=float("inf")) is None
            assert store.pending_count() == 0
            assert gateway._batch_size == 2
            assert gateway.stats.upload_failures == 0
    finally:
        server.stop()
    assert [row.seq for row in stored_readings(registry, meter.meter_id)] == [1, 2, 3, 4, 5]
