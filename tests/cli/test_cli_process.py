"""The installed `carbonledger` console script in real processes: init, then serve on a
loopback port until /healthz and /v1/log/checkpoint answer; and a real shell pipe from
`log prove` into `log verify-inclusion`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cli_helpers import SETTING_VARIABLES

from attestation.chain.localnode import free_loopback_port
from ledger.log.checkpoint import NoteVerifier, open_checkpoint
from ledger.registry import open_registry
from ledger.settings import LedgerSettings

SCRIPT = Path(sys.executable).with_name("carbonledger")
STARTUP_SECONDS = 30
pytestmark = pytest.mark.slow


def _env(data_dir: Path, database_url: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in SETTING_VARIABLES}
    env["CARBONLEDGER_DATA_DIR"] = str(data_dir)
    env["CARBONLEDGER_DATABASE_URL"] = database_url
    return env


def _cli(
    *args: str, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    assert SCRIPT.exists(), f"the console script is not installed at {SCRIPT}"
    return _env(tmp_path / "data", database_url)


def test_init_then_serve_answers_health_and_checkpoint(env: dict[str, str], tmp_path: Path) -> None:
    init = _cli("init", "--json", env=env)
    assert init.returncode == 0, init.stderr
    verifier = NoteVerifier.parse(json.loads(init.stdout)["verifierKey"])

    port = free_loopback_port()
    server_log = tmp_path / "serve.log"
    with server_log.open("w") as log_file:
        server = subprocess.Popen(
            [str(SCRIPT), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + STARTUP_SECONDS
            health: httpx.Response | None = None
            while time.monotonic() < deadline:
                assert server.poll() is None, server_log.read_text()
                try:
                    health = httpx.get(f"{base}/healthz", timeout=2)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            assert health is not None, (
                f"no answer within {STARTUP_SECONDS}s: {server_log.read_text()}"
            )
            assert health.status_code == 200
            assert health.json() == {"status": "ok"}

            checkpoint = httpx.get(f"{base}/v1/log/checkpoint", timeout=5)
            assert checkpoint.status_code == 200
            opened = open_checkpoint(checkpoint.text, verifier)
            assert opened.size == 0
            assert "server" not in checkpoint.headers
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                code = server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
                raise
    # Uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status says why.
    assert code in (0, -signal.SIGTERM), server_log.read_text()
    assert "Application shutdown complete" in server_log.read_text()


def test_prove_piped_into_verify_inclusion(
    env: dict[str, str], tmp_path: Path, database_url: str
) -> None:
    init = _cli("init", "--json", env=env)
    assert init.returncode == 0, init.stderr
    registry = open_registry(
        LedgerSettings(data_dir=tmp_path / "data", database_url=database_url), migrate=False
    )
    try:
        registry.log.append({"kind": "test.cli/1", "n": n} for n in range(21))
        note = tmp_path / "checkpoint"
        note.write_text(registry.log.checkpoint(registry.signer))
    finally:
        registry.close()
    key = json.loads(init.stdout)["verifierKey"]

    # `carbonledger log prove --index 17 | carbonledger log verify-inclusion - ...`, the
    # verifier without any settings: it must not need them.
    verifier_env = {k: v for k, v in env.items() if not k.startswith("CARBONLEDGER_")}
    with subprocess.Popen(
        [str(SCRIPT), "log", "prove", "--index", "17"], env=env, stdout=subprocess.PIPE
    ) as prover:
        assert prover.stdout is not None
        verifier = subprocess.run(
            [str(SCRIPT), "log", "verify-inclusion", "-", "--checkpoint", str(note), "--key", key],
            env=verifier_env,
            stdin=prover.stdout,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        prover.stdout.close()
    assert prover.returncode == 0
    assert verifier.returncode == 0, verifier.stderr
    assert "PASS  inclusion" in verifier.stdout
    assert "PASS  trusted root" in verifier.stdout


def test_uninitialised_serve_exits_before_binding(env: dict[str, str]) -> None:
    port = free_loopback_port()
    result = _cli("serve", "--port", str(port), env=env)
    assert result.returncode == 3
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: the registry is not initialised")
    assert "run `carbonledger init`" in lines[0]
