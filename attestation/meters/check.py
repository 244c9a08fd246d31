"""The meters product of the verifier: meter keys, their revocations, and signed readings.

| check     | what                                                                   |
| --------- | ---------------------------------------------------------------------- |
| keys      | the bundle's `keys` member lists exactly the keys of its `meter.key/1` |
|           | entries (a convenience index; trust comes from the proven entries)     |
| entry[i]  | `meter.key/1`: key id, algorithm and key agree;                        |
|           | `meter.key-revoked/1`: revokes a key this bundle proves;               |
|           | `reading/1`, `reading/2`, `reading.ocmf/1`, `reading.ocmf/2`: signed   |
|           | by a proven key of its meter, registered before the reading, valid at  |
|           | its time and not revoked at it; an OCMF record is verified from its    |
|           | own signed bytes and its `payload` must be the record's mapping        |
|           | `reading.equivocation/1`: the conflicting reading is signed by a       |
|           | proven key of the meter                                                |

Meter keys are trusted only as proven log entries (`meter.key/1` with a passing inclusion
check), never because the `keys` member names them. A revocation is honoured when its
`meter.key-revoked/1` entry is in the bundle; that a key was NOT revoked cannot be shown by
a bundle (it would take the whole log), so the reading's message says which revocations it
saw.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from attestation.bundles.format import ProofBundle
from attestation.bundles.report import (
    FAILED,
    PASSED,
    Check,
    EntryContext,
    Product,
    ProvenKey,
    Verdict,
)
from ledger.log.entry_fields import EntryFormatError
from ledger.meters.entries import (
    EQUIVOCATION_KIND,
    METER_KEY_KIND,
    METER_KEY_REVOKED_KIND,
    METER_REGISTERED_KIND,
    READING_KINDS,
    ReadingVerificationError,
    parse_equivocation,
    parse_key_revocation,
    parse_meter_key,
    parse_meter_registration,
    parse_reading,
    verify_reading,
)
from ledger.times import format_utc


def _check_meter_key(context: EntryContext) -> Verdict:
    try:
        key = parse_meter_key(context.entry)
    except EntryFormatError as exc:
        return Verdict(FAILED, f"{METER_KEY_KIND}: {exc}")
    # A registration is not signed by anyone: the log proves who registered it, and when.
    return Verdict(PASSED, f"{METER_KEY_KIND}: key {key.key_id} ({key.alg}) of meter {key.meter}")


def _check_meter_registered(context: EntryContext) -> Verdict:
    try:
        meter = parse_meter_registration(context.entry)
    except EntryFormatError as exc:
        return Verdict(FAILED, f"{METER_REGISTERED_KIND}: {exc}")
    capacity = "no capacity" if meter.capacity_w is None else f"capacity {meter.capacity_w:,} W"
    return Verdict(
        PASSED, f"{METER_REGISTERED_KIND}: {meter.role} meter {meter.meter} ({capacity})"
    )


def _check_key_revoked(context: EntryContext) -> Verdict:
    try:
        revocation = parse_key_revocation(context.entry)
    except EntryFormatError as exc:
        return Verdict(FAILED, f"{METER_KEY_REVOKED_KIND}: {exc}")
    kid, meter = revocation.key_id, revocation.meter
    known = context.keys.get(kid)
    if known is None or known.meter != meter:
        return Verdict(FAILED, f"{METER_KEY_REVOKED_KIND}: key {kid} of {meter} is not proven here")
    return Verdict(
        PASSED, f"{METER_KEY_REVOKED_KIND}: key {kid} revoked from {revocation.revoked_from}"
    )


def _check_reading(context: EntryContext) -> Verdict:
    """Every reading kind: a proven key of its meter, valid at its time, signed it (an OCMF
    record from its own signed bytes, and the payload is the record's mapping)."""
    kind = context.entry.get("kind")
    try:
        reading = parse_reading(context.entry)
    except EntryFormatError as exc:
        return Verdict(FAILED, f"{kind}: {exc}")
    payload = reading.payload
    kid = reading.key_id
    key = context.keys.get(kid)
    where = f"{kind} meter {payload.meter} seq {payload.seq}"
    if key is None:
        return Verdict(
            FAILED, f"{where}: key {kid} has no meter.key/1 entry with a verified proof here"
        )
    moment = reading.time
    problem = None
    if key.meter != payload.meter:
        problem = f"key {kid} belongs to meter {key.meter}"
    elif key.index >= context.index:
        problem = f"key {kid} was registered at index {key.index}, after the reading"
    elif moment < key.valid_from:
        problem = f"key {kid} is valid only from {format_utc(key.valid_from)}"
    elif key.revoked_from is not None and moment >= key.revoked_from:
        problem = (
            f"key {kid} is revoked from {format_utc(key.revoked_from)} (index {key.revoked_index})"
        )
    if problem is not None:
        return Verdict(FAILED, f"{where}: {problem}")
    try:
        verify_reading(reading, key.spki)
    except ReadingVerificationError as exc:
        return Verdict(FAILED, f"{where}: {exc}")
    revocation = "no revocation in bundle" if key.revoked_from is None else "before its revocation"
    signed = "OCMF record signature" if reading.ocmf is not None else f"{key.alg} signature"
    return Verdict(
        PASSED,
        f"{where}: {signed} by key {kid} (registered at index {key.index}; {revocation})",
    )


def _check_equivocation(context: EntryContext) -> Verdict:
    """Both envelopes of an equivocation are signed by proven keys of the meter, for one seq."""
    try:
        evidence = parse_equivocation(context.entry)
    except EntryFormatError as exc:
        return Verdict(FAILED, f"{EQUIVOCATION_KIND}: {exc}")
    key = context.keys.get(evidence.key_id)
    where = f"{EQUIVOCATION_KIND} meter {evidence.meter} seq {evidence.seq}"
    if key is None or key.meter != evidence.meter:
        return Verdict(FAILED, f"{where}: key {evidence.key_id} of the meter is not proven here")
    try:
        verify_reading(evidence.conflicting, key.spki)
    except ReadingVerificationError as exc:
        return Verdict(FAILED, f"{where}: the conflicting reading: {exc}")
    return Verdict(
        PASSED,
        f"{where}: a second signed reading of the seq accepted at index "
        f"{evidence.accepted.index}, signed by key {evidence.key_id}",
    )


METERS = Product(
    name="meters",
    entry_checkers={
        METER_REGISTERED_KIND: _check_meter_registered,
        METER_KEY_KIND: _check_meter_key,
        METER_KEY_REVOKED_KIND: _check_key_revoked,
        **{kind: _check_reading for kind in READING_KINDS},
        EQUIVOCATION_KIND: _check_equivocation,
    },
)


def proven_keys(
    decoded: Mapping[int, Mapping[str, Any]], included: Mapping[int, bool]
) -> dict[str, ProvenKey]:
    """The meter keys whose registrations the bundle proves, with proven revocations."""
    keys: dict[str, ProvenKey] = {}
    for index, entry in decoded.items():
        if entry["kind"] != METER_KEY_KIND or not included[index]:
            continue
        try:
            key = parse_meter_key(entry)
        except EntryFormatError:
            continue  # reported by the entry's own check
        keys[key.key_id] = ProvenKey(
            key.key_id, key.meter, key.alg, key.spki, key.valid_from, index
        )
    for index, entry in decoded.items():
        if entry["kind"] != METER_KEY_REVOKED_KIND or not included[index]:
            continue
        try:
            revocation = parse_key_revocation(entry)
        except EntryFormatError:
            continue
        known = keys.get(revocation.key_id)
        if known is None or known.meter != revocation.meter:
            continue  # the entry's own check reports a revocation of an unproven key
        if known.revoked_from is None or revocation.revoked_from < known.revoked_from:
            keys[known.key_id] = replace(
                known, revoked_from=revocation.revoked_from, revoked_index=index
            )
    return keys


def keys_check(bundle: ProofBundle, decoded: Mapping[int, Mapping[str, Any]]) -> Check:
    """The `keys` member must list exactly the keys the `meter.key/1` entries register."""
    # What the (not yet validated) entries claim; the entry checks validate the claims.
    registered: dict[object, tuple[object, object]] = {
        entry.get("keyId"): (entry.get("alg"), entry.get("publicKey"))
        for entry in decoded.values()
        if entry["kind"] == METER_KEY_KIND
    }
    listed: dict[object, tuple[object, object]] = {
        kid: (key.alg, key.public_key) for kid, key in bundle.keys.items()
    }
    if listed != registered:
        unproven = sorted(str(kid) for kid in listed if listed[kid] != registered.get(kid))
        unlisted = sorted(str(kid) for kid in registered if kid not in listed)
        return Check(
            "keys",
            FAILED,
            f"keys must match the bundle's meter.key/1 entries; differing or unproven "
            f"{unproven}, missing {unlisted}",
        )
    return Check("keys", PASSED, f"{len(listed)} key(s), each matching its meter.key/1 entry")
