"""Helpers for tests/anchoring (imported by module name; never collected): a registry with
one meter and key and signed readings, written through the real registry and ingestion code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from meter_support import EPOCH, MeterKeyPair, add_meter, generation_spec, new_key, stream

from ledger.access.clients import create_client
from ledger.meters.ingest import ingest
from ledger.meters.registration import register_key
from ledger.registry import Registry, initialise_registry
from ledger.settings import LedgerSettings

METER = "anchoring-meter-1"


@dataclass
class MeteredLog:
    """A registry with one meter and key; `readings` are the log indices of its readings."""

    registry: Registry
    settings: LedgerSettings
    organisation: str
    key: MeterKeyPair
    key_index: int
    readings: list[int] = field(default_factory=list)

    def add_readings(self, count: int) -> list[int]:
        start_seq = len(self.readings) + 1
        result = ingest(
            self.registry.log,
            stream(
                self.key,
                METER,
                count,
                start_seq=start_seq,
                start=int(EPOCH.timestamp()) + (start_seq - 1) * 900,
            ),
            organisation_id=self.organisation,
        )
        added = []
        for item in result.items:
            assert item.status == "accepted" and item.index is not None, item
            added.append(item.index)
        self.readings += added
        return added


@contextmanager
def metered_log(data_dir: Path) -> Iterator[MeteredLog]:
    settings = LedgerSettings(data_dir=data_dir)
    registry = initialise_registry(settings)
    try:
        organisation = create_client(registry.database, "Anchoring Solar", ["log:read"])
        add_meter(registry, organisation.organisation_id, generation_spec(METER))
        key = new_key()
        record = register_key(
            registry.log,
            METER,
            key.spki,
            organisation_id=organisation.organisation_id,
            valid_from=EPOCH - timedelta(days=1),
        )
        fixture = MeteredLog(
            registry, settings, organisation.organisation_id, key, record.log_index
        )
        fixture.add_readings(3)
        yield fixture
    finally:
        registry.close()
