"""Wire formats of the meter registry (`/v1/meters`)."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.log import Base64Bytes
from ledger.meters.entries import MAX_CAPACITY_W, EnergySource, GridRegion, MeterRole
from ledger.meters.readings import METER_ID_PATTERN
from ledger.meters.registration import MeterKeyRecord, MeterRecord
from ledger.times import format_utc


class _Wire(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)


class MeterLocation(_Wire):
    province: str = Field(
        pattern=r"^[A-Z]{2}-[A-Z0-9]{1,3}$",
        description="ISO 3166-2 subdivision code, e.g. `CN-JS` (Jiangsu).",
    )
    grid_region: GridRegion = Field(alias="gridRegion", description="Regional grid.")


class MeterCreate(_Wire):
    id: str = Field(
        pattern=METER_ID_PATTERN.pattern,
        description="The meter id the meter puts into every signed payload (global).",
    )
    role: MeterRole
    location: MeterLocation
    energy_source: EnergySource | None = Field(
        default=None, alias="energySource", description="Required for generation meters."
    )
    capacity_w: int | None = Field(
        default=None,
        alias="capacityW",
        ge=1,
        le=MAX_CAPACITY_W,
        description="Rated power in W; required for generation meters.",
    )


class MeterKeyBody(_Wire):
    key_id: str = Field(alias="keyId", description="Hex of the first 16 bytes of SHA-256(SPKI).")
    alg: str
    public_key: Base64Bytes = Field(alias="publicKey", description="SubjectPublicKeyInfo DER.")
    valid_from: str = Field(alias="validFrom")
    revoked_from: str | None = Field(alias="revokedFrom")
    log_index: int = Field(alias="logIndex", description="The `meter.key/1` leaf.")
    revoked_log_index: int | None = Field(
        alias="revokedLogIndex", description="The `meter.key-revoked/1` leaf, once revoked."
    )

    @classmethod
    def from_record(cls, key: MeterKeyRecord) -> MeterKeyBody:
        return cls(
            key_id=key.key_id,
            alg=key.alg,
            public_key=key.public_key,
            valid_from=format_utc(key.valid_from),
            revoked_from=format_utc(key.revoked_from) if key.revoked_from is not None else None,
            log_index=key.log_index,
            revoked_log_index=key.revoked_log_index,
        )


class MeterBody(_Wire):
    id: str
    organisation_id: str = Field(alias="organisationId")
    role: MeterRole
    location: MeterLocation
    energy_source: EnergySource | None = Field(alias="energySource")
    capacity_w: int | None = Field(alias="capacityW")
    registered_at: datetime = Field(alias="registeredAt")
    log_index: int = Field(alias="logIndex", description="The `meter.registered/1` leaf.")
    keys: list[MeterKeyBody]

    @classmethod
    def from_record(cls, meter: MeterRecord) -> MeterBody:
        return cls(
            id=meter.meter_id,
            organisation_id=meter.organisation_id,
            role=meter.role,
            location=MeterLocation(province=meter.province, grid_region=meter.grid_region),
            energy_source=meter.energy_source,
            capacity_w=meter.capacity_w,
            registered_at=meter.registered_at,
            log_index=meter.log_index,
            keys=[MeterKeyBody.from_record(key) for key in meter.keys],
        )


class KeyCreate(_Wire):
    public_key: Base64Bytes = Field(
        alias="publicKey",
        description="Base64 SubjectPublicKeyInfo DER of an Ed25519 or ECDSA P-256 key.",
    )
    valid_from: datetime | None = Field(
        default=None,
        alias="validFrom",
        description="RFC 3339, whole seconds; default now. May lie in the past (imports).",
    )


class KeyRevoke(_Wire):
    revoked_from: datetime | None = Field(
        default=None,
        alias="revokedFrom",
        description="Readings with a payload time at or after this are refused; default now.",
    )


class EvidenceBody(_Wire):
    id: int
    seq: int
    key_id: str = Field(alias="keyId")
    conflicts_with: int = Field(
        alias="conflictsWith", description="Log index of the accepted reading it contradicts."
    )
    received_at: datetime = Field(alias="receivedAt")
    envelope: dict[str, Any] = Field(description="The refused signed envelope.")
    envelope_bytes: str = Field(
        alias="envelopeBytes", description="Base64 of its canonical (JCS) bytes."
    )

    @staticmethod
    def encode(data: bytes) -> str:
        return base64.b64encode(data).decode()


class EvidencePage(_Wire):
    evidence: list[EvidenceBody]
    next_after: int | None = Field(alias="nextAfter", description="Pass as `after` for more.")
