"""Helpers for the gateway tests: a restartable real API server, a registered meter, waits."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy import select

from api.app import create_app
from api.security import SCOPE_LOG_READ, SCOPE_READINGS_WRITE, ensure_token_secret
from api.settings import ApiSettings
from ledger.access.clients import IssuedClient, create_client
from ledger.meters.entries import EnergySource, GridRegion, MeterRole
from ledger.meters.models import Reading
from ledger.meters.registration import MeterSpec, register_key, register_meter
from ledger.registry import Registry
from ledger.settings import LedgerSettings
from meter_signing.keys import MeterKey, generate_meter_key

LOOPBACK = "127.0.0.1"
# 12:00 local (UTC+8) on a fixed day: the solar curve is at its peak.
NOON_LOCAL = datetime(2026, 6, 1, 4, 0, tzinfo=UTC).timestamp()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


class ApiServer:
    """The real FastAPI app under uvicorn on a loopback port, stoppable and restartable.

    Each start builds a new app and server on the same port, as a restarted service would;
    the registry's database is what carries over.
    """

    def __init__(self, settings: ApiSettings, port: int | None = None) -> None:
        self.settings = settings
        self.port = port or free_port()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        assert self._server is None, "already running"
        config = uvicorn.Config(
            create_app(self.settings), host=LOOPBACK, port=self.port, log_level="warning"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            assert self._thread.is_alive(), "the API server thread died on start"
            assert time.monotonic() < deadline, "the API server did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        assert self._server is not None and self._thread is not None
        self._server.should_exit = True
        self._thread.join(30)
        assert not self._thread.is_alive(), "the API server did not stop"
        self._server = None
        self._thread = None

    @property
    def running(self) -> bool:
        return self._server is not None


@dataclass(frozen=True)
class RegisteredMeter:
    meter_id: str
    key: MeterKey
    client: IssuedClient


def api_settings(settings: LedgerSettings) -> ApiSettings:
    configured = ApiSettings(**settings.model_dump())
    ensure_token_secret(configured)
    return configured


def register_solar_meter(
    registry: Registry, meter_id: str = "sim-pv-1", capacity_w: int = 10_000
) -> RegisteredMeter:
    """A generation meter with an Ed25519 key valid from an hour ago, and an API client of
    its organisation allowed to submit readings and read the log."""
    client = create_client(registry.database, "Sunny Roofs", [SCOPE_READINGS_WRITE, SCOPE_LOG_READ])
    spec = MeterSpec(
        meter_id=meter_id,
        role=MeterRole.GENERATION,
        province="CN-JS",
        grid_region=GridRegion.EAST,
        energy_source=EnergySource.SOLAR,
        capacity_w=capacity_w,
    )
    register_meter(registry.log, client.organisation_id, spec)
    key = generate_meter_key("Ed25519")
    register_key(
        registry.log,
        meter_id,
        key.public_spki,
        organisation_id=client.organisation_id,
        valid_from=datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1),
    )
    return RegisteredMeter(meter_id, key, client)


@dataclass(frozen=True)
class StoredReading:
    seq: int
    time: int
    import_wh: int
    export_wh: int
    implausible: bool
    log_index: int


def stored_readings(registry: Registry, meter_id: str) -> list[StoredReading]:
    """The meter's accepted reading rows, in seq order (copied out of the read session)."""
    with registry.database.read() as session:
        rows = session.execute(
            select(Reading).where(Reading.meter_id == meter_id).order_by(Reading.seq)
        ).scalars()
        return [
            StoredReading(
                row.seq, row.time, row.import_wh, row.export_wh, row.implausible, row.log_index
            )
            for row in rows
        ]


def reading_leaves(registry: Registry, meter_id: str) -> list[dict[str, Any]]:
    """Every `reading/1` leaf of the meter in the log, in log order."""
    size = registry.log.head().size
    leaves = [json.loads(leaf) for leaf in registry.log.entries(0, size)]
    return [
        leaf
        for leaf in leaves
        if leaf.get("kind") in ("reading/1", "reading/2") and leaf["payload"]["meter"] == meter_id
    ]


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def dead_letter_lines(state_dir: Path) -> list[str]:
    path = state_dir / "dead-letter.jsonl"
    return path.read_text().splitlines() if path.exists() else []
