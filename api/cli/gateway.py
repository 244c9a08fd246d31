"""Device-side commands: `carbonledger meter simulate` and `carbonledger gateway run`.

Exit codes: 2 for usage and malformed input, 3 when something needed is unavailable (a key
file, the state directory, the Modbus device, a port). pymodbus is imported inside the
commands.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from api.cli.common import EXIT_UNAVAILABLE, EXIT_USAGE, command_group, fail

if TYPE_CHECKING:
    from meter_signing.simulator import MeterState


class MapName(StrEnum):
    # Mirrors meter_signing.modbus.RegisterMap: importing that would load pymodbus on every
    # `carbonledger` start, and the verify commands must stay quick.
    SDM630 = "sdm630"
    SUNSPEC = "sunspec"


DEFAULT_MODBUS_PORT = 5020
"""Not 502: binding below 1024 needs root, and a simulator should not."""

gateway_app = command_group("The Modbus gateway: poll a meter, sign its readings, upload them.")


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        fail(f"--modbus must be HOST:PORT, e.g. 127.0.0.1:{DEFAULT_MODBUS_PORT}; not {value!r}")
    return host, int(port_text)


def _start_of_day(hhmm: str | None, utc_offset_hours: float) -> float | None:
    """POSIX time of today's (local) HH:MM, for starting the simulated clock there."""
    if hhmm is None:
        return None
    try:
        moment = datetime.strptime(hhmm, "%H:%M")
    except ValueError:
        fail(f"--start must be HH:MM (local time of the simulated day), not {hhmm!r}")
    now = time.time()
    local_midnight = (now + utc_offset_hours * 3600) // 86_400 * 86_400 - utc_offset_hours * 3600
    return local_midnight + moment.hour * 3600 + moment.minute * 60


MapOption = Annotated[
    MapName,
    typer.Option("--map", help="Register map: Eastron SDM630 or SunSpec model 203."),
]


def meter_simulate_command(
    *,
    map_name: MapOption = MapName.SDM630,
    profile: Annotated[
        str,
        typer.Option(
            "--profile",
            metavar="solar|load",
            help="solar: PV generation on a bell curve (export); load: household consumption.",
        ),
    ] = "solar",
    speed: Annotated[
        float,
        typer.Option(
            "--speed", metavar="N", min=0, help="Simulated seconds per real second (0: frozen)."
        ),
    ] = 1.0,
    host: Annotated[str, typer.Option("--host", metavar="HOST", help="Address to bind.")] = (
        "127.0.0.1"
    ),
    port: Annotated[
        int, typer.Option("--port", metavar="PORT", min=0, max=65535, help="Modbus TCP port.")
    ] = DEFAULT_MODBUS_PORT,
    device_id: Annotated[
        int, typer.Option("--device-id", metavar="ID", min=0, max=247, help="Modbus unit id.")
    ] = 1,
    capacity_w: Annotated[
        int,
        typer.Option(
            "--capacity-w", metavar="W", min=1, help="Peak power: PV capacity or peak load."
        ),
    ] = 5_000,
    start: Annotated[
        str | None,
        typer.Option(
            "--start",
            metavar="HH:MM",
            help="Start the simulated clock at this local time today (default: now).",
            show_default=False,
        ),
    ] = None,
    utc_offset: Annotated[
        float,
        typer.Option("--utc-offset", metavar="HOURS", help="Local time zone of the daily curve."),
    ] = 8.0,
    import_kwh: Annotated[
        float, typer.Option("--import-kwh", metavar="KWH", min=0, help="Initial import register.")
    ] = 0.0,
    export_kwh: Annotated[
        float, typer.Option("--export-kwh", metavar="KWH", min=0, help="Initial export register.")
    ] = 0.0,
    wh_scale: Annotated[
        int,
        typer.Option(
            "--wh-scale",
            metavar="SF",
            min=-10,
            max=10,
            help="SunSpec TotWh_SF: registers hold Wh / 10^SF.",
        ),
    ] = 0,
    status_every: Annotated[
        float,
        typer.Option(
            "--status-every",
            metavar="SECONDS",
            min=0,
            help="Print the simulated time, power and registers this often (0: never).",
        ),
    ] = 60.0,
) -> None:
    """Serve a simulated energy meter on Modbus TCP until interrupted.

    The registers follow a daily curve of the simulated clock; `--speed 60` makes an hour
    pass in a minute. Stop with Ctrl-C.
    """
    from meter_signing.modbus import RegisterMap
    from meter_signing.simulator import MeterState, Profile, SimulatorServer

    register_map = RegisterMap(map_name.value)

    if profile not in {item.value for item in Profile}:
        fail(f"unknown --profile {profile!r}; use solar or load")
    state = MeterState(
        Profile(profile),
        capacity_w=capacity_w,
        speed=speed,
        utc_offset_hours=utc_offset,
        import_wh=import_kwh * 1000,
        export_wh=export_kwh * 1000,
        sunspec_wh_sf=wh_scale,
        start_sim=_start_of_day(start, utc_offset),
    )
    server = SimulatorServer(
        state, register_map=register_map, host=host, port=port, device_id=device_id
    )
    try:
        server.start()
    except OSError as error:
        fail(str(error), EXIT_UNAVAILABLE)
    where = (
        "input registers 0x0048/0x004A (float32 kWh)"
        if register_map is RegisterMap.SDM630
        else "holding registers from 40000 (SunS, models 1 and 203)"
    )
    print(
        f"simulating a {profile} meter ({register_map.value}, {where}) on "
        f"{host}:{server.port}, unit {device_id}, speed x{speed:g}; Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )
    stop = threading.Event()
    try:
        with _stop_on_signals(stop):
            next_status = time.monotonic()
            while not stop.wait(0.2):
                if status_every and time.monotonic() >= next_status:
                    next_status += status_every
                    _print_status(state)
    finally:
        server.stop()


def _print_status(state: MeterState) -> None:
    imported_wh, exported_wh = state.advance()
    sim_now = state.sim_time()
    import_w, export_w = state.power_w(sim_now)
    hour = state.local_hour(sim_now)
    print(
        f"simulated {int(hour):02d}:{int(hour * 60) % 60:02d} local: "
        f"import {import_w:,.0f} W, export {export_w:,.0f} W; registers import "
        f"{imported_wh / 1000:,.3f} kWh, export {exported_wh / 1000:,.3f} kWh",
        file=sys.stderr,
        flush=True,
    )


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set `stop` (a clean shutdown between polls); handlers are restored after."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    # Only the main thread may install handlers; elsewhere the caller sets `stop` itself.
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@gateway_app.command("run")
def gateway_run_command(
    *,
    meter: Annotated[
        str,
        typer.Option("--meter", metavar="ID", help="Meter id (as registered).", show_default=False),
    ],
    key: Annotated[
        Path,
        typer.Option(
            "--key",
            metavar="FILE",
            help="The meter's private key (from `meter keygen`).",
            dir_okay=False,
            show_default=False,
        ),
    ],
    client_id: Annotated[
        str,
        typer.Option(
            "--client-id",
            metavar="ID",
            envvar="CARBONLEDGER_GATEWAY_CLIENT_ID",
            help="API client with the readings:write scope.",
            show_default=False,
        ),
    ],
    client_secret: Annotated[
        str,
        typer.Option(
            "--client-secret",
            metavar="SECRET",
            envvar="CARBONLEDGER_GATEWAY_CLIENT_SECRET",
            help="Its secret (better from the environment variable than the command line).",
            show_default=False,
        ),
    ],
    map_name: MapOption = MapName.SDM630,
    modbus: Annotated[
        str, typer.Option("--modbus", metavar="HOST:PORT", help="The meter's Modbus TCP address.")
    ] = f"127.0.0.1:{DEFAULT_MODBUS_PORT}",
    device_id: Annotated[
        int, typer.Option("--device-id", metavar="ID", min=0, max=247, help="Modbus unit id.")
    ] = 1,
    api: Annotated[
        str, typer.Option("--api", metavar="URL", help="The registry's API base URL.")
    ] = "http://127.0.0.1:8000",
    state_dir: Annotated[
        Path,
        typer.Option(
            "--state-dir",
            metavar="DIR",
            file_okay=False,
            help="Queue, signer state and dead letters (one directory per meter).",
        ),
    ] = Path("gateway-state"),
    interval: Annotated[
        int,
        typer.Option(
            "--interval",
            metavar="SECONDS",
            min=1,
            help="Poll at wall-clock multiples of this (900 = :00 :15 :30 :45).",
        ),
    ] = 900,
    batch_size: Annotated[
        int,
        typer.Option("--batch-size", metavar="N", min=1, max=5000, help="Readings per upload."),
    ] = 100,
    max_polls: Annotated[
        int | None,
        typer.Option(
            "--max-polls",
            metavar="N",
            min=1,
            help="Stop after N polls once the queue is empty (default: run until stopped).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Poll a meter over Modbus TCP, sign each reading, queue it on disk, upload it.

    Survives API outages and its own restarts: readings wait in the state directory until
    the API has acknowledged them; rejected ones go to DIR/dead-letter.jsonl with the reason.
    """
    from ledger.keyfiles import KeyFileError
    from meter_signing.gateway import (
        ApiClient,
        Gateway,
        GatewayConfig,
        GatewayError,
        GatewayStore,
    )
    from meter_signing.keys import load_meter_key_file
    from meter_signing.modbus import (
        MeterReadError,
        ModbusMeter,
        ModbusTcpSource,
        RegisterMap,
        RegisterMapError,
    )

    register_map = RegisterMap(map_name.value)

    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S%z",
        stream=sys.stderr,
    )
    host, port = _host_port(modbus)
    try:
        meter_key = load_meter_key_file(key)
    except KeyFileError as error:
        fail(str(error), EXIT_UNAVAILABLE)
    try:
        config = GatewayConfig(interval_s=interval, batch_size=batch_size)
        client = ApiClient(api, client_id, client_secret)
    except GatewayError as error:
        fail(str(error), EXIT_USAGE)
    try:
        store = GatewayStore(state_dir, meter)
    except GatewayError as error:
        fail(str(error), EXIT_UNAVAILABLE)
    device = ModbusMeter(ModbusTcpSource(host, port, device_id=device_id), register_map)
    try:
        # Fail fast on a wrong address or map; once running, a failed poll is only skipped.
        first = device.read()
    except RegisterMapError as error:
        store.close()
        fail(f"{modbus}: {error}", EXIT_USAGE)
    except MeterReadError as error:
        store.close()
        fail(f"{modbus}: {error}", EXIT_UNAVAILABLE)
    logging.getLogger("carbonledger.gateway").info(
        "meter %s on %s (%s): import %d Wh, export %d Wh (resolution %d Wh); %d queued",
        meter,
        modbus,
        register_map.value,
        first.import_wh,
        first.export_wh,
        first.resolution_wh,
        store.pending_count(),
    )
    gateway = Gateway(
        meter_id=meter, key=meter_key, meter=device, store=store, api=client, config=config
    )
    stop = threading.Event()
    try:
        with _stop_on_signals(stop):
            gateway.run(stop, max_polls=max_polls)
    finally:
        pending = store.pending_count()
        store.close()
        device.close()
    stats = gateway.stats
    print(
        f"stopped at {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}: {stats.polls} polls, "
        f"{stats.acknowledged} acknowledged, {stats.dead_lettered} dead-lettered, "
        f"{pending} still queued",
        file=sys.stderr,
    )
