"""A simulated energy meter on Modbus TCP (pymodbus server) for demos and tests.

The meter's power follows a daily curve of its simulated clock and its cumulative energy
registers integrate that power, so a gateway polling it sees what it would see on a real
site: a `solar` generator exports along a bell curve from sunrise to sunset (nothing at
night, a few W of inverter standby imported instead), a `load` (a household) imports a base
load with a morning and a larger evening peak. `speed` runs the simulated clock N times
faster than the wall clock, so a day passes in minutes; the registers always grow in
simulated time, which is what makes a fast demo show real-looking daily energy.

Both register maps can be served at once by one device, each at its own addresses:
the SDM630's float32 kWh in input registers 0x0000-0x0050, and a SunSpec device (`SunS`
marker at 40000, common model 1, meter model 203, end marker) in holding registers, so the
same simulator can be read either way. Registers are computed on each read (pymodbus calls
`action` before it answers), not on a timer: a reading is always current to the instant.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from meter_signing.modbus import (
    M203_TOT_WH_EXP,
    M203_TOT_WH_IMP,
    M203_TOT_WH_SF,
    M203_W,
    M203_W_SF,
    SDM630_EXPORT_KWH,
    SDM630_IMPORT_KWH,
    SDM630_TOTAL_POWER_W,
    SUNSPEC_COMMON_MODEL,
    SUNSPEC_END_ID,
    SUNSPEC_MARKER,
    SUNSPEC_METER_MODEL,
    SUNSPEC_MODEL_203_LENGTH,
    RegisterMap,
    encode_float32,
    encode_uint32,
)

SUNSPEC_BASE = 40000
COMMON_MODEL_LENGTH = 66
MODEL_1_ADDRESS = SUNSPEC_BASE + 2
MODEL_203_ADDRESS = MODEL_1_ADDRESS + 2 + COMMON_MODEL_LENGTH  # 40070, as in the shared map
END_ADDRESS = MODEL_203_ADDRESS + 2 + SUNSPEC_MODEL_203_LENGTH  # 40177
SDM630_INPUT_REGISTERS = 0x0050
INTEGRATION_STEP_S = 60.0
"""Power is integrated in simulated steps of at most a minute (trapezoid rule)."""
SECONDS_PER_DAY = 86_400
READ_HOLDING, READ_INPUT = 3, 4


class Profile(StrEnum):
    SOLAR = "solar"
    LOAD = "load"


def _bump(hour: float, centre: float, width: float) -> float:
    return math.exp(-(((hour - centre) / width) ** 2) / 2)


def solar_power_w(hour: float, capacity_w: float) -> tuple[float, float]:
    """(import W, export W) at local solar hour 0-24.

    A clear-sky bell: sin^2 of the sun's progress between 06:00 and 18:00 reaches the
    capacity at noon and falls smoothly to zero at both ends; at night the inverter draws
    a standby 2 W from the grid, which is why a PV meter's import register also moves.
    """
    if 6.0 < hour < 18.0:
        return 0.0, capacity_w * math.sin(math.pi * (hour - 6.0) / 12.0) ** 2
    return 2.0, 0.0


def load_power_w(hour: float, capacity_w: float) -> tuple[float, float]:
    """(import W, export W): household base load (15% of capacity) with a morning peak at
    07:30 and a larger evening peak at 19:30 (cooking, lighting, heating)."""
    shape = 0.15 + 0.35 * _bump(hour, 7.5, 1.0) + 0.75 * _bump(hour, 19.5, 1.5)
    return capacity_w * min(shape, 1.0), 0.0


PROFILES: dict[Profile, Callable[[float, float], tuple[float, float]]] = {
    Profile.SOLAR: solar_power_w,
    Profile.LOAD: load_power_w,
}


@dataclass
class MeterState:
    """The simulated meter: its clock and its cumulative registers (float Wh, exact enough)."""

    profile: Profile
    capacity_w: float = 5_000.0
    speed: float = 1.0
    utc_offset_hours: float = 8.0
    """The local time the daily curve follows (default China Standard Time)."""
    import_wh: float = 0.0
    export_wh: float = 0.0
    sunspec_wh_sf: int = 0
    """TotWh_SF: the SunSpec registers hold Wh / 10^SF."""
    clock: Callable[[], float] = time.time
    start_sim: float | None = None
    """Simulated POSIX time at start (default: now); e.g. 10:00 local to start in daylight."""
    _start_real: float = field(init=False)
    _sim_at: float = field(init=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.speed < 0 or not math.isfinite(self.speed):
            raise ValueError("speed must be a finite number >= 0")
        if self.capacity_w <= 0:
            raise ValueError("capacity must be positive")
        if not -10 <= self.sunspec_wh_sf <= 10:
            raise ValueError("the SunSpec scale factor must be -10..10")
        self._start_real = self.clock()
        self._sim_at = self._start_real if self.start_sim is None else self.start_sim
        if self.start_sim is None:
            self.start_sim = self._sim_at

    def sim_time(self) -> float:
        assert self.start_sim is not None
        return self.start_sim + (self.clock() - self._start_real) * self.speed

    def local_hour(self, sim_time: float) -> float:
        return ((sim_time + self.utc_offset_hours * 3600) % SECONDS_PER_DAY) / 3600

    def power_w(self, sim_time: float) -> tuple[float, float]:
        return PROFILES[self.profile](self.local_hour(sim_time), self.capacity_w)

    def advance(self) -> tuple[float, float]:
        """Integrate power up to the current simulated time; returns the registers in Wh."""
        with self._lock:
            target = self.sim_time()
            while self._sim_at < target:
                step_end = min(target, self._sim_at + INTEGRATION_STEP_S)
                (imp0, exp0), (imp1, exp1) = self.power_w(self._sim_at), self.power_w(step_end)
                hours = (step_end - self._sim_at) / 3600
                self.import_wh += (imp0 + imp1) / 2 * hours
                self.export_wh += (exp0 + exp1) / 2 * hours
                self._sim_at = step_end
            return self.import_wh, self.export_wh

    # ----------------------------------------------------------- register images

    def sdm630_registers(self) -> dict[int, list[int]]:
        import_wh, export_wh = self.advance()
        imp_w, exp_w = self.power_w(self._sim_at)
        return {
            SDM630_TOTAL_POWER_W: encode_float32(imp_w - exp_w),
            SDM630_IMPORT_KWH: encode_float32(import_wh / 1000),
            SDM630_EXPORT_KWH: encode_float32(export_wh / 1000),
        }

    def sunspec_registers(self) -> dict[int, list[int]]:
        import_wh, export_wh = self.advance()
        imp_w, exp_w = self.power_w(self._sim_at)

        def raw(wh: float) -> list[int]:
            # The meter truncates its register to its resolution, as real ones do.
            return encode_uint32(int(wh // 10**self.sunspec_wh_sf) & 0xFFFFFFFF)

        watts = max(-32768, min(32767, round(imp_w - exp_w)))
        return {
            MODEL_203_ADDRESS + M203_W: [watts & 0xFFFF],
            MODEL_203_ADDRESS + M203_W_SF: [0],
            MODEL_203_ADDRESS + M203_TOT_WH_EXP: raw(export_wh),
            MODEL_203_ADDRESS + M203_TOT_WH_IMP: raw(import_wh),
            MODEL_203_ADDRESS + M203_TOT_WH_SF: [self.sunspec_wh_sf & 0xFFFF],
        }


def _sunspec_static() -> list[int]:
    """The holding-register image from 40000 to the end marker, before the live values."""
    image = [0] * (END_ADDRESS + 2 - SUNSPEC_BASE)

    def put(address: int, values: list[int]) -> None:
        image[address - SUNSPEC_BASE : address - SUNSPEC_BASE + len(values)] = values

    def text(value: str, registers: int) -> list[int]:
        raw = value.encode().ljust(2 * registers, b"\0")
        return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]

    put(SUNSPEC_BASE, list(SUNSPEC_MARKER))
    put(MODEL_1_ADDRESS, [SUNSPEC_COMMON_MODEL, COMMON_MODEL_LENGTH])
    put(MODEL_1_ADDRESS + 2, text("carbonledger", 16))  # Mn
    put(MODEL_1_ADDRESS + 18, text("simulated meter", 16))  # Md
    put(MODEL_1_ADDRESS + 42, text("1.0", 8))  # Vr
    put(MODEL_1_ADDRESS + 50, text("SIM-0001", 16))  # SN
    put(MODEL_203_ADDRESS, [SUNSPEC_METER_MODEL, SUNSPEC_MODEL_203_LENGTH])
    put(END_ADDRESS, [SUNSPEC_END_ID, 0])
    return image


def build_device(
    state: MeterState, register_map: RegisterMap | None = None, device_id: int = 1
) -> SimDevice:
    """A pymodbus device serving `register_map` (default: both) from `state`, refreshed on
    every read. With one map, the other map's addresses answer "illegal address" or zeros,
    as a real device of that kind would, so a gateway set to the wrong map fails clearly."""

    async def refresh(
        function_code: int,
        start_address: int,
        _address: int,
        _count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if set_values is not None:
            return ExcCodes.ILLEGAL_FUNCTION  # a meter's registers are not writable
        if function_code == READ_INPUT and register_map in (None, RegisterMap.SDM630):
            live = state.sdm630_registers()
        elif function_code == READ_HOLDING and register_map in (None, RegisterMap.SUNSPEC):
            live = state.sunspec_registers()
        else:
            return None
        for address, values in live.items():
            offset = address - start_address
            registers[offset : offset + len(values)] = values
        return None

    # pymodbus needs a non-empty block per table; an unused map keeps one zero register.
    placeholder = SimData(0, values=[0], datatype=DataType.REGISTERS)
    holding = (
        SimData(SUNSPEC_BASE, values=_sunspec_static(), datatype=DataType.REGISTERS)
        if register_map in (None, RegisterMap.SUNSPEC)
        else placeholder
    )
    inputs = (
        SimData(0, values=[0] * SDM630_INPUT_REGISTERS, datatype=DataType.REGISTERS)
        if register_map in (None, RegisterMap.SDM630)
        else placeholder
    )
    return SimDevice(
        id=device_id,
        simdata=(
            [SimData(0, values=False, datatype=DataType.BITS)],
            [SimData(0, values=False, datatype=DataType.BITS)],
            [holding],
            [inputs],
        ),
        action=refresh,
    )


class SimulatorServer:
    """A running simulator: the pymodbus TCP server on its own event-loop thread.

    `start()` returns once the port is bound (so the port is known and connectable);
    `stop()` shuts the server down and joins the thread.
    """

    def __init__(
        self,
        state: MeterState,
        *,
        register_map: RegisterMap | None = None,
        host: str = "127.0.0.1",
        port: int = 5020,
        device_id: int = 1,
    ) -> None:
        self.state = state
        self.register_map = register_map
        self.host, self.port, self.device_id = host, port, device_id
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._server: ModbusTcpServer | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    async def _serve(self) -> None:
        self._server = ModbusTcpServer(
            build_device(self.state, self.register_map, self.device_id),
            address=(self.host, self.port),
        )
        try:
            await self._server.serve_forever(background=True)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            raise
        # Port 0 asks the OS for a free port; report the one actually bound.
        sockets = getattr(self._server.transport, "sockets", None) or ()
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        self._ready.set()

    def start(self, timeout: float = 10.0) -> SimulatorServer:
        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._serve())
            except BaseException:  # reported through _error to start()
                return
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="modbus-simulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the Modbus simulator did not start")
        if self._error is not None:
            raise OSError(f"cannot serve Modbus on {self.host}:{self.port}: {self._error}")
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._server is not None:
            server = self._server
            shutdown = server.shutdown()  # type: ignore[no-untyped-call]  # unannotated in pymodbus
            asyncio.run_coroutine_threadsafe(shutdown, self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._thread = None

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *_exc: Any) -> None:
        self.stop()
