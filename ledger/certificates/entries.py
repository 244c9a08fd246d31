"""The certificate entries of the log: their kinds, formats and strict parsers.

`docs/certificates.md` fixes these formats. The registry writes the entries
(`ledger.certificates.devices`, `.issuance`, `.lifecycle`, `ledger.credentials.issuer`); the
offline verifier (`attestation.certificates.check`) and the audit replay read them back with
the parsers here, so a well-formed certificate entry is defined once. Every parser raises
`EntryFormatError` naming the member at fault; `verify=True` also checks the signature or
the credential proof (whether the signer is a declared issuer is the caller's business).
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ledger.certificates import rules
from ledger.certificates.rules import (
    HOUR,
    RetirementPurpose,
    gec_text,
    serial_text,
)
from ledger.credentials.data_integrity import (
    CredentialError,
    StatementError,
    verify_credential,
    verify_statement,
)
from ledger.credentials.entries import did_key_member
from ledger.log.entry_fields import (
    HEX64_PATTERN,
    UUID_PATTERN,
    EntryFormatError,
    choice,
    integer,
    require_fields,
    text,
    utc_time,
)
from ledger.meters.entries import PROVINCE_PATTERN, EnergySource, GridRegion

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

MAX_EVIDENCE_READINGS = 512
"""Per certificate: 32 meters at 15-minute readings, or 8 meters read every minute."""
MAX_DEVICE_METERS = 32
MAX_SPLIT_CHILDREN = rules.MAX_SPLIT_PARTS

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_CERTIFICATE_ID = re.compile(
    r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII
)
_DEVICE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}", re.ASCII)
_SIGNED = frozenset({"issuer", "sig"})


CREDENTIAL_CONTEXT = (
    "https://www.w3.org/ns/credentials/v2",
    "https://w3id.org/carbonledger/certificate/v1",
)
CREDENTIAL_TYPE = ("VerifiableCredential", "GranularCertificateCredential")


# ------------------------------------------------------------------------- entry formats

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


def device_facts(entry: Mapping[str, Any]) -> DeviceFacts:
    require_fields(entry, _DEVICE_FIELDS)
    meters = entry["meters"]
    if (
        not isinstance(meters, list)
        or not 1 <= len(meters) <= MAX_DEVICE_METERS
        or not all(isinstance(meter, str) and meter for meter in meters)
    ):
        raise EntryFormatError(f"meters must be a list of 1-{MAX_DEVICE_METERS} meter ids")
    if meters != sorted(set(meters)):
        raise EntryFormatError("meters must be sorted and listed once each")
    commissioned = text(entry, "commissioningDate", _DATE)
    try:
        time.strptime(commissioned, "%Y-%m-%d")
    except ValueError:
        raise EntryFormatError(f"commissioningDate {commissioned!r} is not a valid date") from None
    text(entry, "name")
    utc_time(entry, "registeredAt")
    return DeviceFacts(
        device=text(entry, "device", _DEVICE_ID),
        organisation=text(entry, "organisation", UUID_PATTERN),
        energy_source=choice(entry, "energySource", EnergySource),
        technology=text(entry, "technology"),
        capacity_w=integer(entry, "capacityW", 1),
        province=text(entry, "province", PROVINCE_PATTERN),
        grid_region=choice(entry, "gridRegion", GridRegion),
        meters=tuple(meters),
    )


def _signed(entry: Mapping[str, Any]) -> str:
    try:
        return verify_statement(entry)
    except StatementError as exc:
        raise EntryFormatError(str(exc)) from None


def statement_facts(entry: Mapping[str, Any], *, verify: bool = True) -> dict[str, Any]:
    """A certificate statement's fields, checked for shape and (when `verify`) signature;
    whether the signer is a declared issuer is the bundle check's business."""
    kind = entry["kind"]
    require_fields(entry, _STATEMENT_FIELDS[kind])
    facts: dict[str, Any] = {
        "certificate": text(entry, "certificate", _CERTIFICATE_ID),
        "at": utc_time(entry, "at"),
    }
    if kind == SPLIT_KIND:
        facts["account"] = text(entry, "account", UUID_PATTERN)
        children = entry["children"]
        if not isinstance(children, list) or not 2 <= len(children) <= MAX_SPLIT_CHILDREN:
            raise EntryFormatError(f"children must be a list of 2-{MAX_SPLIT_CHILDREN} parts")
        parts = []
        for child in children:
            if not isinstance(child, dict):
                raise EntryFormatError("each child must be an object")
            require_fields(child, frozenset({"certificate", "serialStart", "serialEnd"}))
            start = integer(child, "serialStart")
            end = integer(child, "serialEnd", start + 1)
            parts.append((text(child, "certificate", _CERTIFICATE_ID), start, end))
        facts["children"] = parts
    elif kind == TRANSFERRED_KIND:
        facts["from"] = text(entry, "from", UUID_PATTERN)
        facts["to"] = text(entry, "to", UUID_PATTERN)
        facts["toOrganisation"] = text(entry, "toOrganisation", UUID_PATTERN)
    elif kind == RETIRED_KIND:
        facts["account"] = text(entry, "account", UUID_PATTERN)
        facts["beneficiary"] = text(entry, "beneficiary", UUID_PATTERN)
        facts["purpose"] = choice(entry, "purpose", RetirementPurpose)
        facts["periodStart"] = utc_time(entry, "reportingPeriodStart")
        facts["periodEnd"] = utc_time(entry, "reportingPeriodEnd")
        if facts["periodEnd"] <= facts["periodStart"]:
            raise EntryFormatError("the reporting period must end after it starts")
        facts["province"] = text(entry, "consumptionProvince", PROVINCE_PATTERN)
        facts["gridRegion"] = choice(entry, "consumptionGridRegion", GridRegion)
    elif kind == WITHDRAWN_KIND:
        facts["reason"] = text(entry, "reason")
    facts["issuer"] = _signed(entry) if verify else did_key_member(entry, "issuer")
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
        raise EntryFormatError("credentialSubject must be an object")
    split_from = None
    if "splitFrom" in subject:
        require_fields(subject, _SUBJECT_FIELDS | {"splitFrom"})
        split_from = text(subject, "splitFrom", _CERTIFICATE_ID)
    else:
        require_fields(subject, _SUBJECT_FIELDS)
    device = text(subject, "device", _DEVICE_ID)
    if subject["id"] != f"urn:carbonledger:device:{device}":
        raise EntryFormatError(f"credentialSubject.id must be urn:carbonledger:device:{device}")
    if subject["type"] != "EnergyProductionCertificate":
        raise EntryFormatError("credentialSubject.type must be EnergyProductionCertificate")
    for name in ("technology", "producer"):
        text(subject, name)
    choice(subject, "energySource", EnergySource)
    choice(subject, "gridRegion", GridRegion)
    text(subject, "province", PROVINCE_PATTERN)
    integer(subject, "capacityW", 1)
    hour = utc_time(subject, "productionStart")
    if hour % HOUR or utc_time(subject, "productionEnd") != hour + HOUR:
        raise EntryFormatError("the production interval must be one whole clock hour")
    start = integer(subject, "serialStart")
    end = integer(subject, "serialEnd", start + 1)
    if integer(subject, "volumeWh", 1) != end - start:
        raise EntryFormatError("volumeWh must be serialEnd - serialStart")
    if subject["serial"] != serial_text(device, hour, start, end):
        raise EntryFormatError(f"serial must be {serial_text(device, hour, start, end)}")
    if subject["gecEquivalent"] != gec_text(end - start):
        raise EntryFormatError(f"gecEquivalent must be {gec_text(end - start)}")
    return device, hour, start, end, split_from


def _evidence_facts(evidence: object) -> tuple[str, int, tuple[tuple[int, str], ...]]:
    """(log origin, meteredWh, readings) of a checked `evidence` member."""
    if not isinstance(evidence, list) or len(evidence) != 1 or not isinstance(evidence[0], dict):
        raise EntryFormatError("evidence must be a list of one MeteredProduction object")
    item = evidence[0]
    require_fields(item, _EVIDENCE_FIELDS)
    if item["type"] != ["MeteredProduction"]:
        raise EntryFormatError('evidence type must be ["MeteredProduction"]')
    readings = item["readings"]
    if not isinstance(readings, list) or not 2 <= len(readings) <= MAX_EVIDENCE_READINGS:
        raise EntryFormatError(f"evidence names 2-{MAX_EVIDENCE_READINGS} readings")
    refs: list[tuple[int, str]] = []
    for reading in readings:
        if not isinstance(reading, dict):
            raise EntryFormatError("each evidence reading must be an object")
        require_fields(reading, frozenset({"index", "leafHash"}))
        refs.append((integer(reading, "index"), text(reading, "leafHash", HEX64_PATTERN)))
    if any(later[0] <= earlier[0] for earlier, later in itertools.pairwise(refs)):
        raise EntryFormatError("evidence readings must be in strictly increasing log order")
    return text(item, "log"), integer(item, "meteredWh", 1), tuple(refs)


def credential_facts(credential: object, *, verify: bool = True) -> CredentialFacts:
    """Shape and (when `verify`) proof of a certificate credential (docs/certificates.md),
    or `EntryFormatError`."""
    if not isinstance(credential, dict):
        raise EntryFormatError("credential must be a JSON object")
    require_fields(credential, _CREDENTIAL_FIELDS)
    if credential["@context"] != list(CREDENTIAL_CONTEXT):
        raise EntryFormatError(f"credential @context must be {list(CREDENTIAL_CONTEXT)}")
    if credential["type"] != list(CREDENTIAL_TYPE):
        raise EntryFormatError(f"credential type must be {list(CREDENTIAL_TYPE)}")
    certificate = text(credential, "id", _CERTIFICATE_ID)
    issuer = did_key_member(credential, "issuer")
    valid_from, valid_until = utc_time(credential, "validFrom"), utc_time(credential, "validUntil")
    subject = credential["credentialSubject"]
    device, hour, start, end, split_from = _subject_facts(subject)
    if valid_until <= hour:
        raise EntryFormatError("validUntil must be after the production hour")
    log, metered, refs = _evidence_facts(credential["evidence"])
    try:
        if verify:
            verify_credential(credential)
    except CredentialError as exc:
        raise EntryFormatError(f"credential proof: {exc}") from None
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


@dataclass(frozen=True, slots=True)
class ApprovalFacts:
    device: str
    at: int
    issuer: str


def approval_facts(entry: Mapping[str, Any], *, verify: bool = True) -> ApprovalFacts:
    """A `device.approved/1` statement (signed by the issuer)."""
    require_fields(entry, _APPROVED_FIELDS)
    return ApprovalFacts(
        device=text(entry, "device", _DEVICE_ID),
        at=utc_time(entry, "at"),
        issuer=_signed(entry) if verify else did_key_member(entry, "issuer"),
    )


@dataclass(frozen=True, slots=True)
class AccountFacts:
    account: str
    organisation: str
    opened_at: int


def account_facts(entry: Mapping[str, Any]) -> AccountFacts:
    """An `account.opened/1` entry."""
    require_fields(entry, _ACCOUNT_FIELDS)
    text(entry, "name")
    return AccountFacts(
        account=text(entry, "account", UUID_PATTERN),
        organisation=text(entry, "organisation", UUID_PATTERN),
        opened_at=utc_time(entry, "openedAt"),
    )


_ISSUED_FIELDS = frozenset({"kind", "account", "credential"})


@dataclass(frozen=True, slots=True)
class IssuedFacts:
    account: str
    anchored_size: int | None
    """The anchored size the production came from; None for a split child (decision 48)."""
    credential: CredentialFacts


def issued_facts(entry: Mapping[str, Any], *, verify: bool = True) -> IssuedFacts:
    """A `certificate.issued/1` entry: {account, anchoredSize (issuance only), credential}."""
    if "credential" not in entry:
        raise EntryFormatError("fields: missing ['credential']")
    credential = credential_facts(entry["credential"], verify=verify)
    split_child = credential.split_from is not None
    require_fields(entry, _ISSUED_FIELDS if split_child else _ISSUED_FIELDS | {"anchoredSize"})
    return IssuedFacts(
        account=text(entry, "account", UUID_PATTERN),
        anchored_size=None if split_child else integer(entry, "anchoredSize"),
        credential=credential,
    )
