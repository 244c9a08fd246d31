"""Register maps against a real pymodbus server: SDM630 float32 kWh and the SunSpec walk."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable

import pytest
from testdata_support import require_testdata

from meter_signing.modbus import (
    SUNSPEC_MARKER,
    ModbusMeter,
    ModbusTcpSource,
    RegisterMap,
    RegisterMapError,
    encode_float32,
    encode_uint32,
    find_sunspec_base,
    kwh_to_wh_floor,
    locate_sunspec_meter,
    read_sdm630,
    sdm630_resolution_wh,
    walk_sunspec,
)
from meter_signing.simulator import MeterState, Profile, SimulatorServer

Start = Callable[..., SimulatorServer]


class FakeRegisters:
    """A register source from dicts, for maps no simulator would serve (broken devices)."""

    def __init__(self, holding: dict[int, int], inputs: dict[int, int] | None = None) -> None:
        self.holding, self.inputs = holding, inputs or {}

    def read_holding(self, address: int, count: int) -> list[int]:
        return [self.holding.get(address + i, 0) for i in range(count)]

    def read_input(self, address: int, count: int) -> list[int]:
        return [self.inputs.get(address + i, 0) for i in range(count)]


def frozen(profile: Profile = Profile.SOLAR, **registers: float) -> MeterState:
    # speed 0: the registers stay where they were set, so a read can be compared exactly.
    return MeterState(profile, speed=0, **registers)  # type: ignore[arg-type]


def tcp(server: SimulatorServer, register_map: RegisterMap) -> ModbusMeter:
    return ModbusMeter(ModbusTcpSource("127.0.0.1", server.port), register_map)


def true_float32_wh(wh: float) -> float:
    """What an SDM630 register holding `wh` really says, in Wh (after float32 rounding)."""
    return float(struct.unpack(">f", struct.pack(">f", wh / 1000))[0]) * 1000


# ------------------------------------------------------------------------- SDM630


@pytest.mark.parametrize(
    ("import_wh", "export_wh"),
    [
        (0.0, 0.0),
        (1_234.9, 56.2),
        (12_345_678.9, 7_654_321.4),  # 12,346 kWh: float32 ulp ~1 Wh
        (2_000_000_123.0, 3.0),  # 2 GWh: ulp 125 Wh
    ],
)
def test_sdm630_reads_back_the_simulator_within_float32_resolution(
    simulator: Start, import_wh: float, export_wh: float
) -> None:
    server = simulator(frozen(import_wh=import_wh, export_wh=export_wh), RegisterMap.SDM630)
    meter = tcp(server, RegisterMap.SDM630)
    try:
        values = meter.read()
    finally:
        meter.close()
    for got, true in ((values.import_wh, import_wh), (values.export_wh, export_wh)):
        # Exactly the floor of what the register holds ...
        assert got == math.floor(true_float32_wh(true))
        # ... and within the stated resolution of the simulator's own value.
        assert abs(got - true) < values.resolution_wh, (got, true, values.resolution_wh)
    assert values.resolution_wh == max(
        sdm630_resolution_wh(import_wh / 1000), sdm630_resolution_wh(export_wh / 1000)
    )


def test_sdm630_resolution_follows_the_float32_exponent() -> None:
    # 1 Wh of flooring plus half an ulp of float32 rounding, rounded up.
    assert sdm630_resolution_wh(0.0) == 1
    assert sdm630_resolution_wh(5_000.0) == 2  # ulp 0.49 Wh
    assert sdm630_resolution_wh(100_000.0) == 1 + 4  # ulp 2^-7 kWh = 7.8 Wh
    assert sdm630_resolution_wh(1_000_000.0) == 1 + 32  # ulp 2^-4 kWh = 62.5 Wh
    assert sdm630_resolution_wh(float(1 << 23)) == 1 + 500  # ulp a whole kWh


def test_kwh_conversion_floors_and_refuses_non_readings() -> None:
    assert kwh_to_wh_floor(1.0009) == 1000  # floor, never rounded up past the meter
    registers = encode_float32(1234.5678)
    assert read_sdm630(FakeRegisters({}, {0x48: registers[0], 0x49: registers[1]})).import_wh == (
        math.floor(true_float32_wh(1_234_567.8))
    )
    for bad in (math.nan, math.inf, -0.5):
        with pytest.raises(Exception, match="not a meter reading"):
            kwh_to_wh_floor(bad)


# ------------------------------------------------------------------------ SunSpec


def test_sunspec_walk_finds_model_203_after_model_1_at_the_shared_map_addresses(
    simulator: Start,
) -> None:
    shared = json.loads(require_testdata("modbus", "modbus_maps.json").read_text())["sunspec"]
    server = simulator(frozen(), RegisterMap.SUNSPEC)
    source = ModbusTcpSource("127.0.0.1", server.port)
    try:
        base = find_sunspec_base(source)
        chain = walk_sunspec(source, base)
        located = locate_sunspec_meter(source)
    finally:
        source.close()
    assert base == 40000
    assert [(m.model_id, m.address, m.length) for m in chain] == [
        (1, shared["model_1"]["start_address"], shared["model_1"]["L"]),
        (203, shared["model_203"]["start_address"], shared["model_203"]["L"]),
    ]
    assert located == chain[1]


@pytest.mark.parametrize(
    ("scale", "import_wh", "expected_import", "resolution"),
    [
        (0, 12_345_678.9, 12_345_678, 1),
        (1, 12_345_678.9, 12_345_670, 10),  # registers hold daWh: raw 1,234,567 x 10
        (3, 987_654_321.0, 987_654_000, 1000),  # kWh registers
        (-1, 4_321.77, 4_321, 1),  # 0.1 Wh registers, floored to whole Wh
    ],
)
def test_sunspec_applies_the_totwh_scale_factor(
    simulator: Start, scale: int, import_wh: float, expected_import: int, resolution: int
) -> None:
    state = MeterState(
        Profile.SOLAR, speed=0, import_wh=import_wh, export_wh=0.0, sunspec_wh_sf=scale
    )
    server = simulator(state, RegisterMap.SUNSPEC)
    meter = tcp(server, RegisterMap.SUNSPEC)
    try:
        values = meter.read()
    finally:
        meter.close()
    assert values.import_wh == expected_import
    assert values.export_wh == 0
    assert values.resolution_wh == resolution
    assert 0 <= import_wh - values.import_wh < resolution


def test_a_device_without_the_suns_marker_is_a_clear_register_map_error(simulator: Start) -> None:
    # An SDM630 has no SunSpec registers: 40000 and 50000 are illegal addresses, 0 is not 'SunS'.
    server = simulator(frozen(), RegisterMap.SDM630)
    meter = tcp(server, RegisterMap.SUNSPEC)
    try:
        with pytest.raises(RegisterMapError, match=r"no 'SunS' marker .* at 40000, 0, 50000"):
            meter.read()
    finally:
        meter.close()


def test_a_wrong_marker_is_named_in_the_error() -> None:
    with pytest.raises(RegisterMapError, match="40000: 0x5375 0x0000"):
        locate_sunspec_meter(FakeRegisters({40000: 0x5375}))


def test_a_chain_without_model_203_names_the_models_it_found() -> None:
    holding = dict(enumerate(SUNSPEC_MARKER, start=40000))
    holding |= {40002: 1, 40003: 66, 40070: 0xFFFF, 40071: 0}
    with pytest.raises(RegisterMapError, match=r"no model 203 \(models: 1\)"):
        locate_sunspec_meter(FakeRegisters(holding))


def test_a_chain_without_end_marker_does_not_hang() -> None:
    holding = dict(enumerate(SUNSPEC_MARKER, start=40000))
    # Model 7 with L=0 repeated forever: every header points at the next one.
    holding |= {address: 7 for address in range(40002, 40002 + 2 * 200, 2)}
    with pytest.raises(RegisterMapError, match="no end marker"):
        walk_sunspec(FakeRegisters(holding), 40000)


def test_an_unimplemented_scale_factor_is_refused() -> None:
    holding = dict(enumerate(SUNSPEC_MARKER, start=40000))
    holding |= {40002: 203, 40003: 105, 40002 + 54: 0x8000, 40002 + 2 + 105: 0xFFFF}
    holding |= dict(enumerate(encode_uint32(5), start=40002 + 46))
    with pytest.raises(RegisterMapError, match="TotWh_SF"):
        ModbusMeter(FakeRegisters(holding), RegisterMap.SUNSPEC).read()
