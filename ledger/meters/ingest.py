"""Ingestion: a batch of signed readings → per item accepted / duplicate / rejected.

One function, `ingest`, serves the HTTP API and the CLI import alike. Outcomes:

- `accepted`: a `reading` row and its `reading/2` leaf (which names the meter's previous
  reading) were committed; `index` is the leaf.
  `implausible` is set when the interval energy exceeds capacity x interval x 1.1; such a
  reading is kept (metered data is never dropped) but never counts for issuance.
- `duplicate`: this meter already has this `seq` with the same signed payload; nothing was
  written and `index` names the existing leaf.
- `rejected`: nothing was written for the item; `reason` is one of `Reason`.

Checks, in the order they are applied (the first failing one is the reason):

| reason               | when                                                          |
| -------------------- | ------------------------------------------------------------- |
| unsupported-format   | neither a JSON object nor an `OCMF|` string; or an OCMF       |
|                      | record signed otherwise than ECDSA-secp256r1-SHA256           |
| malformed            | the envelope or payload breaks DESIGN §4.3; or the OCMF       |
|                      | record cannot be parsed or mapped (see "OCMF records")        |
| unknown-meter        | no meter with the payload's `meter` id is registered          |
| meter-not-owned      | the meter belongs to another organisation than the caller's   |
| no-active-key        | no key of the meter is valid (registered and not revoked) at  |
|                      | the payload time, and no revoked one verifies either          |
| bad-signature        | no key of the meter valid at the payload time verifies it     |
| equivocation         | the meter already has this `seq` with a different payload;    |
|                      | the envelope is kept as evidence                              |
| key-revoked          | only a key revoked at or before the payload time verifies it  |
| seq-not-increasing   | `seq` is not above the meter's last accepted `seq`            |
| time-not-increasing  | `time` is not after the meter's last accepted `time`          |
| time-in-future       | `time` is more than the allowed skew ahead of the server clock |
| register-decreased   | `importWh` or `exportWh` is below the last accepted value     |

OCMF records (strings starting with `OCMF|`, decision 31) are verified with the meter's
registered ES256 (P-256) key and mapped to the same reading model, so every rule above
applies to them unchanged: `meter` is `MS` (else `GS`), `seq` is the `PG` pagination
counter, `time` is the `TM` of the record's last energy reading (cut to whole seconds),
`importWh`/`exportWh` are the last import/export register values in whole Wh (0 when the
record has no export register). The leaf is `reading.ocmf/2` and holds the record verbatim;
a duplicate is the same record bytes again.

How a batch commits: signatures are verified first, outside the log's writer lock,
against the keys read in a snapshot. Then ONE log transaction takes the lock, re-reads
each meter's keys and newest accepted reading, re-checks the key choice of any meter
whose keys changed in between, applies the sequence rules item by item in the order
submitted (an item sees the items accepted before it in the same batch), and commits all
accepted rows, their leaves and any equivocation evidence together. A batch is therefore
serialised as one unit against every other writer, and a resubmission racing the first
submission sees the first one's rows: exactly one of them is accepted.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.orm import Session

from ledger.log.canonical import canonical_entry, parse_entry
from ledger.log.merkle import leaf_hash
from ledger.log.models import LogEntry
from ledger.log.store import Log, LogTransaction, stored_leaf_hashes
from ledger.meters.entries import (
    EQUIVOCATION_KIND,
    OCMF_READING_V2_KIND,
    READING_V2_KIND,
    PreviousReading,
)
from ledger.meters.models import Meter, MeterKey, Reading, ReadingEvidence
from ledger.meters.ocmf import OcmfError, OcmfRecord, ocmf_mapping, parse_ocmf, verify_ocmf
from ledger.meters.plausibility import exceeds_capacity
from ledger.meters.readings import (
    MeterPublicKey,
    ReadingFormatError,
    ReadingPayload,
    ReadingSignatureError,
    SignedReading,
    b64url,
    format_time,
    load_meter_public_key,
    parse_envelope,
    verify_with_public_key,
)
from ledger.meters.registration import MeterKeyRecord
from ledger.storage.base import utc_now
from ledger.storage.db import Database
from ledger.times import format_utc

DEFAULT_MAX_ITEMS = 5_000
"""Items per batch: bounds the memory and the writer-lock time of one request."""
DEFAULT_FUTURE_SKEW_SECONDS = 300

_METERS_PER_LOOKUP = 200

Status = Literal["accepted", "duplicate", "rejected"]


class Reason(StrEnum):
    UNSUPPORTED_FORMAT = "unsupported-format"
    MALFORMED = "malformed"
    UNKNOWN_METER = "unknown-meter"
    METER_NOT_OWNED = "meter-not-owned"
    NO_ACTIVE_KEY = "no-active-key"
    BAD_SIGNATURE = "bad-signature"
    EQUIVOCATION = "equivocation"
    KEY_REVOKED = "key-revoked"
    SEQ_NOT_INCREASING = "seq-not-increasing"
    TIME_NOT_INCREASING = "time-not-increasing"
    TIME_IN_FUTURE = "time-in-future"
    REGISTER_DECREASED = "register-decreased"


class BatchTooLargeError(ValueError):
    def __init__(self, count: int, limit: int) -> None:
        super().__init__(f"a batch holds at most {limit} readings; this one has {count}")
        self.limit = limit


@dataclass(frozen=True, slots=True)
class IngestPolicy:
    max_items: int = DEFAULT_MAX_ITEMS
    future_skew_seconds: int = DEFAULT_FUTURE_SKEW_SECONDS


@dataclass(frozen=True, slots=True)
class ItemResult:
    status: Status
    meter: str | None = None
    seq: int | None = None
    index: int | None = None
    """The log index of the accepted reading (for `duplicate`: of the earlier one)."""
    reason: Reason | None = None
    detail: str | None = None
    implausible: bool = False


@dataclass(frozen=True, slots=True)
class IngestResult:
    items: tuple[ItemResult, ...]

    def count(self, status: Status) -> int:
        return sum(1 for item in self.items if item.status == status)


# ------------------------------------------------------------------------ internals


@dataclass(slots=True)
class _Item:
    """One parsed, not yet decided item."""

    position: int
    reading: SignedReading
    message: bytes
    """JCS(payload): what the signature covers, reused for the digest and the leaf."""
    time: int
    key_id: str | None = None
    reason: Reason | None = None
    detail: str | None = None
    ocmf: OcmfRecord | None = None
    """Set for an OCMF item: `reading` is then its mapping and `message` the record's bytes."""


@dataclass(slots=True)
class _MeterState:
    organisation_id: str
    capacity_w: int | None
    last_seq: int | None
    last_time: int | None
    last_import_wh: int | None
    last_export_wh: int | None
    changed: bool = False
    last_link: PreviousReading | None = None
    """The newest accepted reading (index, leaf hash): the next reading's `prev`."""


@dataclass(slots=True)
class _KeyRing:
    """A meter's keys with their parsed public keys, parsed once per batch."""

    records: tuple[MeterKeyRecord, ...]
    parsed: dict[str, MeterPublicKey] = field(default_factory=dict)
    by_id: dict[str, MeterKeyRecord] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_id = {key.key_id: key for key in self.records}

    def fingerprint(self) -> tuple[tuple[str, int | None], ...]:
        return tuple((key.key_id, key.revoked_from) for key in self.records)

    def public_key(self, record: MeterKeyRecord) -> MeterPublicKey:
        key = self.parsed.get(record.key_id)
        if key is None:
            _, key = load_meter_public_key(record.public_key)
            self.parsed[record.key_id] = key
        return key


def _resolve_key(ring: _KeyRing, item: _Item) -> None:
    """Find the key that signed `item` (the envelope names none; DESIGN §4.3 is fixed).

    Keys active at the payload time are tried first, then keys revoked by then (so that
    a reading signed with a revoked key is reported as such, and its duplicate is still
    recognised). A meter has one or two keys at a time, so trying them costs little.
    """
    item.key_id, item.reason, item.detail = None, None, None
    moment = item.time
    reading = item.reading
    started = [key for key in ring.records if key.valid_from <= moment]
    active = [key for key in started if key.active_at(moment)]
    revoked = [key for key in started if not key.active_at(moment)]
    for record in active + revoked:
        if record.alg != reading.alg:
            continue
        try:
            if item.ocmf is not None:
                verify_ocmf(item.ocmf, record.public_key)
            else:
                verify_with_public_key(reading, reading.alg, ring.public_key(record), item.message)
        except (ReadingSignatureError, OcmfError):
            continue
        item.key_id = record.key_id
        return
    if active:
        item.reason = Reason.BAD_SIGNATURE
        item.detail = "the signature does not verify under any key of the meter valid at its time"
    else:
        item.reason = Reason.NO_ACTIVE_KEY
        item.detail = f"the meter has no key valid at {format_utc(moment)}"


def payload_bytes(payload: ReadingPayload) -> bytes:
    """JCS(payload), written out directly: the hot path of ingestion.

    JCS orders members by UTF-16 code units (exportWh, importWh, meter, seq, time); integers
    below 2^53 print as plain decimals; a meter id matching METER_ID_PATTERN and a time
    from `format_time` hold no character JCS would escape. A test checks the result against
    `ReadingPayload.canonical_bytes` (the general canonicaliser).
    """
    return (
        f'{{"exportWh":{payload.export_wh},"importWh":{payload.import_wh},'
        f'"meter":"{payload.meter}","seq":{payload.seq},"time":"{format_time(payload.time)}"}}'
    ).encode()


_OCMF_UNSUPPORTED = frozenset(
    {"unsupported-algorithm", "unsupported-curve", "unsupported-encoding"}
)
OCMF_CURVE, OCMF_HASH = "secp256r1", "SHA256"
"""What a registered ES256 meter key verifies; other OCMF curves need keys the registry
cannot register yet (decision 31)."""


def _parse_ocmf(position: int, text: str) -> _Item | ItemResult:
    """An OCMF record → an item whose `reading` is its mapping to DESIGN §4.3 terms."""
    meter: str | None = None
    try:
        record = parse_ocmf(text)
        meter = record.meter_id
        signature = record.signature
        if (signature.curve, signature.hash_name) != (OCMF_CURVE, OCMF_HASH):
            return ItemResult(
                "rejected",
                meter=meter,
                reason=Reason.UNSUPPORTED_FORMAT,
                detail=f"OCMF records are accepted for ECDSA-{OCMF_CURVE}-{OCMF_HASH} "
                f"(ES256 meter keys) only; this one is signed with {signature.algorithm}",
            )
        mapping = ocmf_mapping(record)
    except OcmfError as exc:
        reason = Reason.UNSUPPORTED_FORMAT if exc.reason in _OCMF_UNSUPPORTED else Reason.MALFORMED
        return ItemResult("rejected", meter=meter, reason=reason, detail=f"OCMF {exc}")
    moment = mapping.time
    payload = ReadingPayload(
        meter=mapping.meter,
        seq=mapping.seq,
        time=datetime.fromtimestamp(moment, UTC),
        import_wh=mapping.import_wh,
        export_wh=mapping.export_wh,
    )
    return _Item(
        position=position,
        reading=SignedReading(payload, "ES256", b""),
        message=record.raw,
        time=moment,
        ocmf=record,
    )


def _parse(position: int, value: Any) -> _Item | ItemResult:
    if isinstance(value, str) and value.startswith("OCMF|"):
        return _parse_ocmf(position, value)
    if not isinstance(value, Mapping):
        return ItemResult(
            "rejected",
            reason=Reason.UNSUPPORTED_FORMAT,
            detail="an item must be a signed reading envelope (a JSON object) "
            'or an OCMF record (a string starting with "OCMF|")',
        )
    try:
        reading = parse_envelope(value)
    except ReadingFormatError as exc:
        meter = (
            value.get("payload", {}).get("meter")
            if isinstance(value.get("payload"), Mapping)
            else None
        )
        return ItemResult(
            "rejected",
            meter=meter if isinstance(meter, str) else None,
            reason=Reason.MALFORMED,
            detail=str(exc),
        )
    return _Item(
        position=position,
        reading=reading,
        message=payload_bytes(reading.payload),
        time=int(reading.payload.time.timestamp()),
    )


def _load_meters(session: Session, meter_ids: Iterable[str]) -> dict[str, _MeterState]:
    rows = session.execute(
        select(
            Meter.id,
            Meter.organisation_id,
            Meter.capacity_w,
            Meter.last_seq,
            Meter.last_time,
            Meter.last_import_wh,
            Meter.last_export_wh,
        ).where(Meter.id.in_(list(meter_ids)))
    )
    return {row.id: _MeterState(*row[1:]) for row in rows}


def _load_keys(session: Session, meter_ids: Iterable[str]) -> dict[str, tuple[MeterKeyRecord, ...]]:
    grouped: defaultdict[str, list[MeterKeyRecord]] = defaultdict(list)
    rows = session.execute(
        select(MeterKey).where(MeterKey.meter_id.in_(list(meter_ids))).order_by(MeterKey.log_index)
    ).scalars()
    for row in rows:
        grouped[row.meter_id].append(MeterKeyRecord.from_row(row))
    return {meter: tuple(keys) for meter, keys in grouped.items()}


def _existing_readings(
    session: Session, wanted: Mapping[str, set[int]]
) -> dict[tuple[str, int], tuple[bytes, int]]:
    """(meter, seq) → (payload digest, log index) for already accepted readings."""
    found: dict[tuple[str, int], tuple[bytes, int]] = {}
    groups = sorted(wanted.items())
    # Chunked: SQLite parses a chain of ORs as a tree at most 1,000 deep.
    for first in range(0, len(groups), _METERS_PER_LOOKUP):
        condition = or_(
            *(
                and_(Reading.meter_id == meter, Reading.seq.in_(sorted(seqs)))
                for meter, seqs in groups[first : first + _METERS_PER_LOOKUP]
            )
        )
        rows = session.execute(
            select(Reading.meter_id, Reading.seq, Reading.payload_sha256, Reading.log_index).where(
                condition
            )
        )
        for row in rows:
            found[row.meter_id, row.seq] = (row.payload_sha256, row.log_index)
    return found


def _load_last_links(session: Session, meters: Mapping[str, _MeterState]) -> None:
    """Each meter's newest accepted reading as (index, stored leaf hash), for `prev`."""
    newest = sorted(
        (meter, state.last_seq) for meter, state in meters.items() if state.last_seq is not None
    )
    indices: dict[str, int] = {}
    for first in range(0, len(newest), _METERS_PER_LOOKUP):
        condition = or_(
            *(
                and_(Reading.meter_id == meter, Reading.seq == seq)
                for meter, seq in newest[first : first + _METERS_PER_LOOKUP]
            )
        )
        for row in session.execute(select(Reading.meter_id, Reading.log_index).where(condition)):
            indices[row.meter_id] = row.log_index
    hashes = stored_leaf_hashes(session, indices.values())
    for meter, index in indices.items():
        meters[meter].last_link = PreviousReading(index, hashes[index])


def reading_leaf(
    reading: SignedReading, message: bytes, kid: str, prev: PreviousReading | None
) -> bytes:
    """JCS of `{"kind": "reading/2", "keyId", "payload", "alg", "sig", "prev"}`, assembled
    directly.

    The payload's canonical bytes are already at hand (they were verified), and every other
    member is plain ASCII (fixed names, hex, base64url, integers) that JCS leaves unescaped,
    so the members can be joined in JCS key order instead of canonicalising again. The
    payload is spliced in as the very bytes the signature covers (decision 94). A test
    checks the result against `canonical_entry`.
    """
    link = (
        b"null"
        if prev is None
        else b'{"index":%d,"leafHash":"%s"}' % (prev.index, prev.leaf_hash.hex().encode())
    )
    return b"".join(
        (
            b'{"alg":"',
            reading.alg.encode(),
            b'","keyId":"',
            kid.encode(),
            b'","kind":"' + READING_V2_KIND.encode() + b'","payload":',
            message,
            b',"prev":',
            link,
            b',"sig":"',
            b64url(reading.signature).encode(),
            b'"}',
        )
    )


def ocmf_leaf(item: _Item, kid: str, prev: PreviousReading | None) -> bytes:
    """`reading.ocmf/2`: the record verbatim (any OCMF tool re-verifies it) beside its
    mapping, so readers and energy queries need no OCMF parser. Not the hot path: the
    general canonicaliser builds it."""
    assert item.ocmf is not None
    return canonical_entry(
        {
            "kind": OCMF_READING_V2_KIND,
            "keyId": kid,
            "payload": item.reading.payload.to_json(),
            "ocmf": item.ocmf.text,
            "prev": None if prev is None else prev.to_json(),
        }
    )


def envelope_bytes(reading: SignedReading, message: bytes) -> bytes:
    """JCS of the envelope itself (as stored for evidence); same technique as `reading_leaf`."""
    return b"".join(
        (
            b'{"alg":"',
            reading.alg.encode(),
            b'","payload":',
            message,
            b',"sig":"',
            b64url(reading.signature).encode(),
            b'"}',
        )
    )


def _implausible(state: _MeterState, item: _Item) -> bool:
    """Energy over the interval above capacity x interval x 1.1 (either direction)."""
    if state.capacity_w is None or state.last_time is None:
        return False
    assert state.last_import_wh is not None and state.last_export_wh is not None
    payload = item.reading.payload
    return exceeds_capacity(
        state.capacity_w,
        item.time - state.last_time,
        payload.import_wh - state.last_import_wh,
        payload.export_wh - state.last_export_wh,
    )


# ------------------------------------------------------------------------ the entry point


def ingest(
    log: Log,
    items: Sequence[Any],
    *,
    organisation_id: str | None,
    policy: IngestPolicy | None = None,
    clock: Callable[[], int] | None = None,
) -> IngestResult:
    """Validate and commit a batch; see the module docstring for the rules and outcomes.

    `organisation_id` limits the batch to that organisation's meters (None: any meter, for
    operator tools). `clock` returns the current time in epoch seconds (tests pin it).
    """
    policy = policy or IngestPolicy()
    if len(items) > policy.max_items:
        raise BatchTooLargeError(len(items), policy.max_items)
    results: list[ItemResult | None] = [None] * len(items)
    parsed: list[_Item] = []
    for position, value in enumerate(items):
        outcome = _parse(position, value)
        if isinstance(outcome, ItemResult):
            results[position] = outcome
        else:
            parsed.append(outcome)
    meter_ids = {item.reading.payload.meter for item in parsed}

    # Phase 1, no lock: meters, keys and signatures, against a snapshot.
    with log.database.read() as session:
        meters = _load_meters(session, meter_ids)
        rings = {meter: _KeyRing(keys) for meter, keys in _load_keys(session, meter_ids).items()}
    for item in parsed:
        state = meters.get(item.reading.payload.meter)
        if state is not None and organisation_id in (None, state.organisation_id):
            _resolve_key(rings.setdefault(item.reading.payload.meter, _KeyRing(())), item)

    # Phase 2, under the writer lock: the sequence rules against committed state.
    now = clock() if clock is not None else int(utc_now().timestamp())
    with log.write() as tx:
        batch = _Batch(tx.session, tx.next_index, organisation_id, policy, now)
        batch.load(meter_ids, rings, parsed)
        for item in parsed:
            results[item.position] = batch.decide(item)
        batch.commit(tx)

    final = tuple(result for result in results if result is not None)
    assert len(final) == len(items), "every item gets exactly one outcome"
    return IngestResult(final)


class _Batch:
    """The locked half of `ingest`: committed state, the per-item rules, the bulk writes."""

    def __init__(
        self,
        session: Session,
        first_index: int,
        organisation_id: str | None,
        policy: IngestPolicy,
        now: int,
    ) -> None:
        self.session = session
        self.first_index = first_index
        self.organisation_id = organisation_id
        self.policy = policy
        self.now = now
        self.received_at = utc_now()
        self.meters: dict[str, _MeterState] = {}
        self.rings: dict[str, _KeyRing] = {}
        self.existing: dict[tuple[str, int], tuple[bytes, int]] = {}
        self.rows: list[dict[str, Any]] = []
        self.evidence: list[dict[str, Any]] = []
        self.leaves: list[bytes] = []

    def load(self, meter_ids: set[str], rings: dict[str, _KeyRing], parsed: list[_Item]) -> None:
        """Re-read meters and keys under the lock; re-choose keys where they changed."""
        self.meters = _load_meters(self.session, meter_ids)
        locked_keys = _load_keys(self.session, meter_ids)
        for meter_id in self.meters:
            keys = locked_keys.get(meter_id, ())
            ring = rings.get(meter_id)
            if ring is not None and ring.fingerprint() == _KeyRing(keys).fingerprint():
                self.rings[meter_id] = ring
                continue
            # Keys registered or revoked since phase 1, or the meter itself is new.
            fresh = _KeyRing(keys, dict(ring.parsed) if ring is not None else {})
            self.rings[meter_id] = fresh
            for item in parsed:
                if item.reading.payload.meter == meter_id:
                    _resolve_key(fresh, item)
        # One lookup for every (meter, seq) that could be a duplicate or an equivocation.
        wanted: defaultdict[str, set[int]] = defaultdict(set)
        for item in parsed:
            payload = item.reading.payload
            state = self.meters.get(payload.meter)
            if state is not None and state.last_seq is not None and payload.seq <= state.last_seq:
                wanted[payload.meter].add(payload.seq)
        self.existing = _existing_readings(self.session, wanted)
        _load_last_links(self.session, self.meters)

    def decide(self, item: _Item) -> ItemResult:
        payload = item.reading.payload
        meter_id = payload.meter
        state = self.meters.get(meter_id)

        def reject(reason: Reason, detail: str | None) -> ItemResult:
            return ItemResult(
                "rejected", meter=meter_id, seq=payload.seq, reason=reason, detail=detail
            )

        if state is None:
            return reject(Reason.UNKNOWN_METER, f"no meter {meter_id!r} is registered")
        problem = self._key_problem(state, item)
        if problem is not None:
            return reject(*problem)
        digest = hashlib.sha256(item.message).digest()
        earlier = self.existing.get((meter_id, payload.seq))
        if earlier is not None:
            if earlier[0] == digest:
                # The same signed payload (perhaps re-signed: ECDSA signatures are
                # randomised): the same fact, nothing to add.
                return ItemResult("duplicate", meter=meter_id, seq=payload.seq, index=earlier[1])
            self.evidence.append(
                {
                    "meter_id": meter_id,
                    "seq": payload.seq,
                    # An OCMF record is kept as received: its bytes are what was signed.
                    "envelope": item.message
                    if item.ocmf is not None
                    else envelope_bytes(item.reading, item.message),
                    "key_id": item.key_id,
                    "conflicts_with": earlier[1],
                    "received_at": self.received_at,
                }
            )
            self.leaves.append(self._equivocation_leaf(item, earlier[1]))
            evidence_index = self.first_index + len(self.leaves) - 1
            return reject(
                Reason.EQUIVOCATION,
                f"seq {payload.seq} was already accepted with a different payload "
                f"(log index {earlier[1]}); both signed readings are kept as evidence "
                f"(a {EQUIVOCATION_KIND} entry at log index {evidence_index})",
            )
        problem = self._sequence_problem(state, item)
        if problem is not None:
            return reject(*problem)
        return self._accept(state, item, digest)

    def _equivocation_leaf(self, item: _Item, accepted_index: int) -> bytes:
        """`reading.equivocation/1` (decision 98): both signed readings of the seq, in the log,
        so the evidence outlives any table the operator could empty."""
        assert item.key_id is not None
        offset = accepted_index - self.first_index
        accepted_leaf = (
            self.leaves[offset]
            if offset >= 0
            else self.session.execute(
                select(LogEntry.data).where(LogEntry.idx == accepted_index)
            ).scalar_one()
        )
        accepted = parse_entry(accepted_leaf)
        accepted_reading = (
            {"ocmf": accepted["ocmf"]}
            if "ocmf" in accepted
            else {"payload": accepted["payload"], "alg": accepted["alg"], "sig": accepted["sig"]}
        )
        payload = item.reading.payload
        return canonical_entry(
            {
                "kind": EQUIVOCATION_KIND,
                "meter": payload.meter,
                "seq": payload.seq,
                "accepted": {
                    "index": accepted_index,
                    "leafHash": leaf_hash(accepted_leaf).hex(),
                    "keyId": accepted["keyId"],
                    "reading": accepted_reading,
                },
                "keyId": item.key_id,
                "conflicting": {"ocmf": item.ocmf.text}
                if item.ocmf is not None
                else item.reading.to_json(),
            }
        )

    def _key_problem(self, state: _MeterState, item: _Item) -> tuple[Reason, str] | None:
        """Ownership and the signing key (the revocation check comes after duplicates)."""
        if self.organisation_id not in (None, state.organisation_id):
            meter_id = item.reading.payload.meter
            return Reason.METER_NOT_OWNED, f"meter {meter_id!r} belongs to another organisation"
        if item.key_id is None:
            assert item.reason is not None and item.detail is not None
            return item.reason, item.detail
        return None

    def _sequence_problem(self, state: _MeterState, item: _Item) -> tuple[Reason, str] | None:
        payload = item.reading.payload
        assert item.key_id is not None
        record = self.rings[payload.meter].by_id[item.key_id]
        if not record.active_at(item.time):
            assert record.revoked_from is not None
            return (
                Reason.KEY_REVOKED,
                f"key {record.key_id} is revoked from {format_utc(record.revoked_from)}",
            )
        if state.last_seq is not None and payload.seq <= state.last_seq:
            return (
                Reason.SEQ_NOT_INCREASING,
                f"seq must be above {state.last_seq}, the meter's last accepted seq",
            )
        if state.last_time is not None and item.time <= state.last_time:
            return (
                Reason.TIME_NOT_INCREASING,
                f"time must be after {format_utc(state.last_time)}, the last accepted time",
            )
        if item.time > self.now + self.policy.future_skew_seconds:
            return (
                Reason.TIME_IN_FUTURE,
                f"time is more than {self.policy.future_skew_seconds} s ahead of the server clock",
            )
        if (
            state.last_import_wh is not None
            and state.last_export_wh is not None
            and (
                payload.import_wh < state.last_import_wh or payload.export_wh < state.last_export_wh
            )
        ):
            return (
                Reason.REGISTER_DECREASED,
                f"registers must not fall below importWh {state.last_import_wh}, "
                f"exportWh {state.last_export_wh}",
            )
        return None

    def _accept(self, state: _MeterState, item: _Item, digest: bytes) -> ItemResult:
        payload = item.reading.payload
        assert item.key_id is not None
        implausible = _implausible(state, item)
        index = self.first_index + len(self.leaves)
        leaf = (
            ocmf_leaf(item, item.key_id, state.last_link)
            if item.ocmf is not None
            else reading_leaf(item.reading, item.message, item.key_id, state.last_link)
        )
        self.leaves.append(leaf)
        state.last_link = PreviousReading(index, leaf_hash(leaf))
        self.rows.append(
            {
                "meter_id": payload.meter,
                "seq": payload.seq,
                "time": item.time,
                "import_wh": payload.import_wh,
                "export_wh": payload.export_wh,
                "key_id": item.key_id,
                "payload_sha256": digest,
                "implausible": implausible,
                "log_index": index,
            }
        )
        # A later item of this batch with the same seq is a duplicate or an equivocation.
        self.existing[(payload.meter, payload.seq)] = (digest, index)
        assert state.last_seq is None or payload.seq > state.last_seq, "seq monotonic per meter"
        state.last_seq, state.last_time = payload.seq, item.time
        state.last_import_wh, state.last_export_wh = payload.import_wh, payload.export_wh
        state.changed = True
        return ItemResult(
            "accepted", meter=payload.meter, seq=payload.seq, index=index, implausible=implausible
        )

    def commit(self, tx: LogTransaction) -> None:
        """Queue the leaves and write rows, meter states and evidence in bulk."""
        if self.leaves:
            indices = tx.extend_canonical(self.leaves)
            # Every accepted row points at its own new leaf; no leaf is counted twice.
            # (Equivocation entries sit between them: leaves without a reading row.)
            assert {row["log_index"] for row in self.rows} <= set(indices)
        if self.rows:
            # Core executemany: the ORM's bulk path costs more than the insert itself here.
            self.session.connection().execute(insert(Reading.metadata.tables["reading"]), self.rows)
            self.session.execute(
                update(Meter),
                [
                    {
                        "id": meter_id,
                        "last_seq": state.last_seq,
                        "last_time": state.last_time,
                        "last_import_wh": state.last_import_wh,
                        "last_export_wh": state.last_export_wh,
                    }
                    for meter_id, state in self.meters.items()
                    if state.changed
                ],
            )
        if self.evidence:
            self.session.execute(insert(ReadingEvidence), self.evidence)


@dataclass(frozen=True, slots=True)
class Evidence:
    id: int
    meter_id: str
    seq: int
    envelope: bytes
    """JCS of the refused envelope, exactly as received apart from canonicalisation."""
    key_id: str
    conflicts_with: int
    """Log index of the accepted reading it contradicts."""
    received_at: datetime


def list_evidence(
    database: Database, meter_id: str, *, after_id: int | None, limit: int
) -> tuple[list[Evidence], bool]:
    """Equivocation evidence of a meter, oldest first; returns the page and whether more follow."""
    query = select(ReadingEvidence).where(ReadingEvidence.meter_id == meter_id)
    if after_id is not None:
        query = query.where(ReadingEvidence.id > after_id)
    with database.read() as session:
        rows = list(session.execute(query.order_by(ReadingEvidence.id).limit(limit + 1)).scalars())
        # Built inside the session: the read's rollback expires the ORM objects.
        page = [
            Evidence(
                row.id,
                row.meter_id,
                row.seq,
                row.envelope,
                row.key_id,
                row.conflicts_with,
                row.received_at if row.received_at.tzinfo else row.received_at.replace(tzinfo=UTC),
            )
            for row in rows[:limit]
        ]
    return page, len(rows) > limit
