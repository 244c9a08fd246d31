"""Register maps and reading an energy meter's cumulative registers over Modbus TCP.

Two maps (`tests/data/modbus/modbus_maps.json`), both turned into integer Wh, the unit of
DESIGN §4.3:

- **Eastron SDM630**: IEEE-754 float32 kWh, big-endian words, in input registers 0x0048
  (import) and 0x004A (export), read with function 04. Conversion: ``floor(kWh x 1000)``.
  Flooring (never rounding up) keeps the Wh series monotone whenever the meter's register
  is, so the registry's `register-decreased` rule never fires because of conversion.
  Resolution: float32 has a 24-bit significand, so a register of v kWh stores the meter's
  count rounded to one unit in the last place (ulp), 2^(floor(log2 v) - 23) kWh: below
  8,192 kWh under 0.5 Wh, at 10,000 kWh ~1 Wh, at 100,000 kWh ~7.8 Wh, at 1,000,000 kWh
  62.5 Wh and from 8,388,608 kWh (2^23) on a whole kWh. With the floor, the Wh value is
  less than 1 Wh + ulp/2 from the meter's own count; `sdm630_resolution_wh` gives that bound.
- **SunSpec model 203** (wye-connect three-phase meter): found by reading the `SunS` marker
  at a base address (40000, 0 or 50000) and walking the model chain (ID, L) to model 203;
  TotWhImp / TotWhExp are acc32 (unsigned 32-bit, high word first) scaled by the sunssf
  TotWh_SF: Wh = raw x 10^SF, floored for negative SF. Resolution: 10^max(SF, 0) Wh (the
  register's own step; flooring a negative SF loses less than 1 Wh).

Reading is synchronous (pymodbus' `ModbusTcpClient`): the gateway reads one meter every few
minutes, so an event loop would add complexity and nothing else.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from ledger.meters.readings import MAX_REGISTER_WH

# --- Eastron SDM630 (input registers, function 04) ---------------------------------------
SDM630_IMPORT_KWH = 0x0048
SDM630_EXPORT_KWH = 0x004A
SDM630_TOTAL_POWER_W = 0x0034

# --- SunSpec ---------------------------------------------------------------------------------
SUNSPEC_MARKER = (0x5375, 0x6E53)  # "SunS"
SUNSPEC_BASES = (40000, 0, 50000)
"""The base addresses the SunSpec specification allows for the marker, tried in this order."""
SUNSPEC_END_ID = 0xFFFF
SUNSPEC_COMMON_MODEL = 1
SUNSPEC_METER_MODEL = 203
SUNSPEC_MODEL_203_LENGTH = 105
# Offsets inside model 203, counted from its ID register (modbus_maps.json "offset").
M203_W = 18
M203_W_SF = 22
M203_TOT_WH_EXP = 38
M203_TOT_WH_IMP = 46
M203_TOT_WH_SF = 54
SUNSSF_NOT_IMPLEMENTED = -0x8000
MAX_SUNSPEC_MODELS = 64
"""A bound on the walk, so a device whose chain loops or never ends cannot hang a poll."""
MAX_REGISTERS_PER_READ = 125  # Modbus limit for function 03/04


class RegisterMap(StrEnum):
    SDM630 = "sdm630"
    SUNSPEC = "sunspec"


class MeterReadError(Exception):
    """The meter could not be read, or its registers do not make sense; the message says which."""


class RegisterMapError(MeterReadError):
    """The device does not follow the register map (no SunS marker, no model 203, ...)."""


@dataclass(frozen=True, slots=True)
class RegisterValues:
    """Cumulative registers converted to integer Wh, with the map's resolution at this value."""

    import_wh: int
    export_wh: int
    resolution_wh: int
    """Each Wh value is less than this from the meter's own energy count (register
    encoding and conversion; the meter's metrological accuracy comes on top)."""


class RegisterSource(Protocol):
    """Something that answers Modbus register reads (a client, or a fake in tests)."""

    def read_input(self, address: int, count: int) -> list[int]: ...

    def read_holding(self, address: int, count: int) -> list[int]: ...


# ----------------------------------------------------------------------- decoding


def decode_float32(registers: Sequence[int]) -> float:
    """Big-endian word and byte order (SDM630): high word first."""
    return float(struct.unpack(">f", struct.pack(">HH", registers[0], registers[1]))[0])


def encode_float32(value: float) -> list[int]:
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return [high, low]


def decode_uint32(registers: Sequence[int]) -> int:
    return (registers[0] << 16) | registers[1]


def encode_uint32(value: int) -> list[int]:
    return [(value >> 16) & 0xFFFF, value & 0xFFFF]


def decode_int16(register: int) -> int:
    return register - 0x10000 if register & 0x8000 else register


def kwh_to_wh_floor(kwh: float) -> int:
    """floor(kWh x 1000) of a float32 register, refusing what no Wh register can hold."""
    if not math.isfinite(kwh) or kwh < 0:
        raise MeterReadError(f"the energy register holds {kwh!r} kWh, not a meter reading")
    wh = math.floor(kwh * 1000)
    if wh > MAX_REGISTER_WH:
        raise MeterReadError(f"the energy register {kwh} kWh exceeds {MAX_REGISTER_WH} Wh")
    return wh


def sdm630_resolution_wh(kwh: float) -> int:
    """A bound (exclusive) on |Wh value - meter's own count| for a float32 register of `kwh`:
    half a float32 ulp of rounding in the meter plus under 1 Wh of flooring here."""
    if kwh <= 0:
        return 1
    ulp_wh = 2.0 ** (math.floor(math.log2(kwh)) - 23) * 1000
    return 1 + math.ceil(ulp_wh / 2)


def scaled_wh(raw: int, scale: int) -> int:
    """raw x 10^scale as whole Wh; a negative scale is floored, like the SDM630 conversion."""
    factor: int = 10 ** abs(scale)
    return raw * factor if scale >= 0 else raw // factor


# --------------------------------------------------------------------- the maps


def read_sdm630(source: RegisterSource) -> RegisterValues:
    # One request for both registers: the two values come from one instant of the meter.
    registers = source.read_input(SDM630_IMPORT_KWH, 4)
    import_kwh = decode_float32(registers[0:2])
    export_kwh = decode_float32(registers[2:4])
    return RegisterValues(
        import_wh=kwh_to_wh_floor(import_kwh),
        export_wh=kwh_to_wh_floor(export_kwh),
        resolution_wh=max(sdm630_resolution_wh(import_kwh), sdm630_resolution_wh(export_kwh)),
    )


@dataclass(frozen=True, slots=True)
class SunSpecModel:
    model_id: int
    address: int
    """Address of the model's ID register."""
    length: int
    """L: registers after the ID and L registers."""


def find_sunspec_base(source: RegisterSource, bases: Sequence[int] = SUNSPEC_BASES) -> int:
    """The first base address holding the `SunS` marker."""
    seen: list[str] = []
    for base in bases:
        try:
            marker = tuple(source.read_holding(base, 2))
        except MeterReadError as exc:
            seen.append(f"{base}: {exc}")
            continue
        if marker == SUNSPEC_MARKER:
            return base
        seen.append(f"{base}: {marker[0]:#06x} {marker[1]:#06x}")
    raise RegisterMapError(
        "not a SunSpec device: no 'SunS' marker (0x5375 0x6e53) at "
        + ", ".join(str(base) for base in bases)
        + f" ({'; '.join(seen)})"
    )


def walk_sunspec(source: RegisterSource, base: int) -> list[SunSpecModel]:
    """The model chain after the marker, up to the end marker (ID 0xFFFF)."""
    models: list[SunSpecModel] = []
    address = base + 2
    for _ in range(MAX_SUNSPEC_MODELS):
        model_id, length = source.read_holding(address, 2)
        if model_id == SUNSPEC_END_ID:
            return models
        models.append(SunSpecModel(model_id, address, length))
        address += 2 + length
        if address > 0xFFFF:
            break
    raise RegisterMapError(
        f"the SunSpec model chain at {base} has no end marker within "
        f"{MAX_SUNSPEC_MODELS} models or the address space"
    )


def read_sunspec_203(source: RegisterSource, model: SunSpecModel) -> RegisterValues:
    if model.length < M203_TOT_WH_SF - 1:
        raise RegisterMapError(f"SunSpec model 203 at {model.address} is only {model.length} long")
    # TotWhExp (offset 38) through TotWh_SF (54) in one read, so value and scale agree.
    block = source.read_holding(
        model.address + M203_TOT_WH_EXP, M203_TOT_WH_SF - M203_TOT_WH_EXP + 1
    )

    def at(offset: int) -> Sequence[int]:
        return block[offset - M203_TOT_WH_EXP :]

    scale = decode_int16(at(M203_TOT_WH_SF)[0])
    if scale == SUNSSF_NOT_IMPLEMENTED:
        raise RegisterMapError("SunSpec model 203 does not implement TotWh_SF")
    if not -10 <= scale <= 10:
        # SunSpec scale factors are -10..10; anything else is a misread, not a meter value.
        raise RegisterMapError(f"SunSpec TotWh_SF {scale} is outside -10..10")
    import_wh = scaled_wh(decode_uint32(at(M203_TOT_WH_IMP)), scale)
    export_wh = scaled_wh(decode_uint32(at(M203_TOT_WH_EXP)), scale)
    for name, value in (("TotWhImp", import_wh), ("TotWhExp", export_wh)):
        if value > MAX_REGISTER_WH:
            raise MeterReadError(f"SunSpec {name} {value} Wh exceeds {MAX_REGISTER_WH}")
    return RegisterValues(import_wh, export_wh, resolution_wh=10 ** max(scale, 0))


def locate_sunspec_meter(source: RegisterSource) -> SunSpecModel:
    base = find_sunspec_base(source)
    models = walk_sunspec(source, base)
    for model in models:
        if model.model_id == SUNSPEC_METER_MODEL:
            return model
    found = ", ".join(str(model.model_id) for model in models) or "none"
    raise RegisterMapError(f"the SunSpec device at base {base} has no model 203 (models: {found})")


# ------------------------------------------------------------------- the client


class ModbusTcpSource:
    """`RegisterSource` over pymodbus' synchronous TCP client; errors become MeterReadError."""

    def __init__(self, host: str, port: int, *, device_id: int = 1, timeout: float = 3.0) -> None:
        self.host, self.port, self.device_id = host, port, device_id
        # retries=0: the gateway has its own schedule; a failed poll is simply skipped.
        self._client = ModbusTcpClient(host, port=port, timeout=timeout, retries=0)

    def _connect(self) -> None:
        if not self._client.connected and not self._client.connect():  # type: ignore[no-untyped-call]
            raise MeterReadError(f"cannot connect to the Modbus device at {self.host}:{self.port}")

    def _read(self, function: str, address: int, count: int) -> list[int]:
        if not 0 < count <= MAX_REGISTERS_PER_READ:
            raise ValueError(f"count must be 1..{MAX_REGISTERS_PER_READ}")
        self._connect()
        try:
            if function == "input":
                response = self._client.read_input_registers(
                    address, count=count, device_id=self.device_id
                )
            else:
                response = self._client.read_holding_registers(
                    address, count=count, device_id=self.device_id
                )
        except ModbusException as exc:
            self._client.close()  # type: ignore[no-untyped-call]  # a half-read TCP stream is not worth resynchronising
            raise MeterReadError(
                f"Modbus read of {count} {function} registers at {address} failed: {exc}"
            ) from exc
        if response.isError():
            raise MeterReadError(
                f"the device answered the read of {count} {function} registers at {address} "
                f"with Modbus exception {getattr(response, 'exception_code', '?')}"
            )
        registers = list(response.registers)
        if len(registers) < count:
            raise MeterReadError(f"short read at {address}: {len(registers)} of {count}")
        return registers[:count]

    def read_input(self, address: int, count: int) -> list[int]:
        return self._read("input", address, count)

    def read_holding(self, address: int, count: int) -> list[int]:
        return self._read("holding", address, count)

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]  # pymodbus leaves it unannotated


class ModbusMeter:
    """One meter on Modbus TCP under one register map: `read()` gives its registers in Wh.

    The SunSpec model address is found once and kept: it is fixed by the device's firmware,
    and walking the chain on every poll would triple the traffic.
    """

    def __init__(self, source: RegisterSource, register_map: RegisterMap) -> None:
        self.source = source
        self.register_map = register_map
        self._model: SunSpecModel | None = None

    def read(self) -> RegisterValues:
        if self.register_map is RegisterMap.SDM630:
            return read_sdm630(self.source)
        if self._model is None:
            self._model = locate_sunspec_meter(self.source)
        return read_sunspec_203(self.source, self._model)

    def close(self) -> None:
        close = getattr(self.source, "close", None)
        if callable(close):
            close()
