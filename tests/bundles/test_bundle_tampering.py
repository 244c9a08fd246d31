"""Tampering: changing any byte of a bundle makes verification fail, and the report names
the check that guards the part that was changed (issue 4, "tampering").

Each byte of the wire form is labelled with the part it belongs to (a leaf, an inclusion
proof, the checkpoint, each anchor field, the keys); a change anywhere must fail, and a
change inside a labelled part must fail that part's check (or the format check, when the
change breaks the encoding itself). Every position is changed twice (a neighbouring
character of the same kind, and a flipped low bit), and hypothesis adds arbitrary bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from bundle_support import Anchored, CachingReader
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attestation.bundles.build import build_bundle
from attestation.bundles.format import ProofBundle, bundle_bytes
from attestation.bundles.report import report_lines
from attestation.bundles.verify import verify_bundle

ANY = frozenset[str]()
"""The label of bytes outside the guarded parts (member names, punctuation, the format tag):
any failing check will do."""


@dataclass(frozen=True)
class Target:
    wire: bytes
    labels: list[frozenset[str]]
    """Per byte: the checks of which at least one must fail (besides "format")."""
    anchored: Anchored
    reader: CachingReader


def _dump(value: object) -> bytes:
    # Must serialise exactly as bundle_bytes does, so sub-objects are found verbatim.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _label_value(
    wire: bytes,
    labels: list[frozenset[str]],
    within: tuple[int, int],
    member: bytes,
    value: object,
    checks: frozenset[str],
) -> None:
    """Label the bytes of `value` (inside the quotes of a string) that follow `"member":`."""
    token = b'"' + member + b'":' + _dump(value)
    start = wire.index(token, *within) + len(member) + 3
    end = start + len(_dump(value))
    if isinstance(value, str):
        start, end = start + 1, end - 1
    for position in range(start, end):
        labels[position] = checks


def _labels(bundle: ProofBundle, wire: bytes) -> list[frozenset[str]]:
    labels = [ANY] * len(wire)
    document = bundle.to_json()
    everything = (0, len(wire))
    for entry in document["entries"]:
        dumped = _dump(entry)
        begin = wire.index(dumped)
        span = (begin, begin + len(dumped))
        guard = frozenset({f"inclusion[{entry['index']}]"})
        _label_value(wire, labels, span, b"leaf", entry["leaf"], guard)
        _label_value(wire, labels, span, b"inclusion", entry["inclusion"], guard)
    _label_value(
        wire,
        labels,
        everything,
        b"checkpoint",
        document["checkpoint"],
        frozenset({"checkpoint", "log-id"}),
    )
    anchor_guards = {
        b"chainId": {"chain"},
        b"contract": {"chain"},
        b"logId": {"log-id"},
        b"size": {"checkpoint"},
        b"root": {"checkpoint"},
        b"tx": {"chain"},
        b"block": {"chain"},
    }
    for name, checks in anchor_guards.items():
        value = document["anchor"][name.decode()]
        _label_value(wire, labels, everything, name, value, frozenset(checks))
    _label_value(wire, labels, everything, b"keys", document["keys"], frozenset({"keys"}))
    return labels


@pytest.fixture(scope="module")
def target(anchored: Anchored) -> Iterator[Target]:
    bundle = build_bundle(
        anchored.registry.log, anchored.registry.signer, [anchored.meter.readings[1]]
    )
    wire = bundle_bytes(bundle)
    reader = CachingReader(anchored.reader)
    report = verify_bundle(wire, anchor_reader=reader, log_verifier_key=anchored.log_key)
    assert report.ok, report_lines(report)
    labels = _labels(bundle, wire)
    guarded = sum(1 for label in labels if label)
    assert guarded > 0.8 * len(wire), "most bytes belong to a guarded part"
    yield Target(wire, labels, anchored, reader)


def _assert_detected(target: Target, position: int, replacement: int) -> None:
    assert target.wire[position] != replacement
    tampered = bytearray(target.wire)
    tampered[position] = replacement
    report = verify_bundle(
        bytes(tampered),
        anchor_reader=target.reader,
        log_verifier_key=target.anchored.log_key,
    )
    failed = {check.name for check in report.failures}
    context = target.wire[max(0, position - 30) : position + 10]
    where = f"byte {position} {chr(target.wire[position])!r} -> {chr(replacement)!r} in {context!r}"
    assert not report.ok, f"{where} went unnoticed"
    expected = target.labels[position]
    if expected:
        assert failed & (expected | {"format"}), f"{where}: failed {failed}, expected {expected}"


_CYCLES = (b"0123456789", b"abcdefghijklmnopqrstuvwxyz", b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _neighbour(byte: int) -> int:
    """The next character of the same kind: still valid base64/hex/decimal, different value."""
    for cycle in _CYCLES:
        if byte in cycle:
            return cycle[(cycle.index(byte) + 1) % len(cycle)]
    return byte ^ 0x01


def test_every_byte_is_guarded(target: Target) -> None:
    for position, byte in enumerate(target.wire):
        _assert_detected(target, position, _neighbour(byte))
        _assert_detected(target, position, byte ^ 0x01)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_arbitrary_byte_changes_are_detected(target: Target, data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(target.wire) - 1), label="position")
    replacement = data.draw(
        st.integers(0, 255).filter(lambda byte: byte != target.wire[position]), label="byte"
    )
    _assert_detected(target, position, replacement)
