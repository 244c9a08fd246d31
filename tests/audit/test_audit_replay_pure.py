"""`ledger.audit.replay.Replay` fed leaves directly (no database): it stays linear in the log, its
root is the RFC 9162 root, and reading-level rules (order, implausibility) are re-derived."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st
from meter_support import MeterKeyPair, new_key, sign_payload

from ledger.audit.replay import Replay
from ledger.log.canonical import canonical_entry
from ledger.log.store import recompute_root

T0 = 1_780_272_000  # 2026-06-01T00:00:00Z


def _time(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


_KEYS: dict[str, MeterKeyPair] = {}


def _meter(meter: str, capacity_w: int) -> list[bytes]:
    """The meter's registration and its key (the audit verifies every reading signature)."""
    key = _KEYS.setdefault(meter, new_key())
    return [
        canonical_entry(
            {
                "kind": "meter.registered/1",
                "meter": meter,
                "organisation": "org",
                "role": "generation",
                "capacityW": capacity_w,
            }
        ),
        canonical_entry(
            {
                "kind": "meter.key/1",
                "meter": meter,
                "keyId": key.key_id,
                "alg": key.alg,
                "publicKey": key.spki_b64,
                "organisation": "org",
                "validFrom": _time(T0 - 86_400),
            }
        ),
    ]


def _reading(meter: str, seq: int, at: int, export_wh: int) -> bytes:
    key = _KEYS[meter]
    body = {"meter": meter, "seq": seq, "time": _time(at), "importWh": 0, "exportWh": export_wh}
    return canonical_entry({"kind": "reading/1", "keyId": key.key_id, **sign_payload(key, body)})


def test_nine_thousand_signed_readings_replay_in_well_under_the_budget() -> None:
    leaves = [leaf for n in range(3) for leaf in _meter(f"m{n}", 10_000)]
    leaves += [
        _reading(f"m{n % 3}", n // 3 + 1, T0 + (n // 3) * 900, (n // 3) * 2_000)
        for n in range(9_000)
    ]
    replay = Replay()
    started = time.perf_counter()
    replay.feed_all(leaves)
    report = replay.finish()
    elapsed = time.perf_counter() - started
    assert report.ok, report.violations[:3]
    assert report.kinds["reading/1"] == 9_000
    assert report.root == recompute_root(leaves)
    # ~0.15 ms a reading on an idle machine, most of it the Ed25519 verification each
    # reading now gets; a quadratic slip would take minutes.
    assert elapsed < 20, elapsed


@settings(max_examples=30, deadline=None)
@given(steps=st.lists(st.integers(min_value=60, max_value=3_600), min_size=1, max_size=40))
def test_implausibility_is_re_derived_from_the_registered_capacity(steps: list[int]) -> None:
    """2.75 kWh per 15 minutes is exactly capacity x 1.1 for 10 kW: allowed; 1 Wh more is not."""
    leaves = _meter("m", 10_000)
    at, export = T0, 0
    leaves.append(_reading("m", 1, at, export))
    for seq, seconds in enumerate(steps, start=2):
        at += seconds
        export += 10_000 * seconds * 11 // 36_000  # the most a 10 kW meter may plausibly add
        leaves.append(_reading("m", seq, at, export))
    replay = Replay()
    replay.feed_all(leaves)
    meter = replay._meters["m"]
    assert not any(meter.flags), "capacity x time x 1.1 (rounded down) is plausible"
    replay.feed(len(leaves), _reading("m", len(steps) + 2, at + 900, export + 2_751))
    assert meter.flags[-1] == 1
    assert replay.finish().ok


def test_a_reading_that_goes_back_in_time_is_a_violation() -> None:
    leaves = [*_meter("m", 10_000), _reading("m", 1, T0 + 900, 0), _reading("m", 2, T0, 10)]
    replay = Replay()
    replay.feed_all(leaves)
    report = replay.finish()
    assert [(v.index, v.rule) for v in report.violations] == [(3, "reading-order")]
