"""The replay's implausibility flags equal the ones ingestion stored, reading by reading:
the audit re-derives them from `meter.registered/1` capacity and the readings alone."""

from __future__ import annotations

import uuid
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from meter_support import EPOCH, T0, add_meter, generation_spec, new_key, new_organisation, sign
from sqlalchemy import select

from ledger.audit.replay import Replay
from ledger.log.store import MAX_ENTRIES_PER_READ
from ledger.meters.ingest import ingest
from ledger.meters.models import Reading
from ledger.meters.registration import register_key
from ledger.registry import initialise_registry
from ledger.settings import LedgerSettings

CAPACITY_W = 4_000


def test_flags_match_ingestion(tmp_path: Path) -> None:
    data = tmp_path / "data"
    registry = initialise_registry(
        LedgerSettings(data_dir=data, database_url=f"sqlite:///{data / 'audit.db'}")
    )
    organisation = new_organisation(registry)
    seen: set[bool] = set()

    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        steps=st.lists(
            st.tuples(
                st.integers(min_value=1, max_value=3_600),
                st.integers(min_value=0, max_value=6_000),
                st.integers(min_value=0, max_value=6_000),
            ),
            min_size=1,
            max_size=25,
        )
    )
    def check(steps: list[tuple[int, int, int]]) -> None:
        meter = f"m-{uuid.uuid4().hex[:10]}"
        add_meter(registry, organisation, generation_spec(meter, capacity_w=CAPACITY_W))
        key = new_key()
        register_key(registry.log, meter, key.spki, organisation_id=organisation, valid_from=EPOCH)
        at, imported, exported = T0, 0, 0
        envelopes = [sign(key, meter, 1, at, imported, exported)]
        for seq, (seconds, more_import, more_export) in enumerate(steps, start=2):
            at, imported, exported = at + seconds, imported + more_import, exported + more_export
            envelopes.append(sign(key, meter, seq, at, imported, exported))
        result = ingest(registry.log, envelopes, organisation_id=organisation)
        assert all(item.status == "accepted" for item in result.items)
        with registry.database.read() as session:
            stored = list(
                session.scalars(
                    select(Reading.implausible)
                    .where(Reading.meter_id == meter)
                    .order_by(Reading.seq)
                )
            )
        replay = Replay()
        size = registry.log.head().size
        for start in range(0, size, MAX_ENTRIES_PER_READ):
            leaves = registry.log.entries(start, min(start + MAX_ENTRIES_PER_READ, size))
            for offset, leaf in enumerate(leaves):
                replay.feed(start + offset, leaf)
        assert replay.finish().ok
        assert [bool(flag) for flag in replay._meters[meter].flags] == stored
        seen.update(stored)

    try:
        check()
        assert seen == {True, False}, "the examples must include both kinds of interval"
    finally:
        registry.close()
