"""Feedback while waiting for `make run`: each install step says what it does, and `serve`
prints one line with its URL once the socket accepts connections (real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from cli_helpers import SETTING_VARIABLES

from api.server import READY_PREFIX
from attestation.chain.localnode import free_loopback_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).with_name("carbonledger")
pytestmark = pytest.mark.slow


def _env(data_dir: Path, **settings: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in SETTING_VARIABLES}
    env["CARBONLEDGER_DATA_DIR"] = str(data_dir)
    env.update({f"CARBONLEDGER_{key.upper()}": value for key, value in settings.items()})
    return env


def _ready_line(env: dict[str, str], port: int, log: Path) -> tuple[str, subprocess.Popen[str]]:
    server = subprocess.Popen(
        [str(SCRIPT), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
    )
    assert server.stdout is not None
    # The only line serve prints on stdout (pytest-timeout bounds a server that hangs).
    line = server.stdout.readline()
    assert line, log.read_text()
    return line, server


def _stop(server: subprocess.Popen[str]) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        raise


@pytest.mark.parametrize(
    ("settings", "anchoring"),
    [
        ({}, "anchoring on the embedded chain every 5 s or 1,000 entries, when something is new"),
        ({"anchor_enabled": "false"}, "anchoring off"),
    ],
)
def test_serve_says_when_and_where_it_is_ready(
    tmp_path: Path, settings: dict[str, str], anchoring: str
) -> None:
    assert SCRIPT.exists(), f"the console script is not installed at {SCRIPT}"
    env = _env(tmp_path / "data", **settings)
    init = subprocess.run(
        [str(SCRIPT), "init"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert init.returncode == 0, init.stderr
    port = free_loopback_port()
    log = tmp_path / "serve.log"
    line, server = _ready_line(env, port, log)
    try:
        url = f"http://127.0.0.1:{port}"
        assert line.startswith(f"{READY_PREFIX}{url} (API docs {url}/docs); "), line
        assert anchoring in line and line.rstrip().endswith("Ctrl-C stops it"), line
        # Ready means ready: the first request after the line is answered.
        assert httpx.get(f"{url}/healthz", timeout=5).json() == {"status": "ok"}
    finally:
        _stop(server)


def test_serve_prints_no_ready_line_when_it_cannot_start(tmp_path: Path) -> None:
    env = _env(tmp_path / "data")
    assert subprocess.run([str(SCRIPT), "init"], env=env, timeout=120, check=False).returncode == 0
    # Misconfigured anchoring: the app's start-up fails, so nothing may claim readiness.
    env["CARBONLEDGER_CHAIN_RPC"] = "http://127.0.0.1:9"
    env["CARBONLEDGER_CHAIN_ANCHORER_KEY"] = "0x" + "11" * 32
    env["CARBONLEDGER_ANCHOR_ENABLED"] = "true"
    result = subprocess.run(
        [str(SCRIPT), "serve", "--port", str(free_loopback_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert READY_PREFIX not in result.stdout + result.stderr
    assert "anchoring cannot start" in result.stderr


def test_make_run_announces_every_step() -> None:
    """`make run`, dry: each step has its line on stderr and pip is not silenced."""
    dry = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-n",
            "run",
            f"VENV={ROOT / '.venv-dry-run-never-created'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if dry.returncode != 0 and "command not found" in dry.stderr:
        pytest.skip("make is not installed")
    assert dry.returncode == 0, dry.stderr
    commands = dry.stdout.splitlines()
    steps = [line for line in commands if "==> make:" in line]
    assert len(steps) >= 5, commands  # venv, pip, packages, installed, init, serve
    install = [line for line in commands if "pip install" in line and "-e '.[dev]'" in line]
    assert install and all("--quiet" not in line and " -q" not in line for line in install)
    assert commands[-1].endswith("carbonledger serve --host 127.0.0.1 --port 8000")
