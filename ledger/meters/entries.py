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

from ledger.log.entry_fields import EntryFormatError, require_fields, text, utc_time
from ledger.meters.readings import (
    ReadingFormatError,
    SignedReading,
    key_id,
    load_meter_public_key,
    parse_envelope,
)

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
READING_KINDS = frozenset({READING_KIND, OCMF_READING_KIND})

_KEY_FIELDS = frozenset({"kind", "meter", "keyId", "alg", "publicKey", "organisation", "validFrom"})
_REVOKED_FIELDS = frozenset({"kind", "meter", "keyId", "organisation", "revokedFrom"})
_READING_FIELDS = frozenset({"kind", "keyId", "alg", "payload", "sig"})


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
