"""`carbonledger meter simulate` and `carbonledger gateway run` (api/cli/gateway.py), through
the real command tree, so errors go through the CLI's one-line error handling."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gateway_support import (
    NOON_LOCAL,
    ApiServer,
    api_settings,
    free_port,
    reading_leaves,
    register_solar_meter,
    stored_readings,
)
from typer.testing import CliRunner, Result

from api.cli.main import app
from ledger.registry import Registry
from ledger.settings import LedgerSettings
from meter_signing.keys import create_meter_key_file
from meter_signing.modbus import MeterReadError, ModbusMeter, ModbusTcpSource, RegisterMap
from meter_signing.simulator import MeterState, Profile, SimulatorServer


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def assert_one_line_error(result: Result, exit_code: int, *fragments: str) -> None:
    assert result.exit_code == exit_code, (result.exit_code, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "meter.pem"
    create_meter_key_file(path)
    return path


def gateway_args(key: Path, modbus: str, *extra: str) -> list[str]:
    return [
        "gateway",
        "run",
        "--meter",
        "m-1",
        "--key",
        str(key),
        "--modbus",
        modbus,
        "--client-id",
        "id",
        "--client-secret",
        "secret",
        *extra,
    ]


def test_simulate_refuses_an_unknown_profile() -> None:
    assert_one_line_error(run("meter", "simulate", "--profile", "wind"), 2, "--profile", "wind")


def test_simulate_on_a_taken_port_is_unavailable() -> None:
    with SimulatorServer(MeterState(Profile.LOAD, speed=0), port=0) as busy:
        result = run("meter", "simulate", "--port", str(busy.port))
    assert_one_line_error(result, 3, f"127.0.0.1:{busy.port}")


def test_gateway_refuses_a_malformed_modbus_address(key_file: Path, tmp_path: Path) -> None:
    result = run(*gateway_args(key_file, "localhost", "--state-dir", str(tmp_path / "s")))
    assert_one_line_error(result, 2, "--modbus must be HOST:PORT")


def test_gateway_without_its_key_file_is_unavailable(tmp_path: Path) -> None:
    result = run(*gateway_args(tmp_path / "missing.pem", "127.0.0.1:5020"))
    assert_one_line_error(result, 3, "missing.pem")


def test_gateway_with_an_unreachable_meter_is_unavailable(key_file: Path, tmp_path: Path) -> None:
    modbus = f"127.0.0.1:{free_port()}"
    result = run(*gateway_args(key_file, modbus, "--state-dir", str(tmp_path / "s")))
    assert_one_line_error(result, 3, "cannot connect to the Modbus device")


def test_gateway_with_the_wrong_register_map_is_a_usage_error(
    key_file: Path, tmp_path: Path, simulator: Callable[..., SimulatorServer]
) -> None:
    sdm = simulator(MeterState(Profile.SOLAR, speed=0), RegisterMap.SDM630)
    result = run(
        *gateway_args(
            key_file, f"127.0.0.1:{sdm.port}", "--map", "sunspec", "--state-dir", str(tmp_path)
        )
    )
    assert_one_line_error(result, 2, "no 'SunS' marker")


@pytest.mark.slow
def test_gateway_run_uploads_readings_that_become_log_entries(
    registry: Registry,
    settings: LedgerSettings,
    simulator: Callable[..., SimulatorServer],
    tmp_path: Path,
) -> None:
    meter = register_solar_meter(registry)
    key_path = tmp_path / "meter.pem"
    key_path.write_bytes(meter.key.private_pem())
    key_path.chmod(0o600)
    sim = simulator(MeterState(Profile.SOLAR, speed=60, start_sim=NOON_LOCAL), RegisterMap.SUNSPEC)
    api = ApiServer(api_settings(settings))
    api.start()
    try:
        result = CliRunner().invoke(
            app,
            [
                "gateway",
                "run",
                "--meter",
                meter.meter_id,
                "--key",
                str(key_path),
                "--modbus",
                f"127.0.0.1:{sim.port}",
                "--map",
                "sunspec",
                "--api",
                api.url,
                "--state-dir",
                str(tmp_path / "state"),
                "--interval",
                "1",
                "--max-polls",
                "3",
            ],
            env={
                "CARBONLEDGER_GATEWAY_CLIENT_ID": meter.client.client_id,
                "CARBONLEDGER_GATEWAY_CLIENT_SECRET": meter.client.client_secret,
            },
        )
    finally:
        api.stop()
    assert result.exit_code == 0, result.output
    assert "3 acknowledged, 0 dead-lettered, 0 still queued" in result.stderr
    assert [row.seq for row in stored_readings(registry, meter.meter_id)] == [1, 2, 3]
    leaves = reading_leaves(registry, meter.meter_id)
    assert [leaf["keyId"] for leaf in leaves] == [meter.key.key_id] * 3
    # Each reading is a log entry with a valid inclusion proof in the current tree.
    size = registry.log.head().size
    for row in stored_readings(registry, meter.meter_id):
        proof = registry.log.inclusion_proof(row.log_index, size)
        assert proof.index == row.log_index


@pytest.fixture
def simulate_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "api.cli.main",
            "meter",
            "simulate",
            "--map",
            "sdm630",
            "--profile",
            "load",
            "--speed",
            "3600",
            "--port",
            str(port),
            "--import-kwh",
            "1500",
            "--status-every",
            "0.5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield process, port
    if process.poll() is None:
        process.kill()
        process.wait(10)


@pytest.mark.slow
def test_simulate_serves_a_growing_meter_until_interrupted(
    simulate_process: tuple[subprocess.Popen[str], int],
) -> None:
    process, port = simulate_process
    meter = ModbusMeter(ModbusTcpSource("127.0.0.1", port, timeout=1), RegisterMap.SDM630)
    deadline = time.monotonic() + 20
    while True:
        try:
            first = meter.read()
            break
        except MeterReadError:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the simulator did not come up"
            time.sleep(0.1)
    time.sleep(1.0)  # an hour of simulated household load at speed 3600
    second = meter.read()
    meter.close()
    assert 1_500_000 <= first.import_wh < second.import_wh
    assert second.export_wh == 0
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0, stderr
    assert "simulating a load meter (sdm630" in stderr


def test_the_map_option_names_exactly_the_register_maps() -> None:
    """api.cli.gateway mirrors RegisterMap's values so its help needs no pymodbus import."""
    from api.cli.gateway import MapName  # noqa: PLC0415

    assert [item.value for item in MapName] == [item.value for item in RegisterMap]
