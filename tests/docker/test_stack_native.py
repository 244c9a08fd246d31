"""The compose topology without Docker: PostgreSQL, anvil, the API with 2 workers, the
anchorer, a simulated Modbus meter and the gateway, each its own process on ephemeral
127.0.0.1 ports, run with the commands docker/compose.yaml runs. One reading travels from the
simulated meter through the gateway and the API into the log, the anchorer anchors it on
anvil, and `carbonledger verify` checks its bundle against the chain, as a verifier would.

PostgreSQL is the test server's (a fresh database, tests/pg_support.py), not a server of its
own: starting a second cluster would cost more than the rest of the stack together.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "attestation"))
from anchor_support import ANVIL, ANVIL_KEYS, missing_tool

from attestation.chain.localnode import ANVIL_CHAIN_ID, LocalAnvil, free_loopback_port

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(240)]

BIN = Path(sys.executable).parent
CARBONLEDGER = str(BIN / "carbonledger")
SCOPES = "meters:write readings:write readings:read log:read"
METER = "pv-stack-1"


def wait_for(check: Callable[[], Any], timeout: float, what: str, procs: list[Popen]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.process.poll() is not None:
                pytest.fail(f"{proc.name} exited {proc.process.returncode}: {proc.output()}")
        try:
            value = check()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}; " + " | ".join(p.output()[-800:] for p in procs))


class Popen:
    """A stack process with its output in a file (read when something fails)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.log = logs / f"{name}.log"
        self._file = self.log.open("wb")
        self.process = subprocess.Popen(
            args, env=env, stdout=self._file, stderr=subprocess.STDOUT, start_new_session=True
        )

    def output(self) -> str:
        return f"[{self.name}] " + self.log.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self._file.close()


def cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [CARBONLEDGER, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"carbonledger {' '.join(args)}: {result.stderr[-2000:]}"
    return result.stdout


@pytest.fixture
def anvil() -> Iterator[LocalAnvil]:
    if not ANVIL.exists():
        missing_tool(f"anvil not found at {ANVIL}; run `npm ci` in contracts/")
    node = LocalAnvil(ANVIL)
    node.start()
    try:
        yield node
    finally:
        node.stop()


def test_a_metered_reading_reaches_an_anchored_verified_checkpoint(
    tmp_path: Path, postgres_url: str, anvil: LocalAnvil
) -> None:
    data_dir, logs = tmp_path / "registry", tmp_path / "logs"
    logs.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONLEDGER_")}
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "CARBONLEDGER_DATA_DIR": str(data_dir),
            "CARBONLEDGER_DATABASE_URL": postgres_url,
            "CARBONLEDGER_CHAIN_RPC": anvil.url,
            "CARBONLEDGER_CHAIN_ID": str(ANVIL_CHAIN_ID),
            "CARBONLEDGER_CHAIN_ANCHORER_KEY": ANVIL_KEYS[0],
            "CARBONLEDGER_ANCHOR_INTERVAL_SECONDS": "1",
            "CARBONLEDGER_ANCHOR_TICK_SECONDS": "1",
        }
    )
    # The compose file's `setup` service.
    verifier_key = json.loads(cli(env, "init", "--json"))["verifierKey"]
    admin = {**env, "CARBONLEDGER_CHAIN_ADMIN_KEY": ANVIL_KEYS[1]}
    contract = json.loads(cli(admin, "chain", "deploy", "--json"))["contract"]
    cli(admin, "chain", "register-log")
    client = json.loads(
        cli(env, "admin", "create-client", "--org", "Stack Roofs", "--scopes", SCOPES, "--json")
    )
    key = json.loads(cli(env, "meter", "keygen", "--out", str(tmp_path / "m.pem"), "--json"))

    api_port, modbus_port = free_loopback_port(), free_loopback_port()
    api_url = f"http://127.0.0.1:{api_port}"
    with ExitStack() as stack:

        def start(name: str, args: list[str], extra: dict[str, str] | None = None) -> Popen:
            proc = Popen(name, args, {**env, **(extra or {})}, logs)
            stack.callback(proc.stop)
            return proc

        # `api`: uvicorn's own --workers on the app factory, anchoring off in the workers.
        api = start(
            "api",
            [
                str(BIN / "uvicorn"),
                "api.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(api_port),
                "--workers",
                "2",
                "--no-server-header",
            ],
            {"CARBONLEDGER_ANCHOR_ENABLED": "false"},
        )
        anchorer = start("anchorer", [CARBONLEDGER, "anchor", "run"])
        meter = start(
            "meter",
            [
                CARBONLEDGER,
                "meter",
                "simulate",
                "--map",
                "sunspec",
                "--profile",
                "solar",
                "--start",
                "11:00",
                "--host",
                "127.0.0.1",
                "--port",
                str(modbus_port),
            ],
        )
        procs = [api, anchorer, meter]
        http = stack.enter_context(httpx.Client(base_url=api_url, timeout=10))
        wait_for(lambda: http.get("/readyz").status_code == 200, 60, "the API", procs)
        workers = psutil.Process(api.process.pid).children(recursive=True)
        assert len([p for p in workers if "python" in p.name()]) >= 2, "not 2 workers"

        token = http.post(
            "/auth/token",
            data={"grant_type": "client_credentials"},
            auth=(client["clientId"], client["clientSecret"]),
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        registered = http.post(
            "/v1/meters",
            headers=auth,
            json={
                "id": METER,
                "role": "generation",
                "location": {"province": "CN-JS", "gridRegion": "east"},
                "energySource": "solar",
                "capacityW": 5000,
            },
        )
        assert registered.status_code == 201, registered.text
        added = http.post(
            f"/v1/meters/{METER}/keys", headers=auth, json={"publicKey": key["publicKey"]}
        )
        assert added.status_code == 201, added.text

        gateway = start(
            "gateway",
            [
                CARBONLEDGER,
                "gateway",
                "run",
                "--meter",
                METER,
                "--key",
                str(tmp_path / "m.pem"),
                "--map",
                "sunspec",
                "--modbus",
                f"127.0.0.1:{modbus_port}",
                "--api",
                api_url,
                "--state-dir",
                str(tmp_path / "gateway"),
                "--interval",
                "1",
            ],
            {
                "CARBONLEDGER_GATEWAY_CLIENT_ID": client["clientId"],
                "CARBONLEDGER_GATEWAY_CLIENT_SECRET": client["clientSecret"],
            },
        )
        procs.append(gateway)

        def readings() -> list[dict[str, Any]]:
            page = http.get(f"/v1/meters/{METER}/readings", headers=auth).json()
            return list(page["readings"])

        stored = wait_for(lambda: len(readings()) >= 2 and readings(), 60, "readings", procs)
        index = stored[-1]["logIndex"]

        def anchored() -> bool:
            latest = http.get("/v1/anchors/latest")
            return latest.status_code == 200 and latest.json()["size"] > index

        wait_for(anchored, 60, f"an anchor covering entry {index}", procs)
        bundle = http.get(f"/v1/log/entries/{index}/bundle", headers=auth)
        assert bundle.status_code == 200, bundle.text
        path = tmp_path / "bundle.json"
        path.write_bytes(bundle.content)

        # The verifier: the bundle, the chain, the published contract and log key; no API.
        def verify() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [
                    *(CARBONLEDGER, "verify", str(path), "--rpc", anvil.url),
                    *("--contract", contract, "--chain-id", str(ANVIL_CHAIN_ID)),
                    *("--log-key", verifier_key),
                ],
                env={"PATH": env["PATH"]},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )

        report = verify()
        assert report.returncode == 0, report.stdout + report.stderr
        assert f"reading/2 meter {METER}" in report.stdout
        assert "PASS  chain" in report.stdout

        # Tampering with the anchored root is refused by the chain check.
        document = json.loads(bundle.content)
        root = document["anchor"]["root"]
        document["anchor"]["root"] = root[:-1] + ("0" if root[-1] != "0" else "1")
        path.write_text(json.dumps(document))
        tampered = verify()
        assert tampered.returncode == 1, tampered.stdout + tampered.stderr
        assert "FAIL  chain" in tampered.stdout

        # Exactly one process anchored: the anchorer's log names each anchor, the API's none.
        assert "anchored size" in anchorer.log.read_text()
        assert "anchored size" not in api.log.read_text()
    # Every process stopped on SIGTERM by itself.
    for proc in procs:
        assert proc.process.returncode is not None
