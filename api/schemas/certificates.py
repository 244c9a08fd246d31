"""Wire formats of granular certificates and their lifecycle (`/v1/certificates`).

Times are RFC 3339 UTC text with `Z` (as in the log entries); energy is integer Wh, shown
beside its GEC equivalent (1 GEC = 1,000,000 Wh) as an exact six-decimal string.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from ledger.certificates.lifecycle import MAX_REASON_CHARS, CertificateRecord, Retirement
from ledger.certificates.rules import (
    HOUR,
    MAX_HOUR_WH,
    MAX_SPLIT_PARTS,
    CertificateStatus,
    RetirementPurpose,
)
from ledger.meters.entries import PROVINCE_PATTERN, GridRegion
from ledger.times import format_utc

ORGANISATION_ID_CHARS = 36
ACCOUNT_ID_CHARS = 36
VolumeWh = Annotated[int, Field(ge=1, le=MAX_HOUR_WH)]


class _Wire(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)


class Period(_Wire):
    from_time: str = Field(alias="from")
    to_time: str = Field(alias="to")


class ConsumptionLocation(_Wire):
    province: str = Field(
        pattern=PROVINCE_PATTERN.pattern,
        description="ISO 3166-2 subdivision code where the energy was consumed, e.g. `CN-GD`.",
    )
    grid_region: GridRegion = Field(alias="gridRegion")


class RetirementBody(_Wire):
    beneficiary: str = Field(description="The organisation id the claim is made for.")
    purpose: RetirementPurpose
    reporting_period: Period = Field(alias="reportingPeriod")
    consumption_location: ConsumptionLocation = Field(alias="consumptionLocation")
    retired_at: str = Field(alias="retiredAt")
    log_index: int = Field(alias="logIndex", description="The `certificate.retired/1` leaf.")

    @classmethod
    def from_retirement(cls, retirement: Retirement) -> RetirementBody:
        return cls(
            beneficiary=retirement.beneficiary_id,
            purpose=retirement.purpose,
            reporting_period=Period(
                from_time=format_utc(retirement.period_start),
                to_time=format_utc(retirement.period_end),
            ),
            consumption_location=ConsumptionLocation(
                province=retirement.province, grid_region=retirement.grid_region
            ),
            retired_at=format_utc(retirement.retired_at),
            log_index=retirement.log_index,
        )


class CertificateBody(_Wire):
    id: str = Field(description="`urn:uuid:…`; also the credential id.")
    status: CertificateStatus
    status_reason: str | None = Field(
        alias="statusReason", description="The issuer's reason, for a withdrawn certificate."
    )
    device: str
    account: str = Field(description="The account holding it.")
    holder: str = Field(description="The organisation owning that account.")
    energy_source: str = Field(alias="energySource")
    grid_region: str = Field(alias="gridRegion")
    production_start: str = Field(alias="productionStart")
    production_end: str = Field(alias="productionEnd")
    serial_start: int = Field(alias="serialStart")
    serial_end: int = Field(alias="serialEnd")
    serial: str = Field(description="`<device>/<YYYYMMDDHH>/<first>-<last>` Wh serials.")
    volume_wh: int = Field(alias="volumeWh")
    gec_equivalent: str = Field(alias="gecEquivalent", description="1 GEC = 1 MWh; six decimals.")
    split_from: str | None = Field(alias="splitFrom", description="The parent, for a split part.")
    issued_at: str = Field(alias="issuedAt")
    valid_until: str = Field(
        alias="validUntil", description="After this it can no longer move; it expires."
    )
    log_index: int = Field(alias="logIndex", description="The `certificate.issued/1` leaf.")
    retirement: RetirementBody | None

    @classmethod
    def fields_of(cls, record: CertificateRecord) -> dict[str, Any]:
        return {
            "id": record.certificate_id,
            "status": record.status,
            "status_reason": record.status_reason,
            "device": record.device_id,
            "account": record.account_id,
            "holder": record.holder_id,
            "energy_source": record.energy_source,
            "grid_region": record.grid_region,
            "production_start": format_utc(record.hour_start),
            "production_end": format_utc(record.hour_start + HOUR),
            "serial_start": record.serial_start,
            "serial_end": record.serial_end,
            "serial": record.serial,
            "volume_wh": record.volume_wh,
            "gec_equivalent": record.gec_equivalent,
            "split_from": record.parent_id,
            "issued_at": format_utc(record.issued_at),
            "valid_until": format_utc(record.expires_at),
            "log_index": record.log_index,
            "retirement": (
                RetirementBody.from_retirement(record.retirement)
                if record.retirement is not None
                else None
            ),
        }

    @classmethod
    def from_record(cls, record: CertificateRecord) -> CertificateBody:
        return cls(**cls.fields_of(record))


class CertificateDetail(CertificateBody):
    credential: dict[str, Any] = Field(
        description="The signed W3C VC 2.0 (`eddsa-jcs-2022`) exactly as committed to the log."
    )

    @classmethod
    def from_record_and_credential(
        cls, record: CertificateRecord, credential: dict[str, Any]
    ) -> CertificateDetail:
        return cls(**cls.fields_of(record), credential=credential)


class CertificatePage(_Wire):
    certificates: list[CertificateBody] = Field(description="Oldest issuance first.")
    next_after: int | None = Field(
        alias="nextAfter",
        description="Pass as `after` (a log index) for the next page; null at the end.",
    )


# ------------------------------------------------------------------------------ requests


class SplitRequest(_Wire):
    volumes_wh: list[VolumeWh] = Field(
        alias="volumesWh",
        min_length=2,
        max_length=MAX_SPLIT_PARTS,
        description="Wh of each part, in serial order; they must add up to the certificate's.",
    )


class TransferRequest(_Wire):
    to_account: str = Field(alias="toAccount", min_length=1, max_length=ACCOUNT_ID_CHARS)
    volume_wh: VolumeWh | None = Field(
        default=None,
        alias="volumeWh",
        description="Transfer only the first this many Wh (split off first); default all.",
    )


class PeriodRequest(_Wire):
    from_time: datetime = Field(alias="from")
    to_time: datetime = Field(alias="to")


class RetireRequest(_Wire):
    beneficiary: str | None = Field(
        default=None,
        min_length=1,
        max_length=ORGANISATION_ID_CHARS,
        description="Organisation id the claim is for; default the caller's organisation.",
    )
    purpose: RetirementPurpose
    reporting_period: PeriodRequest = Field(alias="reportingPeriod")
    consumption_location: ConsumptionLocation = Field(alias="consumptionLocation")
    volume_wh: VolumeWh | None = Field(
        default=None,
        alias="volumeWh",
        description="Retire only the first this many Wh (split off first); default all.",
    )


class WithdrawRequest(_Wire):
    reason: str = Field(min_length=1, max_length=MAX_REASON_CHARS)


class SplitBody(_Wire):
    parent: str
    children: list[CertificateBody]


class LifecycleBody(_Wire):
    certificate: CertificateBody = Field(
        description="What the action applied to (a new split part for a partial volume)."
    )
    remainder: CertificateBody | None = Field(
        description="What a partial action left with the original holder."
    )


class WithdrawBody(_Wire):
    reason: str
    withdrawn: list[str] = Field(
        description="The certificate, or for a split one every live part, now withdrawn."
    )


class ExpiryBody(_Wire):
    expired: list[str] = Field(description="Certificates expired by this sweep.")
