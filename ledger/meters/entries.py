"""The meter entries of the log: their kinds, and their strict parsers for every reader.

The registry writes these entries (`ledger.meters.registration`, `ledger.meters.ingest`);
the offline verifier (`attestation.meters.check`) and the audit replay read them back with
the parsers here, so there is one definition of what a well-formed meter entry is. The
values a `meter.registered/1` entry may hold (roles, grid regions, energy sources, the
province pattern, the limits) are defined here too: the verifier needs them without the
storage layer that `ledger.meters.registration` brings.

| kind                  | members                                                             |
| --------------------- | ------------------------------------------------------------------- |
| `meter.registered/1`  | meter, organisation, role, province, gridRegion, registeredAt,      |
|                       | energySource (generation), capacityW (when known)                   |
| `meter.key/1`         | meter, keyId, alg, publicKey (base64 SPKI), organisation, validFrom |
| `meter.key-revoked/1` | meter, keyId, organisation, revokedFrom                             |
| `reading/1`           | keyId, alg, payload, sig (DESIGN §4.3)                              |
| `reading.ocmf/1`      | keyId, payload (the record's mapping), ocmf (the record verbatim)   |
| `reading/2`           | as `reading/1`, and prev: the meter's previous reading              |
| `reading.ocmf/2`      | as `reading.ocmf/1`, and prev                                       |
| `reading.equivocation/1` | meter, seq, accepted (the accepted reading's index and leaf     |
|                       | hash), keyId, conflicting (the other signed envelope or OCMF text)   |

`prev` is `{"index": <log index>, "leafHash": "<hex SHA-256 leaf hash>"}` of the meter's
previous accepted reading, or null for its first (decision 93): a chain per meter, so a
verifier holding consecutive readings can tell that none was left out between them. The
version-1 kinds stay readable and verifiable; the registry writes only version 2.

`parse_reading` reads every reading kind and checks that its leaf spells the signed bytes
exactly (`check_reading_bytes`, decision 94); `verify_reading` checks its signature under a
meter key (OCMF from the record's own signed bytes) and that the `payload` is the record's
mapping.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm

from ledger.log.canonical import CanonicalizationError, canonical_entry
from ledger.log.entry_fields import (
    EntryFormatError,
    choice,
    integer,
    require_fields,
    require_object,
    text,
    utc_time,
)
from ledger.meters.ocmf import OcmfError, OcmfRecord, ocmf_mapping, parse_ocmf, verify_ocmf
from ledger.meters.readings import (
    ReadingFormatError,
    ReadingPayload,
    ReadingSignatureError,
    SignedReading,
    key_id,
    load_meter_public_key,
    parse_envelope,
    parse_payload,
    verify_signed_reading,
)
from ledger.times import format_utc

MAX_CAPACITY_W = 10**12
"""1 TW: far above any single metering point, and products with seconds stay in int64."""
PROVINCE_PATTERN = re.compile(r"^[A-Z]{2}-[A-Z0-9]{1,3}$")
"""ISO 3166-2 subdivision codes, e.g. CN-JS (Jiangsu): language-neutral and stable."""
MAX_PUBLIC_KEY_BYTES = 512


class MeterRole(StrEnum):
    GENERATION = "generation"
    CONSUMPTION = "consumption"
    BIDIRECTIONAL = "bidirectional"


class GridRegion(StrEnum):
    """China's regional grids, as used by the national emission-factor announcements."""

    NORTH = "north"  # 华北
    NORTHEAST = "northeast"  # 东北
    EAST = "east"  # 华东
    CENTRAL = "central"  # 华中
    NORTHWEST = "northwest"  # 西北
    SOUTH = "south"  # 南方
    SOUTHWEST = "southwest"  # 西南


class EnergySource(StrEnum):
    SOLAR = "solar"
    WIND = "wind"
    HYDRO = "hydro"
    BIOMASS = "biomass"
    GEOTHERMAL = "geothermal"
    NUCLEAR = "nuclear"
    FOSSIL = "fossil"
    STORAGE = "storage"
    OTHER = "other"


METER_REGISTERED_KIND = "meter.registered/1"
METER_KEY_KIND = "meter.key/1"
METER_KEY_REVOKED_KIND = "meter.key-revoked/1"
READING_KIND = "reading/1"
OCMF_READING_KIND = "reading.ocmf/1"
READING_V2_KIND = "reading/2"
OCMF_READING_V2_KIND = "reading.ocmf/2"
EQUIVOCATION_KIND = "reading.equivocation/1"
ENVELOPE_READING_KINDS = frozenset({READING_KIND, READING_V2_KIND})
OCMF_READING_KINDS = frozenset({OCMF_READING_KIND, OCMF_READING_V2_KIND})
CHAINED_READING_KINDS = frozenset({READING_V2_KIND, OCMF_READING_V2_KIND})
"""The reading kinds that name their meter's previous reading."""
READING_KINDS = ENVELOPE_READING_KINDS | OCMF_READING_KINDS

_KEY_FIELDS = frozenset({"kind", "meter", "keyId", "alg", "publicKey", "organisation", "validFrom"})
_REVOKED_FIELDS = frozenset({"kind", "meter", "keyId", "organisation", "revokedFrom"})
_READING_FIELDS = frozenset({"kind", "keyId", "alg", "payload", "sig"})
_OCMF_FIELDS = frozenset({"kind", "keyId", "payload", "ocmf"})
_PREV_FIELDS = frozenset({"index", "leafHash"})
_EQUIVOCATION_FIELDS = frozenset({"kind", "meter", "seq", "accepted", "keyId", "conflicting"})
_LEAF_HASH_PATTERN = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class MeterKeyEntry:
    """What a well-formed `meter.key/1` entry registers."""

    key_id: str
    meter: str
    alg: str
    spki: bytes
    organisation: str
    valid_from: int


@dataclass(frozen=True, slots=True)
class KeyRevocationEntry:
    key_id: str
    meter: str
    organisation: str
    revoked_from: int


def parse_meter_key(entry: Mapping[str, Any]) -> MeterKeyEntry:
    """A `meter.key/1` entry whose key id, algorithm and key agree; else `EntryFormatError`."""
    require_fields(entry, _KEY_FIELDS)
    kid, alg = text(entry, "keyId"), text(entry, "alg")
    try:
        spki = base64.b64decode(text(entry, "publicKey"), validate=True)
        key_alg, _ = load_meter_public_key(spki)
    # UnsupportedAlgorithm: valid DER naming an algorithm `cryptography` does not know
    # (ledger.meters.readings lets it through).
    except (binascii.Error, ReadingFormatError, UnsupportedAlgorithm) as exc:
        raise EntryFormatError(f"publicKey: {exc}") from exc
    if key_alg != alg:
        raise EntryFormatError(f"alg says {alg} but the key is an {key_alg} key")
    if key_id(spki) != kid:
        raise EntryFormatError(f"keyId {kid} is not the id of the key ({key_id(spki)})")
    return MeterKeyEntry(
        kid,
        text(entry, "meter"),
        alg,
        spki,
        text(entry, "organisation"),
        utc_time(entry, "validFrom"),
    )


def parse_key_revocation(entry: Mapping[str, Any]) -> KeyRevocationEntry:
    require_fields(entry, _REVOKED_FIELDS)
    return KeyRevocationEntry(
        text(entry, "keyId"),
        text(entry, "meter"),
        text(entry, "organisation"),
        utc_time(entry, "revokedFrom"),
    )


def parse_reading_entry(entry: Mapping[str, Any]) -> tuple[str, SignedReading]:
    """(key id, the signed reading) of a `reading/1` entry; the signature is not checked."""
    require_fields(entry, _READING_FIELDS)
    kid = text(entry, "keyId")
    try:
        reading = parse_envelope(
            {"payload": entry["payload"], "alg": entry["alg"], "sig": entry["sig"]}
        )
    except ReadingFormatError as exc:
        raise EntryFormatError(str(exc)) from exc
    return kid, reading


# --------------------------------------------------------------------------- every reading kind


class ReadingVerificationError(ValueError):
    """A reading entry's signature, or its OCMF mapping, does not hold."""


@dataclass(frozen=True, slots=True)
class PreviousReading:
    """The meter's previous accepted reading, as a `reading/2` names it."""

    index: int
    leaf_hash: bytes

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "leafHash": self.leaf_hash.hex()}


@dataclass(frozen=True, slots=True)
class ReadingEntry:
    """Any reading entry, parsed; the signature is checked by `verify_reading`."""

    kind: str
    key_id: str
    payload: ReadingPayload
    signed: SignedReading | None
    """The envelope of a `reading/*` entry; None for OCMF."""
    ocmf: OcmfRecord | None
    """The record of a `reading.ocmf/*` entry, parsed from its verbatim text."""
    prev: PreviousReading | None
    """The link of a chained kind (None: the meter's first reading, or a version-1 kind)."""

    @property
    def chained(self) -> bool:
        return self.kind in CHAINED_READING_KINDS

    @property
    def time(self) -> int:
        return int(self.payload.time.timestamp())


def _record_text(entry: Mapping[str, Any]) -> str:
    """The verbatim OCMF record (longer than `text` allows; `parse_ocmf` bounds its size)."""
    value = entry["ocmf"]
    if not isinstance(value, str):
        raise EntryFormatError("ocmf must be the record as a string")
    return value


def _previous(entry: Mapping[str, Any]) -> PreviousReading | None:
    value = entry["prev"]
    if value is None:
        return None
    link = require_object(value, "prev")
    require_fields(link, _PREV_FIELDS)
    digest = text(link, "leafHash", _LEAF_HASH_PATTERN)
    return PreviousReading(integer(link, "index"), bytes.fromhex(digest))


def parse_reading(entry: Mapping[str, Any], leaf: bytes | None = None) -> ReadingEntry:
    """Any reading kind; `EntryFormatError` unless it is well formed.

    With `leaf`, also the byte check of decision 94: the leaf must be exactly the JCS of the
    entry, so the `payload` it carries is, byte for byte, JCS(payload) — what the meter
    signed — and one signed reading has one leaf spelling (no second leaf for the same
    reading through a re-spelt number, an escape or a reordered member).
    """
    kind = entry.get("kind")
    chained = kind in CHAINED_READING_KINDS
    if kind in ENVELOPE_READING_KINDS:
        require_fields(entry, _READING_FIELDS | ({"prev"} if chained else frozenset()))
        kid = text(entry, "keyId")
        try:
            signed: SignedReading | None = parse_envelope(
                {"payload": entry["payload"], "alg": entry["alg"], "sig": entry["sig"]}
            )
        except ReadingFormatError as exc:
            raise EntryFormatError(str(exc)) from exc
        assert signed is not None
        payload, record = signed.payload, None
    elif kind in OCMF_READING_KINDS:
        require_fields(entry, _OCMF_FIELDS | ({"prev"} if chained else frozenset()))
        kid = text(entry, "keyId")
        try:
            payload = parse_payload(entry["payload"])
            record = parse_ocmf(_record_text(entry))
        except (ReadingFormatError, OcmfError) as exc:
            raise EntryFormatError(str(exc)) from exc
        signed = None
    else:
        raise EntryFormatError(f"{kind!r} is not a reading kind")
    parsed = ReadingEntry(
        str(kind), kid, payload, signed, record, _previous(entry) if chained else None
    )
    if leaf is not None:
        check_reading_bytes(entry, leaf)
    return parsed


def check_reading_bytes(entry: Mapping[str, Any], leaf: bytes) -> None:
    """The leaf is the one JCS spelling of its entry (decision 94); else `EntryFormatError`."""
    try:
        canonical = canonical_entry(entry)
    except (CanonicalizationError, ValueError, TypeError) as exc:
        raise EntryFormatError(f"the reading cannot be canonicalised: {exc}") from exc
    if canonical != leaf:
        raise EntryFormatError(
            "the leaf is not the JCS spelling of its reading, so its payload is not the "
            "signed bytes"
        )


def verify_reading(reading: ReadingEntry, spki: bytes) -> None:
    """The reading is signed by the meter key `spki`; an OCMF payload is its record's mapping.

    Raises `ReadingVerificationError` naming what failed.
    """
    try:
        if reading.signed is not None:
            verify_signed_reading(reading.signed, spki)
            return
        assert reading.ocmf is not None
        verify_ocmf(reading.ocmf, spki)
        mapping = ocmf_mapping(reading.ocmf)
    except (ReadingSignatureError, ReadingFormatError, OcmfError, UnsupportedAlgorithm) as exc:
        raise ReadingVerificationError(str(exc)) from exc
    payload = reading.payload
    claimed = (payload.meter, payload.seq, reading.time, payload.import_wh, payload.export_wh)
    derived = (mapping.meter, mapping.seq, mapping.time, mapping.import_wh, mapping.export_wh)
    if claimed != derived:
        raise ReadingVerificationError(
            f"the payload (meter, seq, time, importWh, exportWh) {claimed} is not the OCMF "
            f"record's own {derived}"
        )


@dataclass(frozen=True, slots=True)
class EquivocationEntry:
    """A `reading.equivocation/1`: two different readings a meter signed for one seq."""

    meter: str
    seq: int
    accepted: PreviousReading
    """The reading the log accepted for the seq (index and leaf hash)."""
    accepted_reading: ReadingEntry
    conflicting: ReadingEntry
    key_id: str
    """The key that signed the conflicting reading."""


def _signed_reading(value: object, kid: str, what: str) -> ReadingEntry:
    """An envelope `{payload, alg, sig}` or `{"ocmf": record}` as a (version-1) reading."""
    body = require_object(value, what)
    if set(body) == {"ocmf"}:
        try:
            record = parse_ocmf(_record_text(body))
            mapping = ocmf_mapping(record)
            payload = parse_payload(
                {
                    "meter": mapping.meter,
                    "seq": mapping.seq,
                    "time": format_utc(mapping.time),
                    "importWh": mapping.import_wh,
                    "exportWh": mapping.export_wh,
                }
            )
        except (OcmfError, ReadingFormatError) as exc:
            raise EntryFormatError(f"{what}: {exc}") from exc
        return ReadingEntry(OCMF_READING_KIND, kid, payload, None, record, None)
    try:
        signed = parse_envelope(body)
    except ReadingFormatError as exc:
        raise EntryFormatError(f"{what}: {exc}") from exc
    return ReadingEntry(READING_KIND, kid, signed.payload, signed, None, None)


def parse_equivocation(entry: Mapping[str, Any]) -> EquivocationEntry:
    """A well-formed `reading.equivocation/1`, both readings of its meter and seq and different;
    signatures are not checked (`verify_reading` on each)."""
    require_fields(entry, _EQUIVOCATION_FIELDS)
    meter, seq, kid = text(entry, "meter"), integer(entry, "seq"), text(entry, "keyId")
    accepted = require_object(entry["accepted"], "accepted")
    require_fields(accepted, frozenset({"index", "leafHash", "keyId", "reading"}))
    link = PreviousReading(
        integer(accepted, "index"), bytes.fromhex(text(accepted, "leafHash", _LEAF_HASH_PATTERN))
    )
    first = _signed_reading(accepted["reading"], text(accepted, "keyId"), "accepted.reading")
    second = _signed_reading(entry["conflicting"], kid, "conflicting")
    for reading in (first, second):
        if (reading.payload.meter, reading.payload.seq) != (meter, seq):
            raise EntryFormatError(f"both readings must be of meter {meter} seq {seq}")
    if first.payload == second.payload:
        raise EntryFormatError("the two readings say the same: no equivocation")
    return EquivocationEntry(meter, seq, link, first, second, kid)


_REGISTERED_REQUIRED = frozenset(
    {"kind", "meter", "organisation", "role", "province", "gridRegion", "registeredAt"}
)
_REGISTERED_OPTIONAL = frozenset({"energySource", "capacityW"})


@dataclass(frozen=True, slots=True)
class MeterRegistrationEntry:
    """What a `meter.registered/1` declares; `capacity_w` is what plausibility is judged by."""

    meter: str
    organisation: str
    role: str
    capacity_w: int | None


def parse_meter_registration(entry: Mapping[str, Any]) -> MeterRegistrationEntry:
    """A well-formed `meter.registered/1`; else `EntryFormatError`."""
    present = frozenset(entry)
    if not _REGISTERED_REQUIRED <= present <= _REGISTERED_REQUIRED | _REGISTERED_OPTIONAL:
        missing = sorted(_REGISTERED_REQUIRED - present)
        extra = sorted(present - _REGISTERED_REQUIRED - _REGISTERED_OPTIONAL)
        raise EntryFormatError(f"fields: missing {missing}, unexpected {extra}")
    role = choice(entry, "role", MeterRole)
    choice(entry, "gridRegion", GridRegion)
    text(entry, "province", PROVINCE_PATTERN)
    utc_time(entry, "registeredAt")
    if "energySource" in entry:
        choice(entry, "energySource", EnergySource)
    capacity = None
    if "capacityW" in entry:
        capacity = integer(entry, "capacityW", 1)
        if capacity > MAX_CAPACITY_W:
            raise EntryFormatError(f"capacityW must be at most {MAX_CAPACITY_W}")
    return MeterRegistrationEntry(text(entry, "meter"), text(entry, "organisation"), role, capacity)
