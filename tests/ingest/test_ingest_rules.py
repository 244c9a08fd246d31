"""`ledger.meters.ingest`: each rule has its reason code, and a refusal changes nothing.

"Nothing" is checked as the log size and root plus the count of reading rows (and, for
equivocation, exactly one new evidence row and still no reading and no leaf).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from meter_support import (
    EPOCH,
    T0,
    MeterKeyPair,
    add_meter,
    generation_spec,
    new_key,
    new_organisation,
    payload,
    sign,
    snapshot,
    stream,
)
from sqlalchemy import select

from ledger.log.canonical import canonical_entry, canonical_json, parse_entry
from ledger.log.merkle import leaf_hash
from ledger.meters.ingest import (
    BatchTooLargeError,
    IngestPolicy,
    IngestResult,
    Reason,
    _existing_readings,
    ingest,
    list_evidence,
)
from ledger.meters.models import Meter, Reading
from ledger.meters.registration import register_key, revoke_key
from ledger.registry import Registry

NOW = T0 + 30 * 86400
"""The pinned server clock: a month after the first reading."""


@dataclass
class Fixture:
    registry: Registry
    organisation: str
    key: MeterKeyPair

    def ingest(self, items: list[Any], organisation: str | None = None, **kw: Any) -> IngestResult:
        return ingest(
            self.registry.log,
            items,
            organisation_id=organisation or self.organisation,
            clock=lambda: NOW,
            **kw,
        )


@pytest.fixture
def meter(registry: Registry) -> Fixture:
    """Meter pv-1 (10 kW solar) with one Ed25519 key valid from a day before T0."""
    organisation = new_organisation(registry)
    add_meter(registry, organisation, generation_spec("pv-1", capacity_w=10_000))
    key = new_key()
    register_key(
        registry.log,
        "pv-1",
        key.spki,
        organisation_id=organisation,
        valid_from=EPOCH - timedelta(days=1),
    )
    return Fixture(registry, organisation, key)


def test_a_valid_stream_is_accepted_with_consecutive_leaves(meter: Fixture) -> None:
    size = meter.registry.log.head().size
    items = stream(meter.key, "pv-1", 5)

    result = meter.ingest(items)

    assert [(r.status, r.seq, r.index) for r in result.items] == [
        ("accepted", n + 1, size + n) for n in range(5)
    ]
    previous: dict[str, object] | None = None
    for item, outcome in zip(items, result.items, strict=True):
        assert outcome.index is not None
        leaf = meter.registry.log.entry(outcome.index)
        # The leaf is exactly JCS of the full envelope plus kind, key id and the link to the
        # meter's previous reading (none for its first): a chain a verifier can follow.
        assert leaf == canonical_entry(
            {"kind": "reading/2", "keyId": meter.key.key_id, **item, "prev": previous}
        )
        previous = {"index": outcome.index, "leafHash": leaf_hash(leaf).hex()}
    with meter.registry.database.read() as session:
        state = session.get(Meter, "pv-1")
        assert state is not None
        assert (state.last_seq, state.last_time, state.last_import_wh) == (5, T0 + 4 * 900, 500)


def _revoke_at(meter: Fixture, moment: int) -> None:
    revoke_key(
        meter.registry.log,
        "pv-1",
        meter.key.key_id,
        organisation_id=meter.organisation,
        revoked_from=EPOCH + timedelta(seconds=moment - T0),
    )


def _tampered(meter: Fixture) -> dict[str, Any]:
    envelope = sign(meter.key, "pv-1", 4, T0 + 3 * 900, 400)
    envelope["payload"]["importWh"] = 401
    return envelope


# Each case: (reason, item builder after three accepted readings, organisation override).
CASES: dict[Reason, Callable[[Fixture], Any]] = {
    # Neither an envelope object nor an OCMF record string (those are parsed since decision 31).
    Reason.UNSUPPORTED_FORMAT: lambda m: ["not", "a", "reading"],
    Reason.MALFORMED: lambda m: {
        "payload": payload("pv-1", 4, T0 + 3 * 900, 400),
        "alg": "Ed25519",
    },
    Reason.UNKNOWN_METER: lambda m: sign(m.key, "ghost", 4, T0 + 3 * 900, 400),
    Reason.NO_ACTIVE_KEY: lambda m: sign(m.key, "pv-1", 4, T0 - 2 * 86400, 400),
    Reason.BAD_SIGNATURE: _tampered,
    Reason.SEQ_NOT_INCREASING: lambda m: sign(m.key, "pv-1", 0, T0 + 3 * 900, 400),
    Reason.TIME_NOT_INCREASING: lambda m: sign(m.key, "pv-1", 4, T0 + 2 * 900, 400),
    Reason.TIME_IN_FUTURE: lambda m: sign(m.key, "pv-1", 4, NOW + 301, 400),
    Reason.REGISTER_DECREASED: lambda m: sign(m.key, "pv-1", 4, T0 + 3 * 900, 299),
}


@pytest.mark.parametrize("reason", list(CASES), ids=str)
def test_each_rejection_changes_nothing(meter: Fixture, reason: Reason) -> None:
    meter.ingest(stream(meter.key, "pv-1", 3))
    before = snapshot(meter.registry)

    result = meter.ingest([CASES[reason](meter)])

    assert [(r.status, r.reason) for r in result.items] == [("rejected", reason)]
    assert result.items[0].detail
    assert snapshot(meter.registry) == before


def test_export_register_decrease_is_refused_too(meter: Fixture) -> None:
    meter.ingest([sign(meter.key, "pv-1", 1, T0, 100, 50)])
    before = snapshot(meter.registry)
    result = meter.ingest([sign(meter.key, "pv-1", 2, T0 + 900, 200, 49)])
    assert result.items[0].reason is Reason.REGISTER_DECREASED
    assert snapshot(meter.registry) == before


def test_the_allowed_future_skew_is_inclusive_and_configurable(meter: Fixture) -> None:
    at_limit = sign(meter.key, "pv-1", 1, NOW + 300, 100)
    assert meter.ingest([at_limit]).items[0].status == "accepted"
    strict = IngestPolicy(future_skew_seconds=0)
    later = sign(meter.key, "pv-1", 2, NOW + 301, 200)
    assert meter.ingest([later], policy=strict).items[0].reason is Reason.TIME_IN_FUTURE


def test_another_organisations_meter_is_refused(meter: Fixture) -> None:
    other = new_organisation(meter.registry)
    before = snapshot(meter.registry)
    result = meter.ingest(stream(meter.key, "pv-1", 2), organisation=other)
    assert {r.reason for r in result.items} == {Reason.METER_NOT_OWNED}
    assert snapshot(meter.registry) == before


def test_a_revoked_key_signs_nothing_from_its_revocation_on(meter: Fixture) -> None:
    meter.ingest(stream(meter.key, "pv-1", 2))  # times T0, T0 + 900
    _revoke_at(meter, T0 + 1800)
    before = snapshot(meter.registry)

    at_revocation = sign(meter.key, "pv-1", 3, T0 + 1800, 300)
    result = meter.ingest([at_revocation])

    assert [(r.status, r.reason) for r in result.items] == [("rejected", Reason.KEY_REVOKED)]
    assert snapshot(meter.registry) == before
    # Just before the revocation time the key is still good.
    assert meter.ingest([sign(meter.key, "pv-1", 3, T0 + 1799, 300)]).items[0].status == "accepted"


def test_key_rotation_uses_whichever_key_was_valid_at_the_payload_time(meter: Fixture) -> None:
    rotation = T0 + 3600
    successor = new_key("ES256")
    register_key(
        meter.registry.log,
        "pv-1",
        successor.spki,
        organisation_id=meter.organisation,
        valid_from=EPOCH + timedelta(seconds=rotation - T0),
    )
    _revoke_at(meter, rotation)
    items = [
        sign(meter.key, "pv-1", 1, rotation - 60, 100),
        sign(successor, "pv-1", 2, rotation, 200),
        sign(meter.key, "pv-1", 3, rotation + 60, 300),
    ]
    result = meter.ingest(items)
    assert [(r.status, r.reason) for r in result.items] == [
        ("accepted", None),
        ("accepted", None),
        ("rejected", Reason.KEY_REVOKED),
    ]
    key_ids = [parse_entry(meter.registry.log.entry(r.index))["keyId"] for r in result.items[:2]]  # type: ignore[arg-type]
    assert key_ids == [meter.key.key_id, successor.key_id]


def test_the_same_reading_again_is_a_duplicate_without_a_new_leaf(meter: Fixture) -> None:
    items = stream(meter.key, "pv-1", 3)
    first = meter.ingest(items)
    before = snapshot(meter.registry)

    again = meter.ingest(items)

    assert [(r.status, r.index) for r in again.items] == [
        ("duplicate", r.index) for r in first.items
    ]
    assert snapshot(meter.registry) == before


def test_a_re_signed_es256_payload_is_a_duplicate_not_an_equivocation(registry: Registry) -> None:
    organisation = new_organisation(registry)
    add_meter(registry, organisation, generation_spec("pv-9"))
    key = new_key("ES256")
    register_key(registry.log, "pv-9", key.spki, organisation_id=organisation, valid_from=EPOCH)
    first = sign(key, "pv-9", 1, T0, 100)
    resigned = sign(key, "pv-9", 1, T0, 100)
    assert first["sig"] != resigned["sig"]  # ECDSA signatures are randomised
    results = ingest(
        registry.log, [first, resigned], organisation_id=organisation, clock=lambda: NOW
    )
    assert [r.status for r in results.items] == ["accepted", "duplicate"]
    assert results.items[1].index == results.items[0].index


def test_equivocation_is_refused_and_kept_as_evidence(meter: Fixture) -> None:
    meter.ingest(stream(meter.key, "pv-1", 3))
    accepted_index = meter.ingest(stream(meter.key, "pv-1", 3)).items[2].index
    before = snapshot(meter.registry)
    conflicting = sign(meter.key, "pv-1", 3, T0 + 2 * 900, 301)

    result = meter.ingest([conflicting])

    assert [(r.status, r.reason) for r in result.items] == [("rejected", Reason.EQUIVOCATION)]
    after = snapshot(meter.registry)
    # No reading is added, but the log holds the evidence (issue 11, attack 10: a table the
    # operator can empty is no evidence): one reading.equivocation/1 with both signed readings.
    assert (after.size, after.readings) == (before.size + 1, before.readings)
    assert after.evidence == before.evidence + 1
    entry = parse_entry(meter.registry.log.entry(before.size))
    assert entry["kind"] == "reading.equivocation/1"
    assert (entry["meter"], entry["seq"], entry["accepted"]["index"]) == ("pv-1", 3, accepted_index)
    assert (
        entry["accepted"]["leafHash"] == leaf_hash(meter.registry.log.entry(accepted_index)).hex()
    )
    assert entry["conflicting"] == conflicting
    assert entry["accepted"]["reading"]["payload"]["seq"] == 3
    evidence, more = list_evidence(meter.registry.database, "pv-1", after_id=None, limit=10)
    assert not more
    assert len(evidence) == 1
    assert evidence[0].conflicts_with == accepted_index
    # Kept as received: JCS of the envelope, which the signature check used.
    assert evidence[0].envelope == canonical_json(conflicting)
    assert evidence[0].key_id == meter.key.key_id


def test_a_badly_signed_conflict_is_not_evidence(meter: Fixture) -> None:
    meter.ingest(stream(meter.key, "pv-1", 3))
    forged = sign(meter.key, "pv-1", 3, T0 + 2 * 900, 300)
    forged["payload"]["importWh"] = 999
    before = snapshot(meter.registry)
    assert meter.ingest([forged]).items[0].reason is Reason.BAD_SIGNATURE
    assert snapshot(meter.registry) == before


def test_a_mixed_batch_commits_only_its_valid_items_in_order(meter: Fixture) -> None:
    size = meter.registry.log.head().size
    items = [
        sign(meter.key, "pv-1", 1, T0, 100),
        sign(meter.key, "pv-1", 3, T0 + 1800, 300),
        sign(meter.key, "pv-1", 2, T0 + 900, 200),  # behind seq 3, submitted later
        sign(meter.key, "pv-1", 3, T0 + 1800, 300),  # repeats an item of this batch
        sign(meter.key, "pv-1", 3, T0 + 1800, 333),  # contradicts an item of this batch
        "not an envelope",
        sign(meter.key, "pv-1", 4, T0 + 2700, 400),
    ]
    result = meter.ingest(items)
    assert [(r.status, r.reason, r.index) for r in result.items] == [
        ("accepted", None, size),
        ("accepted", None, size + 1),
        ("rejected", Reason.SEQ_NOT_INCREASING, None),
        ("duplicate", None, size + 1),
        ("rejected", Reason.EQUIVOCATION, None),
        ("rejected", Reason.UNSUPPORTED_FORMAT, None),
        ("accepted", None, size + 3),
    ]
    # The contradiction is kept as evidence in the log itself (decision 98), in batch order.
    assert meter.registry.log.head().size == size + 4
    assert parse_entry(meter.registry.log.entry(size + 2))["kind"] == "reading.equivocation/1"
    with meter.registry.database.read() as session:
        rows = session.execute(select(Reading.seq, Reading.log_index).order_by(Reading.seq)).all()
    assert [tuple(row) for row in rows] == [(1, size), (3, size + 1), (4, size + 3)]


def test_energy_above_capacity_is_accepted_but_flagged(meter: Fixture) -> None:
    # 10 kW for 900 s is 2,500 Wh; the threshold is 1.1 x that = 2,750 Wh.
    items = [
        sign(meter.key, "pv-1", 1, T0, 0),
        sign(meter.key, "pv-1", 2, T0 + 900, 2_750),
        sign(meter.key, "pv-1", 3, T0 + 1800, 5_501),
        sign(meter.key, "pv-1", 4, T0 + 2700, 5_501, 2_751),
    ]
    result = meter.ingest(items)
    assert [(r.status, r.implausible) for r in result.items] == [
        ("accepted", False),
        ("accepted", False),
        ("accepted", True),
        ("accepted", True),
    ]
    with meter.registry.database.read() as session:
        flags = session.execute(select(Reading.implausible).order_by(Reading.seq)).scalars()
        assert list(flags) == [False, False, True, True]


def test_batch_limit(meter: Fixture) -> None:
    before = snapshot(meter.registry)
    with pytest.raises(BatchTooLargeError, match="at most 2"):
        meter.ingest(stream(meter.key, "pv-1", 3), policy=IngestPolicy(max_items=2))
    assert snapshot(meter.registry) == before


def test_duplicate_lookup_scales_to_many_meters(meter: Fixture) -> None:
    meter.ingest(stream(meter.key, "pv-1", 2))
    wanted = {f"other-{n}": {1, 2} for n in range(1500)} | {"pv-1": {1, 2, 3}}
    with meter.registry.database.read() as session:
        found = _existing_readings(session, wanted)
    # More meters than SQLite's expression depth allows in one OR chain, answered in full.
    assert sorted(found) == [("pv-1", 1), ("pv-1", 2)]
