"""Properties of ingestion (hypothesis) and duplicates under concurrent resubmission.

The registry fixture is per test, so each example registers its own meter and key: the
examples share one database but never each other's state.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from meter_support import EPOCH, T0, add_meter, consumption_spec, new_key, new_organisation, sign

from ledger.meters.ingest import IngestResult, Reason, ingest
from ledger.meters.registration import register_key
from ledger.registry import Registry

NOW = T0 + 400 * 86400
_meter_numbers = itertools.count()

steps = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=86400),  # seconds since the previous reading
        st.integers(min_value=0, max_value=10**6),  # import Wh added
        st.integers(min_value=0, max_value=10**6),  # export Wh added
    ),
    min_size=1,
    max_size=25,
)


def _fresh_meter(registry: Registry, alg: str) -> tuple[str, str, Any]:
    organisation = new_organisation(registry)
    meter_id = f"m-{next(_meter_numbers)}"
    add_meter(registry, organisation, consumption_spec(meter_id))
    key = new_key(alg)
    register_key(registry.log, meter_id, key.spki, organisation_id=organisation, valid_from=EPOCH)
    return organisation, meter_id, key


def _stream(key: Any, meter_id: str, deltas: list[tuple[int, int, int]]) -> list[dict[str, Any]]:
    time, seq, imported, exported = T0, 0, 0, 0
    items = []
    for dt, di, de in deltas:
        time, seq, imported, exported = time + dt, seq + 1 + dt % 3, imported + di, exported + de
        items.append(sign(key, meter_id, seq, time, imported, exported))
    return items


def _submit(registry: Registry, organisation: str, items: list[Any]) -> IngestResult:
    return ingest(registry.log, items, organisation_id=organisation, clock=lambda: NOW)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(deltas=steps, alg=st.sampled_from(["Ed25519", "ES256"]))
def test_valid_streams_are_accepted_in_full(
    registry: Registry, deltas: list[tuple[int, int, int]], alg: str
) -> None:
    organisation, meter_id, key = _fresh_meter(registry, alg)
    items = _stream(key, meter_id, deltas)
    size = registry.log.head().size

    result = _submit(registry, organisation, items)

    assert [r.status for r in result.items] == ["accepted"] * len(items)
    assert [r.index for r in result.items] == list(range(size, size + len(items)))
    assert registry.log.head().size == size + len(items)


FIELDS = ["meter", "seq", "time", "importWh", "exportWh"]


def _changed(value: Any, field: str, bump: int) -> Any:
    if field == "meter":
        return value + "x"
    if field == "time":
        return value[:-3] + f"{(int(value[-3:-1]) + bump) % 60:02d}Z"
    return value + bump


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    deltas=steps,
    data=st.data(),
    alg=st.sampled_from(["Ed25519", "ES256"]),
)
def test_changing_any_signed_field_gets_the_reading_rejected(
    registry: Registry, deltas: list[tuple[int, int, int]], data: st.DataObject, alg: str
) -> None:
    organisation, meter_id, key = _fresh_meter(registry, alg)
    items = _stream(key, meter_id, deltas)
    target = data.draw(st.integers(min_value=0, max_value=len(items) - 1), label="reading")
    field = data.draw(st.sampled_from(FIELDS), label="field")
    bump = data.draw(st.integers(min_value=1, max_value=59), label="bump")
    payload = items[target]["payload"]
    payload[field] = _changed(payload[field], field, bump)

    result = _submit(registry, organisation, items)

    statuses = [(r.status, r.reason) for r in result.items]
    assert statuses[target][0] == "rejected"
    # A changed meter id names no registered meter; anything else breaks the signature.
    expected = Reason.UNKNOWN_METER if field == "meter" else Reason.BAD_SIGNATURE
    assert statuses[target][1] is expected
    others = statuses[:target] + statuses[target + 1 :]
    assert others == [("accepted", None)] * (len(items) - 1)


def test_concurrent_resubmission_accepts_each_reading_once(registry: Registry) -> None:
    organisation, meter_id, key = _fresh_meter(registry, "Ed25519")
    batch = [sign(key, meter_id, n, T0 + 60 * n, 10 * n) for n in range(1, 201)]
    size = registry.log.head().size
    threads, barrier = 8, threading.Barrier(8)
    outcomes: list[IngestResult] = []
    lock = threading.Lock()

    def post() -> None:
        barrier.wait()
        result = _submit(registry, organisation, batch)
        with lock:
            outcomes.append(result)

    workers = [threading.Thread(target=post) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert len(outcomes) == threads
    accepted = Counter(r.seq for o in outcomes for r in o.items if r.status == "accepted")
    duplicates = Counter(r.seq for o in outcomes for r in o.items if r.status == "duplicate")
    assert accepted == Counter(range(1, 201))
    assert duplicates == Counter({seq: threads - 1 for seq in range(1, 201)})
    assert registry.log.head().size == size + len(batch)
    # Every duplicate answer names the leaf of the one accepted copy.
    index_of = {r.seq: r.index for o in outcomes for r in o.items if r.status == "accepted"}
    assert all(r.index == index_of[r.seq] for o in outcomes for r in o.items)


@pytest.mark.parametrize("threads", [4])
def test_concurrent_disjoint_batches_interleave_without_loss(
    registry: Registry, threads: int
) -> None:
    meters = [_fresh_meter(registry, "Ed25519") for _ in range(threads)]
    size = registry.log.head().size
    errors: list[BaseException] = []

    def post(organisation: str, meter_id: str, key: Any) -> None:
        try:
            for chunk in range(5):
                batch = [
                    sign(key, meter_id, n, T0 + 60 * n, n)
                    for n in range(chunk * 20 + 1, chunk * 20 + 21)
                ]
                result = _submit(registry, organisation, batch)
                assert all(r.status == "accepted" for r in result.items)
        except BaseException as exc:  # reported below, in the main thread
            errors.append(exc)

    workers = [threading.Thread(target=post, args=meter) for meter in meters]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    assert registry.log.head().size == size + threads * 100
