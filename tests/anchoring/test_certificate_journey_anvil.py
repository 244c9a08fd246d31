"""End to end on anvil (issue 5): a simulated solar meter read over Modbus by the gateway,
its signed readings uploaded to the real API and anchored on anvil, hourly certificates
issued from them, part of one transferred to a buyer who retires it, the certificate's
bundle checked by `carbonledger verify` in a separate process, the buyer's 24/7 matching
report written by `carbonledger report matching`, and `carbonledger audit replay` clean.

Nothing is mocked: uvicorn serves the app, pymodbus serves the simulator, anvil mines the
anchors, the CLI runs as its own process. The simulated day is yesterday (UTC), driven by a
test-controlled clock, so that every hour of it is over and issuable.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from anvil_node_support import ANVIL_ADMIN_KEY, ANVIL_CHAIN_ID, ANVIL_KEYS, AnvilNode
from eth_account import Account

_GATEWAY_TESTS = Path(__file__).resolve().parents[1] / "gateway"
if str(_GATEWAY_TESTS) not in sys.path:
    # The uvicorn harness lives with the gateway tests, which may not be part of this run.
    sys.path.insert(0, str(_GATEWAY_TESTS))

from gateway_support import ApiServer, api_settings  # noqa: E402

from attestation.anchoring.anchor import anchor_now  # noqa: E402
from attestation.chain.client import CarbonAnchor, log_id_for_origin, open_rpc_chain  # noqa: E402
from attestation.chain.deployment import deploy_and_record  # noqa: E402
from ledger.access.clients import IssuedClient, create_client  # noqa: E402
from ledger.registry import Registry, initialise_registry  # noqa: E402
from ledger.settings import LedgerSettings  # noqa: E402
from meter_signing.gateway import ApiClient, Gateway, GatewayConfig, GatewayStore  # noqa: E402
from meter_signing.keys import MeterKey, generate_meter_key  # noqa: E402
from meter_signing.modbus import ModbusMeter, ModbusTcpSource, RegisterMap  # noqa: E402
from meter_signing.signing import MeterSigner  # noqa: E402
from meter_signing.simulator import MeterState, Profile, SimulatorServer  # noqa: E402

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).with_name("carbonledger")
"""The installed console script, run as its own process like a verifier would."""
HOUR = 3600
STEP = 900
PRODUCER_SCOPES = (
    "meters:write",
    "readings:write",
    "devices:read",
    "devices:write",
    "certificates:read",
    "certificates:write",
)
BUYER_SCOPES = (
    "meters:write",
    "readings:write",
    "certificates:read",
    "certificates:write",
    "reports:read",
)


class SimulatedClock:
    """The time the simulator and the gateway see; the test moves it forward."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@dataclass
class Journey:
    registry: Registry
    settings: LedgerSettings
    contract: CarbonAnchor
    node: AnvilNode
    api: httpx.Client
    url: str
    day_start: int
    workdir: Path

    def anchor(self) -> int:
        record = anchor_now(self.registry.log, self.contract, poll_interval=0.05)
        assert record is not None, "there was something new to anchor"
        assert record.size == self.registry.log.head().size
        return record.size

    def cli(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        environment = {
            "PATH": "/usr/bin:/bin",
            "CARBONLEDGER_DATA_DIR": str(self.settings.data_dir),
            "CARBONLEDGER_DATABASE_URL": self.settings.resolved_database_url(),
        }
        return subprocess.run(
            [str(CLI), *arguments],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
            env=environment,
            check=False,
        )


def _headers(api: httpx.Client, client: IssuedClient) -> dict[str, str]:
    response = api.post(
        "/auth/token",
        auth=(client.client_id, client.client_secret),
        data={"grant_type": "client_credentials"},
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def journey(
    database_url: str, tmp_path: Path, anvil_node: AnvilNode, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Journey]:
    settings = LedgerSettings(data_dir=tmp_path / "data", database_url=database_url)
    registry = initialise_registry(settings)
    chain = open_rpc_chain(anvil_node.url, ANVIL_KEYS[0], expected_chain_id=ANVIL_CHAIN_ID)
    admin = Account.from_key(ANVIL_ADMIN_KEY)
    deployment = deploy_and_record(chain, settings.data_dir, admin=admin.address, signer=admin)
    contract = CarbonAnchor(chain, deployment.address)
    origin = registry.log.head().origin
    contract.register_log(log_id_for_origin(origin), chain.account.address, admin=admin)
    # The service's own anchoring and expiry sweeps stay off: the test anchors at the moments
    # it then checks.
    monkeypatch.setenv("CARBONLEDGER_ANCHOR_ENABLED", "false")
    monkeypatch.setenv("CARBONLEDGER_EXPIRY_SWEEP_SECONDS", "0")
    server = ApiServer(api_settings(settings))
    server.start()
    # Yesterday (UTC): every hour of it is over, so all of it is issuable today.
    day = (datetime.now(UTC) - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as api:
            yield Journey(
                registry,
                settings,
                contract,
                anvil_node,
                api,
                server.url,
                int(day.timestamp()),
                tmp_path,
            )
    finally:
        server.stop()
        registry.close()


def _register_meter(
    journey: Journey, headers: dict[str, str], meter: dict[str, Any], key: MeterKey
) -> None:
    _ok(journey.api.post("/v1/meters", json=meter, headers=headers), 201)
    _ok(
        journey.api.post(
            f"/v1/meters/{meter['id']}/keys",
            json={"publicKey": key.public_spki_b64, "validFrom": _iso(journey.day_start)},
            headers=headers,
        ),
        201,
    )


def _gateway_day(journey: Journey, producer: IssuedClient, key: MeterKey) -> int:
    """The simulator and the gateway through one simulated day: 97 quarter-hour readings."""
    clock = SimulatedClock(journey.day_start)
    state = MeterState(
        Profile.SOLAR, capacity_w=10_000, speed=1, clock=clock, start_sim=journey.day_start
    )
    simulator = SimulatorServer(state, register_map=RegisterMap.SDM630, host="127.0.0.1", port=0)
    simulator.start()
    store = GatewayStore(journey.workdir / "gateway", "sim-pv-1")
    device = ModbusMeter(ModbusTcpSource("127.0.0.1", simulator.port), RegisterMap.SDM630)
    client = ApiClient(journey.url, producer.client_id, producer.client_secret, timeout=30)
    gateway = Gateway(
        meter_id="sim-pv-1",
        key=key,
        meter=device,
        store=store,
        api=client,
        config=GatewayConfig(interval_s=STEP, batch_size=50),
        clock=clock,
    )
    try:
        for boundary in range(journey.day_start, journey.day_start + 24 * HOUR + 1, STEP):
            clock.now = boundary
            assert gateway.poll(boundary) is not None, f"poll at {boundary} was skipped"
        assert gateway.drain(until=float("inf")) is None, "every reading was uploaded"
        assert store.pending_count() == 0
        return gateway.stats.polls
    finally:
        store.close()
        device.close()
        simulator.stop()


def test_solar_meter_to_verified_retired_certificate_and_matching_report(
    journey: Journey,
) -> None:
    api, day = journey.api, journey.day_start
    producer = create_client(journey.registry.database, "Sunny Roofs", PRODUCER_SCOPES)
    buyer = create_client(journey.registry.database, "Green Buyer", BUYER_SCOPES)
    issuer = create_client(journey.registry.database, "Registry Issuer", ["issuer"])
    as_producer, as_buyer = _headers(api, producer), _headers(api, buyer)
    as_issuer = _headers(api, issuer)

    # 1. A solar meter read by the gateway; its readings go to the registry and are anchored.
    solar_key = generate_meter_key("Ed25519")
    location = {"province": "CN-JS", "gridRegion": "east"}
    _register_meter(
        journey,
        as_producer,
        {
            "id": "sim-pv-1",
            "role": "generation",
            "location": location,
            "energySource": "solar",
            "capacityW": 10_000,
        },
        solar_key,
    )
    assert _gateway_day(journey, producer, solar_key) == 97
    journey.anchor()

    # 2. The device, approved by the issuer, and a day of hourly certificates.
    _ok(
        api.post(
            "/v1/devices",
            json={
                "id": "suzhou-rooftop-1",
                "name": "Rooftop PV, Suzhou",
                "energySource": "solar",
                "technology": "photovoltaic",
                "capacityW": 10_000,
                "commissioningDate": "2025-03-01",
                "location": location,
                "meters": ["sim-pv-1"],
            },
            headers=as_producer,
        ),
        201,
    )
    _ok(api.post("/v1/devices/suzhou-rooftop-1/approve", headers=as_issuer))
    producer_account = _ok(
        api.post("/v1/accounts", json={"name": "trading"}, headers=as_producer), 201
    )["id"]
    buyer_account = _ok(api.post("/v1/accounts", json={"name": "claims"}, headers=as_buyer), 201)[
        "id"
    ]
    # The device was not anchored yet when readings were: anchor the registration first.
    journey.anchor()
    issued = _ok(
        api.post(
            "/v1/devices/suzhou-rooftop-1/issuance",
            json={"from": _iso(day), "to": _iso(day + 24 * HOUR), "account": producer_account},
            headers=as_producer,
        ),
        201,
    )
    certificates = issued["certificates"]
    # Daylight in China (UTC+8) is the UTC morning: some hours produce, the night does not.
    assert 6 <= len(certificates) <= 16, issued
    largest = max(certificates, key=lambda item: item["volumeWh"])
    assert largest["volumeWh"] > 1_000

    # 3. Part of the largest goes to the buyer, who retires it for a Scope 2 claim.
    moved = _ok(
        api.post(
            f"/v1/certificates/{largest['id']}/transfer",
            json={"toAccount": buyer_account, "volumeWh": 1_000},
            headers=as_producer,
        )
    )
    bought = moved["certificate"]["id"]
    assert moved["certificate"]["volumeWh"] == 1_000
    assert moved["remainder"]["volumeWh"] == largest["volumeWh"] - 1_000
    retired = _ok(
        api.post(
            f"/v1/certificates/{bought}/retire",
            json={
                "purpose": "scope2-market-based",
                "reportingPeriod": {"from": _iso(day), "to": _iso(day + 24 * HOUR)},
                "consumptionLocation": {"province": "CN-GD", "gridRegion": "south"},
            },
            headers=as_buyer,
        )
    )
    assert retired["certificate"]["status"] == "retired"
    journey.anchor()

    # 4. The verifier: the public bundle, `carbonledger verify` in its own process.
    bundle = api.get(f"/v1/certificates/{bought}/bundle")
    assert bundle.status_code == 200, bundle.text
    bundle_file = journey.workdir / "certificate-bundle.json"
    bundle_file.write_bytes(bundle.content)
    verified = journey.cli(
        "verify",
        str(bundle_file),
        "--rpc",
        journey.node.url,
        "--contract",
        journey.contract.address,
        "--log-key",
        journey.registry.signer.verifier.encode(),
        "--issuer",
        journey.registry.issuer().did,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"certificate {bought} proves 1,000 Wh (0.001000 GEC) of solar electricity" in (
        verified.stdout
    )
    assert f"retired to {buyer.organisation_id} for scope2-market-based" in verified.stdout

    # 5. The buyer's consumption meter and its 24/7 matching report with a chart.
    load_key = generate_meter_key("Ed25519")
    _register_meter(
        journey,
        as_buyer,
        {
            "id": "buyer-load-1",
            "role": "consumption",
            "location": {"province": "CN-GD", "gridRegion": "south"},
        },
        load_key,
    )
    signer = MeterSigner("buyer-load-1", load_key)
    envelopes = [
        signer.sign_json(
            seq, datetime.fromtimestamp(day + (seq - 1) * HOUR, UTC), (seq - 1) * 800, 0
        )
        for seq in range(1, 26)
    ]
    accepted = _ok(api.post("/v1/readings", json={"readings": envelopes}, headers=as_buyer))
    assert accepted["accepted"] == 25, accepted
    report_dir = journey.workdir / "report"
    reported = journey.cli(
        "report",
        "matching",
        "--organisation",
        buyer.organisation_id,
        "--from",
        _iso(day),
        "--to",
        _iso(day + 24 * HOUR),
        "--out",
        str(report_dir),
        "--json",
    )
    assert reported.returncode == 0, reported.stdout + reported.stderr
    (chart,) = report_dir.glob("*.png")
    (table,) = report_dir.glob("*.csv")
    assert chart.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    (document_file,) = report_dir.glob("*.json")
    document = json.loads(document_file.read_text())
    assert document["consumptionWh"] == 24 * 800
    assert document["supplyWh"] == 1_000
    # 1,000 Wh produced in one hour meet at most that hour's 800 Wh of consumption.
    assert document["matchedWh"] == 800 and document["volumeMatchedWh"] == 1_000
    assert document["cfePercent"] < document["volumeMatchPercent"]
    assert table.read_text().count("\n") == 25  # a header and 24 hours

    # 6. The auditor: the whole log replayed, its roots compared with the chain's.
    audited = journey.cli(
        "audit", "replay", "--rpc", journey.node.url, "--contract", journey.contract.address
    )
    assert audited.returncode == 0, audited.stdout + audited.stderr
