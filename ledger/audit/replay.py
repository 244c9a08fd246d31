"""`carbonledger audit replay`: the certificate rules re-derived from the log entries alone.

The service checks every rule before it writes (docs/certificates.md, "Rules"); this module
checks them again afterwards from nothing but the leaves, so an operator who wrote a row
or a leaf past the service — or a service bug — is caught. It never reads the service's
tables: `Replay` is pure and is fed `(index, leaf bytes)` in log order; `replay_log` reads a
`Log` in chunks of `MAX_ENTRIES_PER_READ`, feeds them, and compares the root of the replayed
leaves with `Log.root_at(size)` (the stored tree).

What is checked, each failure a `Violation` (log index, rule slug, one sentence):

- statements (`device.approved/1`, `certificate.*`) verify and name an issuer declared by an
  earlier `issuer.key/1`; credentials verify under such an issuer;
- issuance: the device was registered and approved earlier; the credential subject matches
  the registration; the hour and serial arithmetic is right; the evidence names `reading`
  entries of the device's meters with their leaf hashes, in log order, forming one run of
  consecutive readings per meter, whose production is the `meteredWh`; the range starts at
  the hour's issued total (contiguous, hence disjoint) and its end does not exceed the
  production recomputed from every reading of the meters before the issuance entry, with
  implausibility re-derived from the registered capacity as ingestion does;
- the lifecycle (split, transfer, retire, expire, withdraw) via `ledger.certificates.rules`,
  the same functions the service uses; transfers go to opened accounts; every split child
  gets exactly one credential.

Memory: proportional to the registry's state, not to the log — per certificate one
`CertificateState`, per device-hour one integer, per account, device and meter a few
fields, and per generation meter its readings as packed arrays (time, exportWh, log index,
implausible flag, leaf hash: 57 bytes a reading, ~2 MB per meter-year at 15-minute
readings), which production and evidence checks need. Consumption meters keep only their
last reading. The log itself is streamed.

`certificate.issued/1` names the account a certificate starts in and, for issuance, the
anchored size whose readings counted: production is recomputed from exactly those readings.
"""

from __future__ import annotations

import json
from array import array
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ledger.certificates import rules
from ledger.certificates.entries import (
    ACCOUNT_OPENED_KIND,
    DEVICE_APPROVED_KIND,
    DEVICE_REGISTERED_KIND,
    EXPIRED_KIND,
    ISSUED_KIND,
    MAX_EVIDENCE_READINGS,
    RETIRED_KIND,
    SPLIT_KIND,
    STATEMENT_KINDS,
    TRANSFERRED_KIND,
    WITHDRAWN_KIND,
)
from ledger.certificates.production import ReadingPoint, hourly_production
from ledger.certificates.rules import (
    HOUR,
    CertificateState,
    CertificateStatus,
    RetirementPurpose,
    RuleViolationError,
    gec_text,
    serial_text,
)
from ledger.credentials.data_integrity import (
    CredentialError,
    StatementError,
    verify_credential,
    verify_statement,
)
from ledger.credentials.entries import ISSUER_KEY_KIND
from ledger.log.entry_fields import EntryFormatError, integer, text
from ledger.log.merkle import EMPTY_ROOT, fold_range, leaf_hash, node_hash
from ledger.log.store import MAX_ENTRIES_PER_READ, Log
from ledger.meters.entries import (
    EQUIVOCATION_KIND,
    METER_KEY_KIND,
    METER_KEY_REVOKED_KIND,
    METER_REGISTERED_KIND,
    READING_KINDS,
    PreviousReading,
    ReadingEntry,
    ReadingVerificationError,
    check_reading_bytes,
    parse_equivocation,
    parse_key_revocation,
    parse_meter_key,
    parse_reading,
    verify_reading,
)
from ledger.meters.plausibility import exceeds_capacity
from ledger.times import UtcTimeError, format_utc, parse_utc

MAX_REPORTED_VIOLATIONS = 1_000
"""Violations listed in a report; more are counted but not listed (a broken log could
otherwise make the report as large as the log)."""
MAX_KINDS_COUNTED = 256
"""Distinct entry kinds counted by name; further ones are counted as "(other)"."""

_STATEMENT_KINDS = frozenset({DEVICE_APPROVED_KIND, *STATEMENT_KINDS})
_SUBJECT_FIELDS = (
    ("producer", "organisation"),
    ("energySource", "energySource"),
    ("technology", "technology"),
    ("capacityW", "capacityW"),
    ("province", "province"),
    ("gridRegion", "gridRegion"),
)


@dataclass(frozen=True, slots=True)
class Violation:
    index: int
    """The log index of the offending entry (for the tree check: the tree size)."""
    rule: str
    message: str

    def line(self) -> str:
        return f"entry {self.index}: [{self.rule}] {self.message}"


@dataclass(slots=True)
class AuditReport:
    size: int = 0
    root: bytes = EMPTY_ROOT
    """The root recomputed from the replayed leaves."""
    kinds: Counter[str] = field(default_factory=Counter)
    violations: list[Violation] = field(default_factory=list)
    violations_total: int = 0
    certificates: dict[str, CertificateState] = field(default_factory=dict)
    issued_by_hour: dict[tuple[str, int], int] = field(default_factory=dict)
    """(device, hour start) → Wh issued (the end of the last root range)."""
    producers: dict[str, str] = field(default_factory=dict)
    """certificate → the organisation that produced it (holds it while `account` is "")."""

    @property
    def ok(self) -> bool:
        return self.violations_total == 0

    def add(self, violation: Violation) -> None:
        self.violations_total += 1
        if len(self.violations) < MAX_REPORTED_VIOLATIONS:
            self.violations.append(violation)

    def status_counts(self) -> dict[str, int]:
        counts = Counter(state.status.value for state in self.certificates.values())
        return {status.value: counts.get(status.value, 0) for status in CertificateStatus}

    @property
    def issued_wh(self) -> int:
        return sum(self.issued_by_hour.values())

    @property
    def retired_wh(self) -> int:
        return sum(
            state.volume_wh
            for state in self.certificates.values()
            if state.status is CertificateStatus.RETIRED
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "size": self.size,
            "root": self.root.hex(),
            "entries": dict(sorted(self.kinds.items())),
            "certificates": self.status_counts(),
            "issuedWh": self.issued_wh,
            "issuedGec": gec_text(self.issued_wh),
            "retiredWh": self.retired_wh,
            "retiredGec": gec_text(self.retired_wh),
            "violationsTotal": self.violations_total,
            "violations": [
                {"index": item.index, "rule": item.rule, "message": item.message}
                for item in self.violations
            ],
        }


class _ProblemError(ValueError):
    """One rule broken by the entry being replayed."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


@dataclass(slots=True)
class _Key:
    spki: bytes
    valid_from: int
    revoked_from: int | None = None


@dataclass(slots=True)
class _Meter:
    organisation: str
    capacity_w: int | None
    keeps_readings: bool
    device: str | None = None
    keys: dict[str, _Key] = field(default_factory=dict)
    last: PreviousReading | None = None
    """The newest reading (index, leaf hash): what the next `reading/2` must name."""
    seqs: dict[int, tuple[int, bytes]] = field(default_factory=dict)
    """seq → (index, leaf hash) of each reading, for equivocation entries."""
    last_seq: int | None = None
    last_time: int | None = None
    last_import: int = 0
    last_export: int = 0
    times: array[int] = field(default_factory=lambda: array("q"))
    exports: array[int] = field(default_factory=lambda: array("q"))
    indices: array[int] = field(default_factory=lambda: array("q"))
    flags: bytearray = field(default_factory=bytearray)
    hashes: bytearray = field(default_factory=bytearray)

    def point(self, meter: str, position: int) -> ReadingPoint:
        return ReadingPoint(
            meter,
            self.indices[position],
            bytes(self.hashes[position * 32 : position * 32 + 32]),
            self.times[position],
            self.exports[position],
            bool(self.flags[position]),
        )


@dataclass(slots=True)
class _Device:
    registration: dict[str, Any]
    meters: tuple[str, ...]
    approved_at: int | None = None


@dataclass(frozen=True, slots=True)
class _PendingChild:
    state: CertificateState
    split_index: int


@dataclass(frozen=True, slots=True)
class _Claim:
    """What a credential asserts about its certificate."""

    certificate: str
    device: str
    hour: int
    start: int
    end: int
    valid_until: int


def _check_subject_arithmetic(subject: Mapping[str, Any], claim: _Claim) -> None:
    if claim.hour % HOUR:
        raise _ProblemError("credential-subject", "productionStart is not a whole UTC hour")
    if claim.end <= claim.start:
        raise _ProblemError(
            "credential-subject", f"serial range [{claim.start}, {claim.end}) is empty"
        )
    volume = claim.end - claim.start
    expected: dict[str, Any] = {
        "id": f"urn:carbonledger:device:{claim.device}",
        "type": "EnergyProductionCertificate",
        "productionEnd": format_utc(claim.hour + HOUR),
        "volumeWh": volume,
        "serial": serial_text(claim.device, claim.hour, claim.start, claim.end),
        "gecEquivalent": gec_text(volume),
    }
    for name, value in expected.items():
        if subject.get(name) != value:
            raise _ProblemError(
                "credential-subject",
                f"credentialSubject.{name} is {subject.get(name)!r}, expected {value!r}",
            )


def _epoch(value: object, what: str) -> int:
    try:
        return parse_utc(value, what)
    except UtcTimeError as exc:
        raise _ProblemError("malformed-entry", str(exc)) from None


def _text(entry: Mapping[str, Any], name: str, kind: str) -> str:
    try:
        return text(entry, name)
    except EntryFormatError as exc:
        raise _ProblemError("malformed-entry", f"{kind}: {exc}") from None


def _integer(entry: Mapping[str, Any], name: str, what: str) -> int:
    try:
        return integer(entry, name)
    except EntryFormatError as exc:
        raise _ProblemError("malformed-entry", f"{what}: {exc}") from None


class Replay:
    """The rules applied to entries fed in log order; `report` holds the findings so far."""

    def __init__(self, origin: str | None = None) -> None:
        self.origin = origin
        self.report = AuditReport()
        self._stack: list[tuple[int, bytes]] = []
        self._issuers: set[str] = set()
        self._meters: dict[str, _Meter] = {}
        self._devices: dict[str, _Device] = {}
        self._accounts: dict[str, str] = {}
        self._pending: dict[str, _PendingChild] = {}
        self._leaf_hash = b""
        self._leaf = b""

    # ------------------------------------------------------------------ feeding

    def feed(self, index: int, leaf: bytes) -> None:
        if index != self.report.size:
            raise ValueError(f"entries are fed in order: expected index {self.report.size}")
        self._leaf_hash = leaf_hash(leaf)
        self._leaf = leaf
        self._push_leaf(self._leaf_hash)
        self.report.size += 1
        try:
            entry = json.loads(leaf)
        except ValueError:
            self.report.kinds["(unparsable)"] += 1
            self.report.add(Violation(index, "malformed-entry", "the leaf is not JSON"))
            return
        kind = entry.get("kind") if isinstance(entry, dict) else None
        if not isinstance(kind, str):
            self.report.kinds["(no kind)"] += 1
            self.report.add(Violation(index, "malformed-entry", 'the leaf has no string "kind"'))
            return
        known = kind in self.report.kinds or len(self.report.kinds) < MAX_KINDS_COUNTED
        self.report.kinds[kind if known else "(other)"] += 1
        handler = _HANDLERS.get(kind)
        if handler is None:
            # An entry the audit cannot read is a finding (decision 97): the registry writes
            # no kind its own audit does not know, and a forger would pick a new one.
            self.report.add(
                Violation(index, "unknown-kind", f"the audit knows no entry kind {kind!r}")
            )
            return
        try:
            handler(self, index, entry)
        except _ProblemError as problem:
            self.report.add(Violation(index, problem.rule, str(problem)))
        except RuleViolationError as error:
            self.report.add(Violation(index, error.rule, str(error)))
        except (TypeError, KeyError, AttributeError, ValueError) as error:
            # A shape the field checks above did not foresee: still a finding, never a
            # crash, so one odd leaf cannot stop the audit of the rest of the log.
            self.report.add(
                Violation(index, "malformed-entry", f"{kind} has an unexpected shape ({error!r})")
            )

    def feed_all(self, leaves: Iterable[bytes]) -> None:
        for leaf in leaves:
            self.feed(self.report.size, leaf)

    def finish(self) -> AuditReport:
        """Close the replay: split children that never got their credential are violations."""
        for child, pending in sorted(self._pending.items(), key=lambda kv: kv[1].split_index):
            self.report.add(
                Violation(
                    pending.split_index,
                    "split-child-credential",
                    f"split child {child} never received its certificate.issued/1",
                )
            )
        self._pending.clear()
        self.report.root = fold_range([node for _, node in self._stack])
        return self.report

    def _push_leaf(self, node: bytes) -> None:
        level = 0
        while self._stack and self._stack[-1][0] == level:
            node = node_hash(self._stack.pop()[1], node)
            level += 1
        self._stack.append((level, node))

    # ------------------------------------------------------------------ declarations

    def _issuer_key(self, index: int, entry: dict[str, Any]) -> None:
        did = _text(entry, "did", ISSUER_KEY_KIND)
        if not did.startswith("did:key:"):
            raise _ProblemError(
                "malformed-entry", f"issuer.key/1 declares {did!r}, not a did:key DID"
            )
        self._issuers.add(did)

    def _meter_registered(self, index: int, entry: dict[str, Any]) -> None:
        meter = _text(entry, "meter", METER_REGISTERED_KIND)
        if meter in self._meters:
            raise _ProblemError("duplicate-meter", f"meter {meter!r} was registered before")
        capacity = entry.get("capacityW")
        if capacity is not None and (not isinstance(capacity, int) or capacity <= 0):
            raise _ProblemError("malformed-entry", "meter.registered/1 capacityW is not positive")
        self._meters[meter] = _Meter(
            _text(entry, "organisation", METER_REGISTERED_KIND),
            capacity,
            entry.get("role") != "consumption",
        )

    def _meter_key(self, index: int, entry: dict[str, Any]) -> None:
        try:
            key = parse_meter_key(entry)
        except EntryFormatError as exc:
            raise _ProblemError("malformed-entry", f"{METER_KEY_KIND}: {exc}") from None
        meter = self._meters.get(key.meter)
        if meter is None:
            raise _ProblemError("key-meter", f"key {key.key_id} of {key.meter!r}, never registered")
        if key.organisation != meter.organisation:
            raise _ProblemError("key-meter", f"key {key.key_id} is registered by another owner")
        if any(key.key_id in other.keys for other in self._meters.values()):
            raise _ProblemError("duplicate-key", f"key {key.key_id} was registered before")
        meter.keys[key.key_id] = _Key(key.spki, key.valid_from)

    def _key_revoked(self, index: int, entry: dict[str, Any]) -> None:
        try:
            revocation = parse_key_revocation(entry)
        except EntryFormatError as exc:
            raise _ProblemError("malformed-entry", f"{METER_KEY_REVOKED_KIND}: {exc}") from None
        meter = self._meters.get(revocation.meter)
        key = meter.keys.get(revocation.key_id) if meter is not None else None
        if meter is None or key is None:
            raise _ProblemError(
                "key-unknown",
                f"revocation of key {revocation.key_id} of {revocation.meter!r}, never registered",
            )
        if revocation.organisation != meter.organisation:
            raise _ProblemError("key-meter", f"key {revocation.key_id} revoked by another owner")
        if key.revoked_from is None or revocation.revoked_from < key.revoked_from:
            key.revoked_from = revocation.revoked_from

    def _signed_by(self, meter_id: str, meter: _Meter, reading: ReadingEntry) -> None:
        """The reading is signed by a key of its meter registered before it and valid at
        its time, as ingestion required when it accepted it."""
        kid = reading.key_id
        key = meter.keys.get(kid)
        if key is None:
            raise _ProblemError(
                "reading-key", f"reading of {meter_id!r} names key {kid}, not registered before"
            )
        moment = reading.time
        if moment < key.valid_from:
            raise _ProblemError(
                "reading-key", f"key {kid} is valid only from {format_utc(key.valid_from)}"
            )
        if key.revoked_from is not None and moment >= key.revoked_from:
            raise _ProblemError(
                "reading-key",
                f"key {kid} was revoked from {format_utc(key.revoked_from)} before this reading",
            )
        try:
            verify_reading(reading, key.spki)
        except ReadingVerificationError as exc:
            rule = "ocmf-mapping" if "mapping" in str(exc) else "reading-signature"
            raise _ProblemError(
                rule, f"reading of {meter_id!r} seq {reading.payload.seq}: {exc}"
            ) from None

    def _reading(self, index: int, entry: dict[str, Any]) -> None:
        try:
            reading = parse_reading(entry)
        except EntryFormatError as exc:
            raise _ProblemError("malformed-entry", f"{entry['kind']}: {exc}") from None
        try:
            check_reading_bytes(entry, self._leaf)
        except EntryFormatError as exc:
            raise _ProblemError("reading-bytes", str(exc)) from None
        payload = reading.payload
        meter_id = payload.meter
        meter = self._meters.get(meter_id)
        if meter is None:
            raise _ProblemError("reading-meter", f"reading of meter {meter_id!r}, never registered")
        self._signed_by(meter_id, meter, reading)
        if reading.chained and reading.prev != meter.last:
            named = "none" if reading.prev is None else f"entry {reading.prev.index}"
            actual = "none" if meter.last is None else f"entry {meter.last.index}"
            raise _ProblemError(
                "reading-continuity",
                f"reading of {meter_id!r} names {named} as its previous reading; the meter's "
                f"previous reading is {actual}",
            )
        moment = reading.time
        imported, exported = payload.import_wh, payload.export_wh
        implausible = False
        if meter.last_seq is not None and payload.seq <= meter.last_seq:
            raise _ProblemError(
                "reading-order", f"reading of {meter_id!r} seq {payload.seq} is not increasing"
            )
        if meter.last_time is not None:
            if moment <= meter.last_time:
                raise _ProblemError(
                    "reading-order",
                    f"reading of {meter_id!r} at {format_utc(moment)} is not after its "
                    "previous one",
                )
            if imported < meter.last_import or exported < meter.last_export:
                raise _ProblemError("reading-order", f"a register of {meter_id!r} decreased")
            implausible = exceeds_capacity(
                meter.capacity_w,
                moment - meter.last_time,
                imported - meter.last_import,
                exported - meter.last_export,
            )
        meter.last_time, meter.last_import, meter.last_export = moment, imported, exported
        meter.last_seq = payload.seq
        meter.last = PreviousReading(index, self._leaf_hash)
        meter.seqs[payload.seq] = (index, self._leaf_hash)
        if meter.keeps_readings:
            meter.times.append(moment)
            meter.exports.append(exported)
            meter.indices.append(index)
            meter.flags.append(implausible)
            meter.hashes += self._leaf_hash

    def _equivocation(self, index: int, entry: dict[str, Any]) -> None:
        try:
            evidence = parse_equivocation(entry)
        except EntryFormatError as exc:
            raise _ProblemError("malformed-entry", f"{EQUIVOCATION_KIND}: {exc}") from None
        meter = self._meters.get(evidence.meter)
        if meter is None:
            raise _ProblemError("equivocation", f"meter {evidence.meter!r} was never registered")
        accepted = meter.seqs.get(evidence.seq)
        if accepted != (evidence.accepted.index, evidence.accepted.leaf_hash):
            raise _ProblemError(
                "equivocation",
                f"entry {evidence.accepted.index} is not the accepted reading of "
                f"{evidence.meter!r} seq {evidence.seq}",
            )
        for reading in (evidence.accepted_reading, evidence.conflicting):
            key = meter.keys.get(reading.key_id)
            if key is None:
                raise _ProblemError("equivocation", f"key {reading.key_id} is not the meter's")
            try:
                verify_reading(reading, key.spki)
            except ReadingVerificationError as exc:
                raise _ProblemError("equivocation", f"a reading does not verify: {exc}") from None

    def _device_registered(self, index: int, entry: dict[str, Any]) -> None:
        device = _text(entry, "device", DEVICE_REGISTERED_KIND)
        if device in self._devices:
            raise _ProblemError("duplicate-device", f"device {device!r} was registered before")
        meters = entry.get("meters")
        if not isinstance(meters, list) or not meters:
            raise _ProblemError("malformed-entry", "device.registered/1 has no meter list")
        organisation = _text(entry, "organisation", DEVICE_REGISTERED_KIND)
        for meter_id in meters:
            meter = self._meters.get(meter_id) if isinstance(meter_id, str) else None
            if meter is None:
                raise _ProblemError("device-meter", f"meter {meter_id!r} of {device!r} is unknown")
            if meter.organisation != organisation:
                raise _ProblemError("device-meter", f"meter {meter_id!r} belongs to another owner")
            if meter.device is not None:
                raise _ProblemError(
                    "device-meter", f"meter {meter_id!r} already measures device {meter.device!r}"
                )
        for meter_id in meters:
            self._meters[meter_id].device = device
        self._devices[device] = _Device(dict(entry), tuple(meters))

    def _account_opened(self, index: int, entry: dict[str, Any]) -> None:
        account = _text(entry, "account", ACCOUNT_OPENED_KIND)
        if account in self._accounts:
            raise _ProblemError("duplicate-account", f"account {account} was opened before")
        self._accounts[account] = _text(entry, "organisation", ACCOUNT_OPENED_KIND)

    # ------------------------------------------------------------------ statements

    def _statement(self, index: int, entry: dict[str, Any]) -> None:
        kind = entry["kind"]
        try:
            issuer = verify_statement(entry)
        except StatementError as error:
            raise _ProblemError("bad-signature", f"{kind}: {error}") from None
        if issuer not in self._issuers:
            raise _ProblemError(
                "undeclared-issuer",
                f"{kind} is signed by {issuer}, which no earlier issuer.key/1 declared",
            )
        at = _epoch(entry.get("at"), f"{kind} `at`")
        if kind == DEVICE_APPROVED_KIND:
            self._approve(entry, at)
            return
        certificate = _text(entry, "certificate", kind)
        state = self.report.certificates.get(certificate)
        if state is None:
            raise _ProblemError("unknown-certificate", f"{kind} names {certificate}, never issued")
        new_state = _STATEMENT_HANDLERS[kind](self, index, entry, state, at)
        self.report.certificates[certificate] = new_state

    def _approve(self, entry: dict[str, Any], at: int) -> None:
        del at
        device = _text(entry, "device", DEVICE_APPROVED_KIND)
        record = self._devices.get(device)
        if record is None:
            raise _ProblemError(
                "device-unknown", f"device.approved/1 of {device!r}, never registered"
            )
        if record.approved_at is not None:
            raise _ProblemError("device-approval", f"device {device!r} was approved before")
        record.approved_at = self.report.size - 1

    def _split(
        self, index: int, entry: dict[str, Any], state: CertificateState, at: int
    ) -> CertificateState:
        account = _text(entry, "account", SPLIT_KIND)
        children = entry.get("children")
        if not isinstance(children, list) or len(children) > rules.MAX_SPLIT_PARTS:
            raise _ProblemError(
                "malformed-entry", "certificate.split/1 children is not a short list"
            )
        parts: list[tuple[str, int, int]] = []
        for child in children:
            if not isinstance(child, dict):
                raise _ProblemError("malformed-entry", "a split child is not an object")
            cid = _text(child, "certificate", "a split child")
            if cid in self.report.certificates or cid in self._pending:
                raise _ProblemError("duplicate-certificate", f"split child {cid} already exists")
            parts.append(
                (
                    cid,
                    _integer(child, "serialStart", "a split child"),
                    _integer(child, "serialEnd", "a split child"),
                )
            )
        if len({cid for cid, _, _ in parts}) != len(parts):
            raise _ProblemError("duplicate-certificate", "a split names one child twice")
        parent, kids = rules.split(state, children=parts, account=account, at=at)
        for kid in kids:
            self._pending[kid.certificate] = _PendingChild(kid, index)
        return parent

    def _transfer(
        self, index: int, entry: dict[str, Any], state: CertificateState, at: int
    ) -> CertificateState:
        kind = TRANSFERRED_KIND
        source, destination = _text(entry, "from", kind), _text(entry, "to", kind)
        organisation = self._accounts.get(destination)
        if organisation is None:
            raise _ProblemError(
                "unknown-account", f"transfer to account {destination}, never opened"
            )
        if entry.get("toOrganisation") != organisation:
            raise _ProblemError(
                "transfer-organisation",
                f"toOrganisation is {entry.get('toOrganisation')!r}; account {destination} "
                f"belongs to {organisation}",
            )
        return rules.transfer(state, from_account=source, to_account=destination, at=at)

    def _retire(
        self, index: int, entry: dict[str, Any], state: CertificateState, at: int
    ) -> CertificateState:
        kind = RETIRED_KIND
        account = _text(entry, "account", kind)
        beneficiary = _text(entry, "beneficiary", kind)
        purpose = entry.get("purpose")
        if purpose not in {item.value for item in RetirementPurpose}:
            raise _ProblemError("retire-purpose", f"retirement purpose {purpose!r} is not allowed")
        start = _epoch(entry.get("reportingPeriodStart"), "reportingPeriodStart")
        if _epoch(entry.get("reportingPeriodEnd"), "reportingPeriodEnd") <= start:
            raise _ProblemError("retire-period", "the reporting period ends before it starts")
        return rules.retire(state, account=account, beneficiary=beneficiary, at=at)

    def _expire(
        self, index: int, entry: dict[str, Any], state: CertificateState, at: int
    ) -> CertificateState:
        return rules.expire(state, at=at)

    def _withdraw(
        self, index: int, entry: dict[str, Any], state: CertificateState, at: int
    ) -> CertificateState:
        reason = entry.get("reason")
        if not isinstance(reason, str):
            raise RuleViolationError("withdraw", "a withdrawal needs a reason")
        return rules.withdraw(state, reason=reason, at=at)

    # ------------------------------------------------------------------ issuance

    def _issued(self, index: int, entry: dict[str, Any]) -> None:
        credential = entry.get("credential")
        if not isinstance(credential, dict):
            raise _ProblemError("malformed-entry", "certificate.issued/1 has no credential object")
        issuer = credential.get("issuer")
        if not isinstance(issuer, str) or issuer not in self._issuers:
            raise _ProblemError(
                "undeclared-issuer",
                f"the credential's issuer {issuer!r} was not declared by an earlier issuer.key/1",
            )
        try:
            verify_credential(credential, trusted_issuer=issuer)
        except CredentialError as error:
            raise _ProblemError(
                "bad-credential", f"the credential does not verify: {error}"
            ) from None
        certificate = credential.get("id")
        if not isinstance(certificate, str) or not certificate.startswith("urn:uuid:"):
            raise _ProblemError("credential-subject", "the credential id is not a urn:uuid")
        if certificate in self.report.certificates:
            raise _ProblemError("duplicate-certificate", f"{certificate} was issued before")
        subject = credential.get("credentialSubject")
        if not isinstance(subject, dict):
            raise _ProblemError("credential-subject", "the credential has no credentialSubject")
        claim = _Claim(
            certificate=certificate,
            device=_text(subject, "device", "credentialSubject"),
            hour=_epoch(subject.get("productionStart"), "productionStart"),
            start=_integer(subject, "serialStart", "credentialSubject"),
            end=_integer(subject, "serialEnd", "credentialSubject"),
            valid_until=_epoch(credential.get("validUntil"), "validUntil"),
        )
        _check_subject_arithmetic(subject, claim)
        account = entry.get("account")
        if not isinstance(account, str):
            raise _ProblemError("malformed-entry", "certificate.issued/1 names no account")
        parent = subject.get("splitFrom")
        if parent is not None:
            if "anchoredSize" in entry:
                raise _ProblemError("malformed-entry", "a split child has no anchoredSize")
            self._issued_child(claim, parent, account)
        else:
            anchored = entry.get("anchoredSize")
            if type(anchored) is not int or not 0 <= anchored <= index:
                raise _ProblemError(
                    "malformed-entry",
                    f"anchoredSize must be an integer between 0 and the entry's index {index}",
                )
            self._issued_root(index, credential, subject, claim, account, anchored)

    def _issued_root(  # noqa: PLR0917 - one issuance's facts, each checked below
        self,
        index: int,
        credential: Mapping[str, Any],
        subject: Mapping[str, Any],
        claim: _Claim,
        account: str,
        anchored: int,
    ) -> None:
        device = self._devices.get(claim.device)
        if device is None:
            raise _ProblemError(
                "device-unknown",
                f"{claim.certificate} is for device {claim.device!r}, never registered",
            )
        if device.approved_at is None:
            raise _ProblemError(
                "device-not-approved",
                f"{claim.certificate} is for device {claim.device!r}, not approved before",
            )
        for subject_name, registration_name in _SUBJECT_FIELDS:
            if subject.get(subject_name) != device.registration.get(registration_name):
                raise _ProblemError(
                    "subject-mismatch",
                    f"credentialSubject.{subject_name} is {subject.get(subject_name)!r}; "
                    f"device {claim.device!r} was registered with "
                    f"{device.registration.get(registration_name)!r}",
                )
        key = (claim.device, claim.hour)
        issued = self.report.issued_by_hour.get(key, 0)
        problems = self._range_problems(index, device, claim, issued, anchored)
        producer = device.registration["organisation"]
        if self._accounts.get(account) != producer:
            problems.append(
                _ProblemError(
                    "not-holder",
                    f"{claim.certificate} is issued into account {account}, which is not an "
                    f"opened account of producer {producer}",
                )
            )
        try:
            self._check_evidence(credential, device, claim, anchored)
        except _ProblemError as evidence_problem:
            problems.append(evidence_problem)
        # Recorded even when a rule failed: later statements may refer to it.
        self.report.producers[claim.certificate] = device.registration["organisation"]
        self.report.certificates[claim.certificate] = CertificateState(
            certificate=claim.certificate,
            device=claim.device,
            hour_start=claim.hour,
            serial_start=claim.start,
            serial_end=claim.end,
            account=account,
            valid_until=claim.valid_until,
        )
        self.report.issued_by_hour[key] = max(issued, claim.end)
        for found in problems:
            self.report.add(Violation(index, found.rule, str(found)))

    def _range_problems(
        self, index: int, device: _Device, claim: _Claim, issued: int, anchored: int
    ) -> list[_ProblemError]:
        """Rule 1: contiguous (hence disjoint) root ranges within the hour's production."""
        problems: list[_ProblemError] = []
        hour_text = format_utc(claim.hour)
        if claim.start < issued:
            problems.append(
                _ProblemError(
                    "range-overlap",
                    f"{claim.certificate} takes serials [{claim.start}, {claim.end}) of "
                    f"{claim.device} hour {hour_text}, but [0, {issued}) were issued before",
                )
            )
        elif claim.start > issued:
            problems.append(
                _ProblemError(
                    "serial-gap",
                    f"{claim.certificate} starts at serial {claim.start}; the next serial of "
                    f"{claim.device} hour {hour_text} is {issued}",
                )
            )
        production = self._production(device, claim.hour, anchored)
        if production is None:
            problems.append(
                _ProblemError(
                    "implausible-hour",
                    f"hour {hour_text} of {claim.device} is touched by an implausible reading "
                    "and cannot be issued",
                )
            )
        elif claim.end > production:
            problems.append(
                _ProblemError(
                    "over-issuance",
                    f"{claim.certificate} issues up to serial {claim.end} of {claim.device} hour "
                    f"{hour_text}, but the readings below its anchored size {anchored} meter only "
                    f"{production} Wh",
                )
            )
        return problems

    def _issued_child(self, claim: _Claim, parent: object, account: str) -> None:
        pending = self._pending.pop(claim.certificate, None)
        if pending is None:
            raise _ProblemError(
                "split-child-credential",
                f"{claim.certificate} claims splitFrom {parent!r}, but no split created it",
            )
        kid = pending.state
        facts = (parent, claim.device, claim.hour, claim.start, claim.end, claim.valid_until)
        wanted = (
            kid.parent,
            kid.device,
            kid.hour_start,
            kid.serial_start,
            kid.serial_end,
            kid.valid_until,
        )
        if facts != wanted:
            raise _ProblemError(
                "split-child-credential",
                f"{claim.certificate}'s credential (splitFrom, device, hour, range, validUntil) "
                f"= {facts} differs from its split at entry {pending.split_index}: {wanted}",
            )
        if account != kid.account:
            raise _ProblemError(
                "not-holder",
                f"{claim.certificate} is issued into account {account}; its split put it in "
                f"{kid.account}",
            )
        self.report.producers[claim.certificate] = self.report.producers[str(parent)]
        self.report.certificates[claim.certificate] = kid

    def _points(self, meter_id: str, hour: int, below: int) -> list[ReadingPoint]:
        """The meter's readings with a log index below `below` that bound segments
        overlapping (hour, hour+1h] (a meter's readings are in log order, so a prefix)."""
        meter = self._meters[meter_id]
        count = bisect_left(meter.indices, below)
        if not count:
            return []
        low = max(bisect_right(meter.times, hour, 0, count) - 1, 0)
        high = min(bisect_left(meter.times, hour + HOUR, 0, count), count - 1)
        return [meter.point(meter_id, position) for position in range(low, high + 1)]

    def _production(self, device: _Device, hour: int, below: int) -> int | None:
        """The hour's production from the readings below the issuance's anchored size, as the
        service saw them; None when the hour is flagged."""
        scan = hourly_production(
            {meter: self._points(meter, hour, below) for meter in device.meters},
            hour,
            hour + HOUR,
        )
        if hour in scan.flagged_hours:
            return None
        production = scan.hours.get(hour)
        return production.metered_wh if production is not None else 0

    def _check_evidence(
        self, credential: Mapping[str, Any], device: _Device, claim: _Claim, anchored: int
    ) -> None:
        evidence = credential.get("evidence")
        if not isinstance(evidence, list) or len(evidence) != 1:
            raise _ProblemError("evidence", "the credential needs exactly one evidence item")
        item = evidence[0]
        if not isinstance(item, dict) or item.get("type") != ["MeteredProduction"]:
            raise _ProblemError("evidence", "the evidence is not a MeteredProduction object")
        if self.origin is not None and item.get("log") != self.origin:
            raise _ProblemError(
                "evidence", f"the evidence names log {item.get('log')!r}, not {self.origin!r}"
            )
        metered = _integer(item, "meteredWh", "the evidence")
        by_meter = self._evidence_points(item.get("readings"), device, claim.device)
        late = [p.index for points in by_meter.values() for p in points if p.index >= anchored]
        if late:
            raise _ProblemError(
                "evidence-not-anchored",
                f"evidence reading {late[0]} lies beyond the issuance's anchored size {anchored}",
            )
        scan = hourly_production(by_meter, claim.hour, claim.hour + HOUR)
        counted = scan.hours.get(claim.hour)
        if claim.hour in scan.flagged_hours:
            raise _ProblemError(
                "evidence-metered", "the evidence includes a reading flagged implausible"
            )
        recomputed = counted.metered_wh if counted is not None else 0
        if recomputed != metered:
            raise _ProblemError(
                "evidence-metered",
                f"the evidence says meteredWh {metered}; its readings give {recomputed} Wh",
            )
        if claim.end > metered:
            raise _ProblemError(
                "evidence-metered",
                f"serialEnd {claim.end} exceeds the evidence's meteredWh {metered}",
            )

    def _evidence_points(
        self, readings: object, device: _Device, device_id: str
    ) -> dict[str, list[ReadingPoint]]:
        """The evidence readings per meter, each checked to be what the evidence says."""
        if not isinstance(readings, list) or not 0 < len(readings) <= MAX_EVIDENCE_READINGS:
            raise _ProblemError(
                "evidence", f"the evidence names 1-{MAX_EVIDENCE_READINGS} readings"
            )
        by_meter: dict[str, list[tuple[int, ReadingPoint]]] = {}
        previous = -1
        for reading in readings:
            if not isinstance(reading, dict):
                raise _ProblemError("evidence", "an evidence reading is not an object")
            index = _integer(reading, "index", "an evidence reading")
            if index <= previous:
                raise _ProblemError("evidence-order", "evidence readings are not in log order")
            previous = index
            found = self._find_reading(device, index)
            if found is None:
                raise _ProblemError(
                    "evidence-not-reading",
                    f"evidence entry {index} is not an earlier reading of a meter "
                    f"of device {device_id!r}",
                )
            meter_id, position = found
            point = self._meters[meter_id].point(meter_id, position)
            if reading.get("leafHash") != point.leaf_hash.hex():
                raise _ProblemError(
                    "evidence-leaf-hash",
                    f"evidence names leaf hash {reading.get('leafHash')!r} for entry "
                    f"{index}, whose leaf hash is {point.leaf_hash.hex()}",
                )
            by_meter.setdefault(meter_id, []).append((position, point))
        for meter_id, points in by_meter.items():
            first = points[0][0]
            if [position for position, _ in points] != list(range(first, first + len(points))):
                raise _ProblemError(
                    "evidence-gap",
                    f"the evidence skips readings of meter {meter_id!r} between entries "
                    f"{points[0][1].index} and {points[-1][1].index}",
                )
        return {meter: [point for _, point in points] for meter, points in by_meter.items()}

    def _find_reading(self, device: _Device, index: int) -> tuple[str, int] | None:
        for meter_id in device.meters:
            indices = self._meters[meter_id].indices
            position = bisect_left(indices, index)
            if position < len(indices) and indices[position] == index:
                return meter_id, position
        return None


_HANDLERS: dict[str, Any] = {
    ISSUER_KEY_KIND: Replay._issuer_key,
    METER_REGISTERED_KIND: Replay._meter_registered,
    METER_KEY_KIND: Replay._meter_key,
    METER_KEY_REVOKED_KIND: Replay._key_revoked,
    **dict.fromkeys(READING_KINDS, Replay._reading),
    EQUIVOCATION_KIND: Replay._equivocation,
    DEVICE_REGISTERED_KIND: Replay._device_registered,
    ACCOUNT_OPENED_KIND: Replay._account_opened,
    ISSUED_KIND: Replay._issued,
    **{kind: Replay._statement for kind in _STATEMENT_KINDS},
}
_STATEMENT_HANDLERS: dict[str, Any] = {
    SPLIT_KIND: Replay._split,
    TRANSFERRED_KIND: Replay._transfer,
    RETIRED_KIND: Replay._retire,
    EXPIRED_KIND: Replay._expire,
    WITHDRAWN_KIND: Replay._withdraw,
}


def replay_log(log: Log, *, size: int | None = None) -> AuditReport:
    """Replay the first `size` entries (default: all) and check the stored tree's root."""
    head = log.head()
    size = head.size if size is None else size
    replay = Replay(head.origin)
    for start in range(0, size, MAX_ENTRIES_PER_READ):
        end = min(start + MAX_ENTRIES_PER_READ, size)
        for offset, leaf in enumerate(log.entries(start, end)):
            replay.feed(start + offset, leaf)
    report = replay.finish()
    stored = log.root_at(size)
    if size == head.size and head.root != stored:
        report.add(
            Violation(
                size,
                "tree-root",
                f"the log head's root {head.root.hex()} differs from the stored tree's root "
                f"{stored.hex()} at size {size}",
            )
        )
    if stored != report.root:
        report.add(
            Violation(
                size,
                "tree-root",
                f"the stored tree's root at size {size} is {stored.hex()}, but the leaves "
                f"hash to {report.root.hex()}",
            )
        )
    return report
