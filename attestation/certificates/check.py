"""Offline checks of certificate bundles (issue 5, part 5; docs/certificates.md).

Two layers, both plug-ins of `attestation.bundles.verify` registered when this module is imported
(`attestation.bundles.verify` imports it last, so `carbonledger verify` always knows them):

- **entry checkers** for `issuer.key/1`, `device.registered/1`, `device.approved/1`,
  `account.opened/1` and every `certificate.*/1` kind: the entry's exact shape and its
  own signature (the credential's Data Integrity proof, or the statement's `sig`). An entry
  check sees one entry and cannot say whether its signer is a declared issuer; that is
  the bundle check's job.
- **the bundle checker "certificate"**, which runs when a bundle holds a
  `certificate.issued/1` entry and adds these named checks:

  | name        | what                                                                    |
  | ----------- | ----------------------------------------------------------------------- |
  | certificate | the bundle's certificate (the one no other credential was split from),   |
  |             | its credential proven and verified                                       |
  | issuer      | every credential and statement is signed by a DID that a proven          |
  |             | `issuer.key/1` entry declared before it; the pinned DID, when given      |
  | device      | the proven `device.registered/1` matches the credential's subject, and   |
  |             | a proven `device.approved/1` precedes the issuance                      |
  | evidence    | every evidence reading is in the bundle, proven, a verified `reading/1`  |
  |             | of one of the device's meters; the hour's energy recomputed from them    |
  |             | (`ledger.certificates.issuance.hourly_production`) is `meteredWh` and    |
  |             | covers the serials                                                       |
  | lineage     | for a split child: each split statement and parent credential is proven  |
  |             | and the child is exactly what the split made                            |
  | status      | `ledger.certificates.rules` applied to the proven statements in log order |
  |             | — active / transferred / split / retired / expired pass; a withdrawn     |
  |             | certificate FAILS with the withdrawal reason                             |

What a bundle cannot show: statements appended after its anchor (they appear in the next
bundle), so the status is "as of" the anchored size, which the summary says.
"""

from __future__ import annotations

import calendar
import itertools
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from attestation.bundles.bundle import READING_KIND
from attestation.bundles.verify import (
    FAILED,
    PASSED,
    BundleContext,
    BundleFindings,
    Check,
    EntryContext,
    Verdict,
    register_bundle_checker,
    register_entry_checker,
)
from ledger.certificates import rules
from ledger.certificates.issuance import (
    CREDENTIAL_CONTEXT,
    CREDENTIAL_TYPE,
    MAX_EVIDENCE_READINGS,
    ReadingPoint,
    hourly_production,
)
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
    public_key_from_did_key,
    verify_credential,
    verify_statement,
)
from ledger.log.merkle import leaf_hash
from ledger.meters.registration import PROVINCE_PATTERN, EnergySource, GridRegion

ISSUER_KEY_KIND = "issuer.key/1"
DEVICE_REGISTERED_KIND = "device.registered/1"
DEVICE_APPROVED_KIND = "device.approved/1"
ACCOUNT_OPENED_KIND = "account.opened/1"
ISSUED_KIND = "certificate.issued/1"
SPLIT_KIND = "certificate.split/1"
TRANSFERRED_KIND = "certificate.transferred/1"
RETIRED_KIND = "certificate.retired/1"
EXPIRED_KIND = "certificate.expired/1"
WITHDRAWN_KIND = "certificate.withdrawn/1"
STATEMENT_KINDS = (SPLIT_KIND, TRANSFERRED_KIND, RETIRED_KIND, EXPIRED_KIND, WITHDRAWN_KIND)

MAX_TEXT_CHARS = 1_000
"""Longest free text in an entry (names, reasons); the ledger's own limits are lower."""
MAX_DEVICE_METERS = 32
MAX_SPLIT_CHILDREN = rules.MAX_SPLIT_PARTS

_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", re.ASCII)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_CERTIFICATE_ID = re.compile(
    r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII
)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)
_DEVICE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}", re.ASCII)
_HEX64 = re.compile(r"[0-9a-f]{64}", re.ASCII)
_SIGNED = frozenset({"issuer", "sig"})


class _ProblemError(ValueError):
    """An entry or credential is not shaped as docs/certificates.md says; message says how."""


# ------------------------------------------------------------------------ field readers


def _fields(entry: Mapping[str, Any], expected: frozenset[str]) -> None:
    if set(entry) != expected:
        missing, extra = sorted(expected - set(entry)), sorted(set(entry) - expected)
        raise _ProblemError(f"fields: missing {missing}, unexpected {extra}")


def _text(entry: Mapping[str, Any], name: str, pattern: re.Pattern[str] | None = None) -> str:
    value = entry[name]
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT_CHARS:
        raise _ProblemError(
            f"{name} must be a non-empty string of at most {MAX_TEXT_CHARS} characters"
        )
    if pattern is not None and not pattern.fullmatch(value):
        raise _ProblemError(f"{name} {value!r} does not have the required form")
    return value


def _integer(entry: Mapping[str, Any], name: str, low: int = 0) -> int:
    value = entry[name]
    # bool is an int in Python; JSON true must not pass as 1.
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise _ProblemError(f"{name} must be an integer of at least {low}")
    return value


def _when(entry: Mapping[str, Any], name: str) -> int:
    """Seconds since the epoch of an RFC 3339 UTC whole-second time (`…Z`)."""
    value = entry[name]
    if not isinstance(value, str) or not _TIME.fullmatch(value):
        raise _ProblemError(
            f"{name} must be an RFC 3339 UTC time with whole seconds, like 2026-06-01T00:00:00Z"
        )
    return _epoch_seconds(value, name)


def _epoch_seconds(value: str, name: str) -> int:
    # By hand rather than strptime: a bundle has a few hundred times and strptime alone
    # would take a third of the 5 ms budget. datetime() rejects impossible dates.
    parts = (
        int(value[0:4]),
        int(value[5:7]),
        int(value[8:10]),
        int(value[11:13]),
        int(value[14:16]),
        int(value[17:19]),
    )
    try:
        datetime(*parts)  # validation only: the fields are UTC, applied by timegm
    except ValueError:
        raise _ProblemError(f"{name} {value!r} is not a valid date and time") from None
    return calendar.timegm((*parts, 0, 0, 0))


def _choice(entry: Mapping[str, Any], name: str, allowed: type[StrEnum]) -> str:
    value = entry[name]
    if not isinstance(value, str) or value not in {member.value for member in allowed}:
        raise _ProblemError(f"{name} {value!r} is not one of {[m.value for m in allowed]}")
    return value


def _did(entry: Mapping[str, Any], name: str) -> str:
    value = _text(entry, name)
    try:
        public_key_from_did_key(value)
    except CredentialError as exc:
        raise _ProblemError(f"{name}: {exc}") from None
    if "#" in value:
        raise _ProblemError(f"{name} must be a did:key DID, not a DID URL")
    return value


def _iso(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _day(seconds: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(seconds))


# ---------------------------------------------------------------------- entry checkers

_ISSUER_FIELDS = frozenset({"kind", "did", "validFrom"})
_DEVICE_FIELDS = frozenset(
    {
        "kind",
        "device",
        "organisation",
        "name",
        "energySource",
        "technology",
        "capacityW",
        "commissioningDate",
        "province",
        "gridRegion",
        "meters",
        "registeredAt",
    }
)
_APPROVED_FIELDS = frozenset({"kind", "device", "at"}) | _SIGNED
_ACCOUNT_FIELDS = frozenset({"kind", "account", "organisation", "name", "openedAt"})
_STATEMENT_FIELDS: dict[str, frozenset[str]] = {
    SPLIT_KIND: frozenset({"kind", "certificate", "account", "children", "at"}) | _SIGNED,
    TRANSFERRED_KIND: frozenset({"kind", "certificate", "from", "to", "toOrganisation", "at"})
    | _SIGNED,
    RETIRED_KIND: frozenset(
        {
            "kind",
            "certificate",
            "account",
            "beneficiary",
            "purpose",
            "reportingPeriodStart",
            "reportingPeriodEnd",
            "consumptionProvince",
            "consumptionGridRegion",
            "at",
        }
    )
    | _SIGNED,
    EXPIRED_KIND: frozenset({"kind", "certificate", "at"}) | _SIGNED,
    WITHDRAWN_KIND: frozenset({"kind", "certificate", "reason", "at"}) | _SIGNED,
}


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    device: str
    organisation: str
    energy_source: str
    technology: str
    capacity_w: int
    province: str
    grid_region: str
    meters: tuple[str, ...]


def issuer_declaration(entry: Mapping[str, Any]) -> str:
    """The DID an `issuer.key/1` entry declares; raises `_ProblemError` when malformed."""
    _fields(entry, _ISSUER_FIELDS)
    _when(entry, "validFrom")
    return _did(entry, "did")


def device_facts(entry: Mapping[str, Any]) -> DeviceFacts:
    _fields(entry, _DEVICE_FIELDS)
    meters = entry["meters"]
    if (
        not isinstance(meters, list)
        or not 1 <= len(meters) <= MAX_DEVICE_METERS
        or not all(isinstance(meter, str) and meter for meter in meters)
    ):
        raise _ProblemError(f"meters must be a list of 1-{MAX_DEVICE_METERS} meter ids")
    if meters != sorted(set(meters)):
        raise _ProblemError("meters must be sorted and listed once each")
    commissioned = _text(entry, "commissioningDate", _DATE)
    try:
        time.strptime(commissioned, "%Y-%m-%d")
    except ValueError:
        raise _ProblemError(f"commissioningDate {commissioned!r} is not a valid date") from None
    _text(entry, "name")
    _when(entry, "registeredAt")
    return DeviceFacts(
        device=_text(entry, "device", _DEVICE_ID),
        organisation=_text(entry, "organisation", _UUID),
        energy_source=_choice(entry, "energySource", EnergySource),
        technology=_text(entry, "technology"),
        capacity_w=_integer(entry, "capacityW", 1),
        province=_text(entry, "province", PROVINCE_PATTERN),
        grid_region=_choice(entry, "gridRegion", GridRegion),
        meters=tuple(meters),
    )


def _signed(entry: Mapping[str, Any]) -> str:
    try:
        return verify_statement(entry)
    except StatementError as exc:
        raise _ProblemError(str(exc)) from None


def statement_facts(entry: Mapping[str, Any], *, verify: bool = True) -> dict[str, Any]:
    """A certificate statement's fields, checked for shape and (when `verify`) signature;
    whether the signer is a declared issuer is the bundle check's business."""
    kind = entry["kind"]
    _fields(entry, _STATEMENT_FIELDS[kind])
    facts: dict[str, Any] = {
        "certificate": _text(entry, "certificate", _CERTIFICATE_ID),
        "at": _when(entry, "at"),
    }
    if kind == SPLIT_KIND:
        facts["account"] = _text(entry, "account", _UUID)
        children = entry["children"]
        if not isinstance(children, list) or not 2 <= len(children) <= MAX_SPLIT_CHILDREN:
            raise _ProblemError(f"children must be a list of 2-{MAX_SPLIT_CHILDREN} parts")
        parts = []
        for child in children:
            if not isinstance(child, dict):
                raise _ProblemError("each child must be an object")
            _fields(child, frozenset({"certificate", "serialStart", "serialEnd"}))
            start = _integer(child, "serialStart")
            end = _integer(child, "serialEnd", start + 1)
            parts.append((_text(child, "certificate", _CERTIFICATE_ID), start, end))
        facts["children"] = parts
    elif kind == TRANSFERRED_KIND:
        facts["from"] = _text(entry, "from", _UUID)
        facts["to"] = _text(entry, "to", _UUID)
        facts["toOrganisation"] = _text(entry, "toOrganisation", _UUID)
    elif kind == RETIRED_KIND:
        facts["account"] = _text(entry, "account", _UUID)
        facts["beneficiary"] = _text(entry, "beneficiary", _UUID)
        facts["purpose"] = _choice(entry, "purpose", RetirementPurpose)
        facts["periodStart"] = _when(entry, "reportingPeriodStart")
        facts["periodEnd"] = _when(entry, "reportingPeriodEnd")
        if facts["periodEnd"] <= facts["periodStart"]:
            raise _ProblemError("the reporting period must end after it starts")
        facts["province"] = _text(entry, "consumptionProvince", PROVINCE_PATTERN)
        facts["gridRegion"] = _choice(entry, "consumptionGridRegion", GridRegion)
    elif kind == WITHDRAWN_KIND:
        facts["reason"] = _text(entry, "reason")
    facts["issuer"] = _signed(entry) if verify else _did(entry, "issuer")
    return facts


_SUBJECT_FIELDS = frozenset(
    {
        "id",
        "type",
        "device",
        "producer",
        "energySource",
        "technology",
        "capacityW",
        "province",
        "gridRegion",
        "productionStart",
        "productionEnd",
        "serialStart",
        "serialEnd",
        "volumeWh",
        "serial",
        "gecEquivalent",
    }
)
_CREDENTIAL_FIELDS = frozenset(
    {"@context", "id", "type", "issuer", "validFrom", "validUntil", "credentialSubject"}
) | {"evidence", "proof"}
_EVIDENCE_FIELDS = frozenset({"type", "log", "meteredWh", "readings"})


@dataclass(frozen=True, slots=True)
class CredentialFacts:
    """What a well-formed, verified certificate credential says."""

    certificate: str
    issuer: str
    valid_from: int
    valid_until: int
    subject: Mapping[str, Any]
    device: str
    producer: str
    energy_source: str
    hour_start: int
    serial_start: int
    serial_end: int
    split_from: str | None
    log: str
    metered_wh: int
    readings: tuple[tuple[int, str], ...]
    """(log index, leaf hash hex) of each evidence reading, in log order."""
    evidence: Any = field(repr=False)

    @property
    def volume_wh(self) -> int:
        return self.serial_end - self.serial_start

    @property
    def serial(self) -> str:
        return serial_text(self.device, self.hour_start, self.serial_start, self.serial_end)


def _subject_facts(subject: object) -> tuple[str, int, int, int, str | None]:
    """(device, hour start, serial start, serial end, splitFrom) of a checked subject."""
    if not isinstance(subject, dict):
        raise _ProblemError("credentialSubject must be an object")
    split_from = None
    if "splitFrom" in subject:
        _fields(subject, _SUBJECT_FIELDS | {"splitFrom"})
        split_from = _text(subject, "splitFrom", _CERTIFICATE_ID)
    else:
        _fields(subject, _SUBJECT_FIELDS)
    device = _text(subject, "device", _DEVICE_ID)
    if subject["id"] != f"urn:carbonledger:device:{device}":
        raise _ProblemError(f"credentialSubject.id must be urn:carbonledger:device:{device}")
    if subject["type"] != "EnergyProductionCertificate":
        raise _ProblemError("credentialSubject.type must be EnergyProductionCertificate")
    for name in ("technology", "producer"):
        _text(subject, name)
    _choice(subject, "energySource", EnergySource)
    _choice(subject, "gridRegion", GridRegion)
    _text(subject, "province", PROVINCE_PATTERN)
    _integer(subject, "capacityW", 1)
    hour = _when(subject, "productionStart")
    if hour % HOUR or _when(subject, "productionEnd") != hour + HOUR:
        raise _ProblemError("the production interval must be one whole clock hour")
    start = _integer(subject, "serialStart")
    end = _integer(subject, "serialEnd", start + 1)
    if _integer(subject, "volumeWh", 1) != end - start:
        raise _ProblemError("volumeWh must be serialEnd - serialStart")
    if subject["serial"] != serial_text(device, hour, start, end):
        raise _ProblemError(f"serial must be {serial_text(device, hour, start, end)}")
    if subject["gecEquivalent"] != gec_text(end - start):
        raise _ProblemError(f"gecEquivalent must be {gec_text(end - start)}")
    return device, hour, start, end, split_from


def _evidence_facts(evidence: object) -> tuple[str, int, tuple[tuple[int, str], ...]]:
    """(log origin, meteredWh, readings) of a checked `evidence` member."""
    if not isinstance(evidence, list) or len(evidence) != 1 or not isinstance(evidence[0], dict):
        raise _ProblemError("evidence must be a list of one MeteredProduction object")
    item = evidence[0]
    _fields(item, _EVIDENCE_FIELDS)
    if item["type"] != ["MeteredProduction"]:
        raise _ProblemError('evidence type must be ["MeteredProduction"]')
    readings = item["readings"]
    if not isinstance(readings, list) or not 2 <= len(readings) <= MAX_EVIDENCE_READINGS:
        raise _ProblemError(f"evidence names 2-{MAX_EVIDENCE_READINGS} readings")
    refs: list[tuple[int, str]] = []
    for reading in readings:
        if not isinstance(reading, dict):
            raise _ProblemError("each evidence reading must be an object")
        _fields(reading, frozenset({"index", "leafHash"}))
        refs.append((_integer(reading, "index"), _text(reading, "leafHash", _HEX64)))
    if any(later[0] <= earlier[0] for earlier, later in itertools.pairwise(refs)):
        raise _ProblemError("evidence readings must be in strictly increasing log order")
    return _text(item, "log"), _integer(item, "meteredWh", 1), tuple(refs)


def credential_facts(credential: object, *, verify: bool = True) -> CredentialFacts:
    """Shape and (when `verify`) proof of a certificate credential (docs/certificates.md),
    or `_ProblemError`."""
    if not isinstance(credential, dict):
        raise _ProblemError("credential must be a JSON object")
    _fields(credential, _CREDENTIAL_FIELDS)
    if credential["@context"] != list(CREDENTIAL_CONTEXT):
        raise _ProblemError(f"credential @context must be {list(CREDENTIAL_CONTEXT)}")
    if credential["type"] != list(CREDENTIAL_TYPE):
        raise _ProblemError(f"credential type must be {list(CREDENTIAL_TYPE)}")
    certificate = _text(credential, "id", _CERTIFICATE_ID)
    issuer = _did(credential, "issuer")
    valid_from, valid_until = _when(credential, "validFrom"), _when(credential, "validUntil")
    subject = credential["credentialSubject"]
    device, hour, start, end, split_from = _subject_facts(subject)
    if valid_until <= hour:
        raise _ProblemError("validUntil must be after the production hour")
    log, metered, refs = _evidence_facts(credential["evidence"])
    try:
        if verify:
            verify_credential(credential)
    except CredentialError as exc:
        raise _ProblemError(f"credential proof: {exc}") from None
    return CredentialFacts(
        certificate=certificate,
        issuer=issuer,
        valid_from=valid_from,
        valid_until=valid_until,
        subject=subject,
        device=device,
        producer=subject["producer"],
        energy_source=subject["energySource"],
        hour_start=hour,
        serial_start=start,
        serial_end=end,
        split_from=split_from,
        log=log,
        metered_wh=metered,
        readings=refs,
        evidence=credential["evidence"],
    )


def _checker(kind: str, describe: Callable[[Mapping[str, Any]], str]) -> None:
    def check(context: EntryContext) -> Verdict:
        try:
            return Verdict(PASSED, f"{kind}: {describe(context.entry)}")
        except _ProblemError as exc:
            return Verdict(FAILED, f"{kind}: {exc}")
        except (KeyError, TypeError) as exc:  # a field of the wrong JSON type
            return Verdict(FAILED, f"{kind}: malformed ({exc!r})")

    register_entry_checker(kind, check)


def _describe_issuer(entry: Mapping[str, Any]) -> str:
    return f"the log declares issuer {issuer_declaration(entry)}"


def _describe_device(entry: Mapping[str, Any]) -> str:
    facts = device_facts(entry)
    return (
        f"device {facts.device} ({facts.energy_source}, {facts.capacity_w:,} W, "
        f"{facts.province}) of organisation {facts.organisation}, meters {', '.join(facts.meters)}"
    )


def _describe_approval(entry: Mapping[str, Any]) -> str:
    _fields(entry, _APPROVED_FIELDS)
    device = _text(entry, "device", _DEVICE_ID)
    at = _when(entry, "at")
    return f"device {device} approved at {_iso(at)}, signed by {_signed(entry)}"


def _describe_account(entry: Mapping[str, Any]) -> str:
    _fields(entry, _ACCOUNT_FIELDS)
    _text(entry, "name")
    _when(entry, "openedAt")
    account = _text(entry, "account", _UUID)
    return f"account {account} of organisation {_text(entry, 'organisation', _UUID)}"


_ISSUED_FIELDS = frozenset({"kind", "account", "credential"})


def _describe_issued(entry: Mapping[str, Any]) -> str:
    if "credential" not in entry:
        raise _ProblemError("fields: missing ['credential']")
    facts = credential_facts(entry["credential"])
    # Issuance names the anchored size its production came from; a split child does not.
    split_child = facts.split_from is not None
    _fields(entry, _ISSUED_FIELDS if split_child else _ISSUED_FIELDS | {"anchoredSize"})
    account = _text(entry, "account", _UUID)
    if not split_child:
        anchored = entry["anchoredSize"]
        if type(anchored) is not int or anchored < 0:
            raise _ProblemError("anchoredSize must be a non-negative integer")
    return (
        f"credential {facts.certificate} ({facts.volume_wh:,} Wh, serials {facts.serial}) "
        f"into account {account}; eddsa-jcs-2022 proof by {facts.issuer} verifies"
    )


def _describe_statement(entry: Mapping[str, Any]) -> str:
    facts = statement_facts(entry)
    return f"about {facts['certificate']} at {_iso(facts['at'])}, signed by {facts['issuer']}"


_checker(ISSUER_KEY_KIND, _describe_issuer)
_checker(DEVICE_REGISTERED_KIND, _describe_device)
_checker(DEVICE_APPROVED_KIND, _describe_approval)
_checker(ACCOUNT_OPENED_KIND, _describe_account)
_checker(ISSUED_KIND, _describe_issued)
for _kind in STATEMENT_KINDS:
    _checker(_kind, _describe_statement)


# --------------------------------------------------------------------- bundle checker


class _FailedError(Exception):
    """One certificate check failed; `name` is the check, the message says why."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


@dataclass(slots=True)
class _Outcome:
    """The status walk's result."""

    state: CertificateState
    transfers: int = 0
    holder_organisation: str | None = None
    retirement: dict[str, Any] | None = None
    ended_at: int | None = None
    split_children: int = 0
    statements: int = 0


class _Analysis:
    """One certificate bundle, checked step by step; each step raises `_FailedError` or passes."""

    def __init__(self, context: BundleContext) -> None:
        self.context = context
        self.entries = {entry.index: entry for entry in context.bundle.entries}
        self.origin = context.bundle.checkpoint.split("\n", 1)[0]
        self.declared: dict[str, int] = {}
        for index, entry in context.decoded.items():
            if entry["kind"] == ISSUER_KEY_KIND and self._proven(index):
                self.declared.setdefault(entry["did"], index)

    def _proven(self, index: int) -> bool:
        """Included in the anchored tree and its own entry check passed."""
        check = self.context.entry_checks.get(index)
        return (
            bool(self.context.included.get(index))
            and check is not None
            and (check.status == PASSED)
        )

    def _why_not(self, index: int) -> str:
        if not self.context.included.get(index):
            return f"entry {index} is not proven in the anchored tree (inclusion failed)"
        check = self.context.entry_checks.get(index)
        return f"entry {index} did not verify: {check.message if check else 'no check'}"

    def _require_proven(self, name: str, index: int, what: str) -> None:
        if not self._proven(index):
            raise _FailedError(name, f"{what}: {self._why_not(index)}")

    def _require_issuer(self, name: str, did: str, index: int, what: str) -> None:
        declared = self.declared.get(did)
        if declared is None:
            raise _FailedError(
                name, f"{what} is signed by {did}, which no proven issuer.key/1 declares"
            )
        if declared >= index:
            raise _FailedError(
                name, f"{what} at index {index} precedes its issuer's declaration at {declared}"
            )
        pinned = self.context.trusted_issuer
        if pinned is not None and did != pinned:
            raise _FailedError(name, f"{what} is signed by {did}, not the pinned issuer {pinned}")

    # ---- certificate: which one, and its credential

    def credentials(self) -> tuple[CredentialFacts, list[tuple[int, CredentialFacts]]]:
        """The bundle's certificate and its lineage, root first, as (issued index, facts)."""
        # A changed leaf may also change its kind (and so what the certificate seems to
        # rest on), so a certificate is judged only on a bundle whose every entry is proven.
        for item in self.context.bundle.entries:
            if not self.context.included.get(item.index) or item.index not in (
                self.context.decoded
            ):
                raise _FailedError(
                    "certificate",
                    f"entry {item.index} is not proven in the anchored tree (or not JSON); "
                    "a certificate bundle must prove every entry",
                )
        by_id: dict[str, tuple[int, CredentialFacts]] = {}
        for index, entry in sorted(self.context.decoded.items()):
            if entry["kind"] != ISSUED_KIND:
                continue
            self._require_proven("certificate", index, "a certificate.issued/1 entry")
            # Verified by its entry check (required proven above): shape only here.
            facts = credential_facts(entry["credential"], verify=False)
            if facts.certificate in by_id:
                raise _FailedError(
                    "certificate", f"{facts.certificate} is issued twice in the bundle"
                )
            by_id[facts.certificate] = (index, facts)
        parents = {facts.split_from for _, facts in by_id.values() if facts.split_from}
        leaves = [facts for _, facts in by_id.values() if facts.certificate not in parents]
        if len(leaves) != 1:
            raise _FailedError(
                "certificate",
                f"the bundle must be about one certificate; it holds {len(leaves)} unrelated ones",
            )
        target = leaves[0]
        lineage = [by_id[target.certificate]]
        while lineage[0][1].split_from is not None:
            parent = lineage[0][1].split_from
            if parent not in by_id:
                raise _FailedError(
                    "lineage",
                    f"{lineage[0][1].certificate} was split from {parent}, "
                    "whose credential is not in the bundle",
                )
            lineage.insert(0, by_id[parent])
        if len(lineage) != len(by_id):
            raise _FailedError("certificate", "the bundle holds credentials outside the lineage")
        return target, lineage

    # ---- issuer

    def issuer(self, lineage: Sequence[tuple[int, CredentialFacts]]) -> str:
        for index, facts in lineage:
            self._require_issuer("issuer", facts.issuer, index, f"credential {facts.certificate}")
        did = lineage[-1][1].issuer
        pinned = " (the pinned issuer)" if self.context.trusted_issuer else " (not pinned)"
        return f"issuer {did}{pinned}, declared by the log at index {self.declared[did]}"

    # ---- device

    def device(self, root_index: int, target: CredentialFacts) -> DeviceFacts:
        registered = [
            index
            for index, entry in self.context.decoded.items()
            if entry["kind"] == DEVICE_REGISTERED_KIND and entry.get("device") == target.device
        ]
        if len(registered) != 1:
            raise _FailedError(
                "device", f"the bundle must hold one device.registered/1 of {target.device}"
            )
        (reg_index,) = registered
        self._require_proven("device", reg_index, f"the registration of {target.device}")
        device = device_facts(self.context.decoded[reg_index])
        subject = target.subject
        expected = {
            "producer": device.organisation,
            "energySource": device.energy_source,
            "technology": device.technology,
            "capacityW": device.capacity_w,
            "province": device.province,
            "gridRegion": device.grid_region,
        }
        for name, value in expected.items():
            if subject[name] != value:
                raise _FailedError(
                    "device",
                    f"credential says {name} {subject[name]!r}; the device registration "
                    f"says {value!r}",
                )
        if reg_index >= root_index:
            raise _FailedError(
                "device", "the device was registered after the certificate was issued"
            )
        approvals = [
            index
            for index, entry in self.context.decoded.items()
            if entry["kind"] == DEVICE_APPROVED_KIND and entry.get("device") == target.device
        ]
        if not approvals:
            raise _FailedError(
                "device", f"no device.approved/1 of {target.device} is in the bundle"
            )
        approved = min(approvals)
        self._require_proven("device", approved, f"the approval of {target.device}")
        approval = self.context.decoded[approved]
        self._require_issuer("device", approval["issuer"], approved, "the device approval")
        if not reg_index < approved < root_index:
            raise _FailedError(
                "device",
                f"the approval (index {approved}) must come after the registration "
                f"({reg_index}) and before the issuance ({root_index})",
            )
        return device

    # ---- evidence

    def evidence(self, target: CredentialFacts, device: DeviceFacts) -> tuple[int, dict[str, int]]:
        """(recomputed Wh, readings per meter)."""
        if target.log != self.origin:
            raise _FailedError(
                "evidence", f"evidence is of log {target.log!r}, not {self.origin!r}"
            )
        points: dict[str, list[ReadingPoint]] = {}
        for index, expected_hash in target.readings:
            entry = self.entries.get(index)
            if entry is None or index not in self.context.decoded:
                raise _FailedError("evidence", f"evidence reading {index} is not in the bundle")
            digest = leaf_hash(entry.leaf_bytes())
            if digest.hex() != expected_hash:
                raise _FailedError("evidence", f"entry {index}'s leaf hash is not the credential's")
            value = self.context.decoded[index]
            if value["kind"] != READING_KIND:
                raise _FailedError("evidence", f"evidence entry {index} is a {value['kind']}")
            self._require_proven("evidence", index, f"evidence reading {index}")
            payload = value["payload"]
            meter = payload["meter"]
            if meter not in device.meters:
                raise _FailedError(
                    "evidence", f"reading {index} is of meter {meter}, not the device's"
                )
            moment = _epoch_seconds(payload["time"], "time")
            points.setdefault(meter, []).append(
                ReadingPoint(meter, index, digest, moment, payload["exportWh"], False)
            )
        for meter, series in points.items():
            series.sort(key=lambda point: point.time)
            for earlier, later in itertools.pairwise(series):
                if later.time <= earlier.time or later.export_wh < earlier.export_wh:
                    raise _FailedError("evidence", f"readings of meter {meter} do not run forward")
        scan = hourly_production(points, target.hour_start, target.hour_start + HOUR)
        hour = scan.hours.get(target.hour_start)
        metered = hour.metered_wh if hour is not None else 0
        if metered != target.metered_wh:
            raise _FailedError(
                "evidence",
                f"the readings give {metered:,} Wh in the hour; the credential says "
                f"{target.metered_wh:,} Wh metered",
            )
        used = {point.index for point in hour.evidence} if hour is not None else set()
        if used != {index for index, _ in target.readings}:
            raise _FailedError(
                "evidence", "the credential names readings that do not bound the hour"
            )
        if target.serial_end > metered:
            raise _FailedError(
                "evidence",
                f"serials run to {target.serial_end:,} but only {metered:,} Wh were metered",
            )
        return metered, {meter: len(series) for meter, series in points.items()}

    # ---- lineage

    def lineage(self, lineage: Sequence[tuple[int, CredentialFacts]]) -> str:
        if len(lineage) == 1:
            return "a root certificate (not split from another)"
        for (parent_index, parent), (child_index, child) in itertools.pairwise(lineage):
            splits = [
                index
                for index, entry in self.context.decoded.items()
                if entry["kind"] == SPLIT_KIND and entry.get("certificate") == parent.certificate
            ]
            if len(splits) != 1:
                raise _FailedError(
                    "lineage", f"the bundle must hold the one split of {parent.certificate}"
                )
            split_index = splits[0]
            self._require_proven("lineage", split_index, f"the split of {parent.certificate}")
            parts = statement_facts(self.context.decoded[split_index], verify=False)["children"]
            if (child.certificate, child.serial_start, child.serial_end) not in parts:
                raise _FailedError(
                    "lineage", f"the split of {parent.certificate} did not make {child.certificate}"
                )
            if not parent_index < split_index < child_index:
                raise _FailedError(
                    "lineage", "issuance, split and re-issuance are out of log order"
                )
            same = {
                name: value
                for name, value in child.subject.items()
                if name
                not in {
                    "serialStart",
                    "serialEnd",
                    "volumeWh",
                    "serial",
                    "gecEquivalent",
                    "splitFrom",
                }
            }
            parent_same = {name: parent.subject[name] for name in same if name in parent.subject}
            if same != parent_same or child.evidence != parent.evidence:
                raise _FailedError(
                    "lineage",
                    f"{child.certificate} does not repeat its parent's subject and evidence",
                )
            if child.valid_until != parent.valid_until:
                raise _FailedError(
                    "lineage", f"{child.certificate} changed the parent's validUntil"
                )
        chain = " ← ".join(facts.certificate for _, facts in reversed(lineage))
        return f"split lineage proven: {chain}"

    # ---- status

    def status(self, lineage: Sequence[tuple[int, CredentialFacts]]) -> _Outcome:
        ids = [facts.certificate for _, facts in lineage]
        root = lineage[0][1]
        statements = sorted(
            (index, entry)
            for index, entry in self.context.decoded.items()
            if entry["kind"] in STATEMENT_KINDS and entry.get("certificate") in ids
        )
        state = CertificateState(
            certificate=root.certificate,
            device=root.device,
            hour_start=root.hour_start,
            serial_start=root.serial_start,
            serial_end=root.serial_end,
            account=str(self.context.decoded[lineage[0][0]]["account"]),
            valid_until=root.valid_until,
        )
        outcome = _Outcome(state)
        position = 0
        for index, entry in statements:
            kind = entry["kind"]
            self._require_proven("status", index, f"the {kind} statement")
            facts = statement_facts(entry, verify=False)
            self._require_issuer("status", facts["issuer"], index, f"the {kind} statement")
            if index < lineage[position][0]:
                raise _FailedError("status", f"statement {index} precedes the issuance it concerns")
            if facts["certificate"] != state.certificate:
                raise _FailedError(
                    "status",
                    f"statement {index} concerns {facts['certificate']}, which holds nothing then",
                )
            outcome.statements += 1
            try:
                state, position = _apply(
                    kind, facts, state, outcome=outcome, lineage=lineage, position=position
                )
            except RuleViolationError as exc:
                raise _FailedError(
                    "status", f"statement {index} breaks rule {exc.rule}: {exc}"
                ) from None
        if state.certificate != ids[-1]:
            raise _FailedError("status", "the bundle lacks the split that made this certificate")
        outcome.state = state
        return outcome


def _status_check(outcome: _Outcome, now: int) -> Check:
    state = outcome.state
    if state.status is CertificateStatus.WITHDRAWN:
        assert outcome.ended_at is not None
        return Check(
            "status", FAILED, f"withdrawn by the issuer on {_iso(outcome.ended_at)}: {state.reason}"
        )
    return Check("status", PASSED, _status_words(outcome, now))


def _status_words(outcome: _Outcome, now: int) -> str:
    state = outcome.state
    if state.status is CertificateStatus.RETIRED:
        facts = outcome.retirement
        assert facts is not None
        return (
            f"retired to {facts['beneficiary']} for {facts['purpose']}, "
            f"{_day(facts['periodStart'])} to {_day(facts['periodEnd'])}, "
            f"{facts['province']} ({facts['gridRegion']} grid), on {_iso(facts['at'])}"
        )
    if state.status is CertificateStatus.EXPIRED:
        return f"expired on {_iso(outcome.ended_at or state.valid_until)}"
    if state.status is CertificateStatus.SPLIT:
        return (
            f"split into {outcome.split_children} certificates on "
            f"{_iso(outcome.ended_at or 0)}; it holds nothing itself now"
        )
    if now >= state.valid_until:
        return f"expired: valid until {_iso(state.valid_until)}, which has passed"
    if outcome.transfers:
        times = "once" if outcome.transfers == 1 else f"{outcome.transfers} times"
        return (
            f"active, held by account {state.account} of organisation "
            f"{outcome.holder_organisation} (transferred {times}); valid until "
            f"{_iso(state.valid_until)}"
        )
    return f"active, held by account {state.account}; valid until {_iso(state.valid_until)}"


def _meters_words(per_meter: Mapping[str, int]) -> str:
    count = sum(per_meter.values())
    meters = ", ".join(sorted(per_meter))
    noun = "meter" if len(per_meter) == 1 else "meters"
    return f"{count} signed readings of {noun} {meters}"


def check_certificate(context: BundleContext) -> BundleFindings:
    """The bundle checker "certificate" (see the module docstring)."""
    if not any(entry["kind"] == ISSUED_KIND for entry in context.decoded.values()):
        return BundleFindings()
    analysis = _Analysis(context)
    checks: list[Check] = []
    step = "certificate"
    try:
        target, lineage = analysis.credentials()
        checks.append(
            Check(
                "certificate",
                PASSED,
                f"credential {target.certificate} is proven at index {lineage[-1][0]}; its "
                f"eddsa-jcs-2022 proof verifies",
            )
        )
        step = "issuer"
        checks.append(Check("issuer", PASSED, analysis.issuer(lineage)))
        step = "device"
        device = analysis.device(lineage[0][0], target)
        checks.append(
            Check(
                "device",
                PASSED,
                f"device {device.device} of organisation {device.organisation} registered and "
                "approved by the issuer before issuance",
            )
        )
        step = "evidence"
        metered, per_meter = analysis.evidence(target, device)
        checks.append(
            Check(
                "evidence",
                PASSED,
                f"{_meters_words(per_meter)} show {metered:,} Wh metered in the hour, "
                f"covering serials up to {target.serial_end:,}",
            )
        )
        step = "lineage"
        checks.append(Check("lineage", PASSED, analysis.lineage(lineage)))
        step = "status"
        outcome = analysis.status(lineage)
    except _FailedError as failed:
        checks.append(Check(failed.name, FAILED, str(failed)))
        return BundleFindings(tuple(checks))
    except _ProblemError as problem:  # an entry that failed its own check, read again here
        checks.append(Check(step, FAILED, str(problem)))
        return BundleFindings(tuple(checks))
    status = _status_check(outcome, context.now)
    checks.append(status)
    subject = target.subject
    hour = target.hour_start
    proves = (
        f"certificate {target.certificate} proves {target.volume_wh:,} Wh "
        f"({gec_text(target.volume_wh)} GEC) of {target.energy_source} electricity from device "
        f"{target.device} ({subject['province']}, {subject['gridRegion']} grid), produced "
        f"{_day(hour)} {time.strftime('%H:%M', time.gmtime(hour))}\u2013"
        f"{time.strftime('%H:%M', time.gmtime(hour + HOUR))} UTC, serials {target.serial}"
    )
    if status.status == FAILED:
        summary = (f"certificate {target.certificate} is WITHDRAWN: {status.message}",)
    else:
        summary = (
            f"{proves}; {_meters_words(per_meter)} show {metered:,} Wh metered; "
            f"{status.message}; as of log size {context.bundle.anchor.size}",
        )
    return BundleFindings(tuple(checks), summary)


register_bundle_checker("certificate", check_certificate)


def _apply(
    kind: str,
    facts: Mapping[str, Any],
    state: CertificateState,
    *,
    outcome: _Outcome,
    lineage: Sequence[tuple[int, CredentialFacts]],
    position: int,
) -> tuple[CertificateState, int]:
    """One statement through `ledger.certificates.rules`: (next state, lineage position)."""
    at = facts["at"]
    if kind == TRANSFERRED_KIND:
        outcome.transfers += 1
        outcome.holder_organisation = facts["toOrganisation"]
        return rules.transfer(state, from_account=facts["from"], to_account=facts["to"], at=at), (
            position
        )
    if kind == SPLIT_KIND:
        parent, kids = rules.split(
            state, children=facts["children"], account=facts["account"], at=at
        )
        if position + 1 == len(lineage):  # the bundle's own certificate was split
            outcome.split_children = len(kids)
            outcome.ended_at = at
            return parent, position
        following = lineage[position + 1][1].certificate
        for kid in kids:
            if kid.certificate == following:
                return kid, position + 1
        raise RuleViolationError("split-partition", f"the split did not make {following}")
    outcome.ended_at = at
    if kind == RETIRED_KIND:
        outcome.retirement = dict(facts)
        return rules.retire(
            state, account=facts["account"], beneficiary=facts["beneficiary"], at=at
        ), position
    if kind == EXPIRED_KIND:
        return rules.expire(state, at=at), position
    return rules.withdraw(state, reason=facts["reason"], at=at), position
