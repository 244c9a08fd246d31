"""Helpers for tests/bundles (imported by module name; never collected).

A registry with one meter, its key and a few signed readings (through the real registry and
ingestion code), anchored on a chain; and an anchor reader that memoises chain answers so
the tampering tests can run thousands of verifications without re-asking the chain.
"""

from __future__ import annotations

import importlib
import socket
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from meter_support import (
    EPOCH,
    MeterKeyPair,
    add_meter,
    generation_spec,
    new_key,
    new_organisation,
    stream,
)

from attestation.anchoring.anchor import AnchorRecord, anchor_now
from attestation.bundles.chain_reader import AnchorReader, ChainAnchorReader, ChainObservation
from attestation.chain.client import CarbonAnchor, log_id_for_origin
from ledger.log.checkpoint import NoteVerifier
from ledger.meters.ingest import ingest
from ledger.meters.registration import register_key
from ledger.registry import Registry, initialise_registry
from ledger.settings import LedgerSettings

# anchor_support lives beside the anchoring tests; it is put on the path here too so this
# folder also runs on its own (`pytest tests/bundles`).
_ATTESTATION_TESTS = str(Path(__file__).resolve().parents[1] / "attestation")
if _ATTESTATION_TESTS not in sys.path:
    sys.path.append(_ATTESTATION_TESTS)
anchor_support = importlib.import_module("anchor_support")

METER = "bundle-meter-1"


def open_test_registry(path: Path, origin: str, database_url: str | None = None) -> Registry:
    settings = LedgerSettings(data_dir=path, log_origin=origin)
    if database_url is not None:
        settings = LedgerSettings(data_dir=path, log_origin=origin, database_url=database_url)
    return initialise_registry(settings)


@dataclass
class MeterFixture:
    """A registered meter with one key, and the log indices of what was written for it."""

    organisation: str
    key: MeterKeyPair
    key_index: int
    readings: list[int] = field(default_factory=list)


def register_meter_with_key(
    registry: Registry, meter: str = METER, alg: str = "Ed25519"
) -> MeterFixture:
    organisation = new_organisation(registry)
    add_meter(registry, organisation, generation_spec(meter))
    key = new_key(alg)
    record = register_key(
        registry.log,
        meter,
        key.spki,
        organisation_id=organisation,
        valid_from=EPOCH - timedelta(days=1),
    )
    return MeterFixture(organisation, key, record.log_index)


def add_readings(registry: Registry, fixture: MeterFixture, count: int, meter: str = METER) -> None:
    start_seq = len(fixture.readings) + 1
    result = ingest(
        registry.log,
        stream(fixture.key, meter, count, start_seq=start_seq, start=_start(start_seq)),
        organisation_id=fixture.organisation,
    )
    for item in result.items:
        assert item.status == "accepted" and item.index is not None, item
        fixture.readings.append(item.index)


def _start(seq: int) -> int:
    return int(EPOCH.timestamp()) + (seq - 1) * 900


def anchor(registry: Registry, contract: CarbonAnchor) -> AnchorRecord:
    # The embedded chain registers the log itself; anvil's admin does it here.
    log_id = log_id_for_origin(registry.log.head().origin)
    if not contract.log_config(log_id).registered:
        anchor_support.register_log(contract, log_id)
    record = anchor_now(registry.log, contract, poll_interval=0.05)
    assert record is not None, "there was something new to anchor"
    return record


@dataclass
class Anchored:
    """A registry whose meter key and readings are anchored on `contract`."""

    registry: Registry
    contract: CarbonAnchor
    meter: MeterFixture
    reader: ChainAnchorReader

    @property
    def log_key(self) -> NoteVerifier:
        return self.registry.signer.verifier


class CachingReader:
    """Wraps a reader; asks the chain once per distinct question (the chain does not change
    while a tampering test runs)."""

    def __init__(self, inner: AnchorReader) -> None:
        self.inner = inner
        self.calls = 0
        self._answers: dict[tuple[str, bytes, int, bytes], ChainObservation] = {}

    def observe(self, contract: str, log_id: bytes, size: int, tx: bytes) -> ChainObservation:
        self.calls += 1
        question = (contract, log_id, size, tx)
        if question not in self._answers:
            self._answers[question] = self.inner.observe(contract, log_id, size, tx)
        return self._answers[question]


def free_port() -> int:
    """A loopback port nobody listens on (bound, read and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
