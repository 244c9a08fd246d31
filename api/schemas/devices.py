"""Wire formats of generation devices and issuance requests (`/v1/devices`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from api.anchor_wait import AnchorWait
from api.schemas.meters import MeterLocation
from ledger.certificates.devices import (
    DEVICE_ID_PATTERN,
    MAX_METERS_PER_DEVICE,
    MAX_NAME_CHARS,
    DeviceRecord,
    DeviceStatus,
)
from ledger.certificates.issuance import IssuanceResult, IssuedCertificate, UnanchoredProduction
from ledger.certificates.rules import HOUR, gec_text, serial_text
from ledger.meters.entries import MAX_CAPACITY_W, EnergySource
from ledger.meters.readings import METER_ID_PATTERN
from ledger.times import format_utc


class _Wire(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)


MeterId = Annotated[str, Field(pattern=METER_ID_PATTERN.pattern)]


class DeviceCreate(_Wire):
    id: str = Field(
        pattern=DEVICE_ID_PATTERN.pattern,
        description="Chosen by the owner: 1-64 characters of `A-Z a-z 0-9 . _ : -` (global).",
    )
    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    energy_source: EnergySource = Field(
        alias="energySource",
        description="Renewable sources only: solar, wind, hydro, biomass, geothermal.",
    )
    technology: str = Field(min_length=1, max_length=64, examples=["photovoltaic"])
    capacity_w: int = Field(alias="capacityW", ge=1, le=MAX_CAPACITY_W)
    commissioning_date: date = Field(alias="commissioningDate")
    location: MeterLocation
    meters: list[MeterId] = Field(
        min_length=1,
        max_length=MAX_METERS_PER_DEVICE,
        description="The organisation's generation meters measuring the device, each once.",
    )


class DeviceBody(_Wire):
    id: str
    organisation_id: str = Field(alias="organisationId")
    name: str
    energy_source: EnergySource = Field(alias="energySource")
    technology: str
    capacity_w: int = Field(alias="capacityW")
    commissioning_date: str = Field(alias="commissioningDate", description="YYYY-MM-DD.")
    location: MeterLocation
    meters: list[str] = Field(description="Sorted meter ids.")
    status: DeviceStatus = Field(description="`pending` until the registry issuer approves it.")
    registered_at: str = Field(alias="registeredAt")
    log_index: int = Field(alias="logIndex", description="The `device.registered/1` leaf.")
    approved_at: str | None = Field(alias="approvedAt")
    approved_log_index: int | None = Field(
        alias="approvedLogIndex", description="The `device.approved/1` leaf, once approved."
    )

    @classmethod
    def from_record(cls, device: DeviceRecord) -> DeviceBody:
        return cls(
            id=device.device_id,
            organisation_id=device.organisation_id,
            name=device.name,
            energy_source=device.energy_source,
            technology=device.technology,
            capacity_w=device.capacity_w,
            commissioning_date=device.commissioning_date,
            location=MeterLocation(province=device.province, grid_region=device.grid_region),
            meters=list(device.meters),
            status=device.status,
            registered_at=format_utc(device.registered_at),
            log_index=device.log_index,
            approved_at=format_utc(device.approved_at) if device.approved_at is not None else None,
            approved_log_index=device.approved_log_index,
        )


class DevicePage(_Wire):
    devices: list[DeviceBody] = Field(description="Ordered by device id.")
    next_after: str | None = Field(
        alias="nextAfter", description="Pass as `after` (a device id) for more; null at the end."
    )


# ---------------------------------------------------------------------------- issuance


class IssuanceRequest(_Wire):
    from_time: datetime = Field(
        alias="from", description="Start of the first hour (RFC 3339 UTC, on the hour)."
    )
    to_time: datetime = Field(alias="to", description="End of the last hour (exclusive).")
    account: str = Field(
        min_length=1, max_length=36, description="The organisation's account to issue into."
    )


class IssuedBody(_Wire):
    id: str = Field(description="`urn:uuid:…`, unguessable.")
    production_start: str = Field(alias="productionStart")
    production_end: str = Field(alias="productionEnd")
    serial_start: int = Field(alias="serialStart")
    serial_end: int = Field(alias="serialEnd")
    serial: str
    volume_wh: int = Field(alias="volumeWh")
    gec_equivalent: str = Field(alias="gecEquivalent", description="1 GEC = 1 MWh; six decimals.")
    log_index: int = Field(alias="logIndex", description="The `certificate.issued/1` leaf.")

    @classmethod
    def from_issued(cls, device_id: str, item: IssuedCertificate) -> IssuedBody:
        return cls(
            id=item.certificate_id,
            production_start=format_utc(item.hour_start),
            production_end=format_utc(item.hour_start + HOUR),
            serial_start=item.serial_start,
            serial_end=item.serial_end,
            serial=serial_text(device_id, item.hour_start, item.serial_start, item.serial_end),
            volume_wh=item.volume_wh,
            gec_equivalent=gec_text(item.volume_wh),
            log_index=item.log_index,
        )


class SkippedHours(_Wire):
    not_over: int = Field(alias="notOver", description="Hours not yet ended.")
    flagged: int = Field(description="Hours touched by a reading flagged implausible.")
    waiting_for_anchor: int = Field(
        alias="waitingForAnchor",
        description="Hours with production in readings no anchor covers yet (see "
        "`waitingForAnchor`): repeat the request after the next anchor.",
    )
    without_new_production: int = Field(
        alias="withoutNewProduction",
        description="Hours whose production was issued already, or is zero.",
    )


class WaitingForAnchor(_Wire):
    """Production the request could not use yet because no anchor covers its readings."""

    readings: int = Field(
        description="Readings of the device's meters bounding its hours in the period that "
        "lie above `anchoredSize`."
    )
    hours: int = Field(description="Completed hours that would issue more once anchored.")
    wh: int = Field(description="How many Wh more those hours would issue.")
    log_size: int = Field(alias="logSize", description="The log's size when issuance looked.")
    next_anchor_due_at: str | None = Field(
        alias="nextAnchorDueAt",
        description="When the service's anchoring scheduler next anchors (RFC 3339 UTC); "
        "null when this service runs no scheduler.",
    )
    retry_after_seconds: int | None = Field(
        alias="retryAfterSeconds",
        description="Seconds until repeating the request can issue them (0: now); null "
        "without a scheduler.",
    )
    detail: str = Field(description="The same in a sentence.")

    @classmethod
    def from_production(
        cls, production: UnanchoredProduction, anchored_size: int, wait: AnchorWait
    ) -> WaitingForAnchor:
        where = (
            "nothing is anchored yet"
            if anchored_size == 0
            else f"the newest anchor covers the log up to size {anchored_size}"
        )
        hours = len(production.hours)
        gain = (
            f"; once anchored, {hours} completed hour{'' if hours == 1 else 's'} would "
            f"issue {production.wh:,} Wh more"
            if hours
            else ""
        )
        return cls(
            readings=production.readings,
            hours=hours,
            wh=production.wh,
            log_size=production.log_size,
            next_anchor_due_at=wait.next_anchor_due_at,
            retry_after_seconds=wait.retry_after_seconds,
            detail=(
                f"{production.readings} reading{'' if production.readings == 1 else 's'} of "
                f"this device in the period {'is' if production.readings == 1 else 'are'} not "
                f"anchored yet ({where}){gain}; {wait.sentence()}"
            ),
        )


class IssuanceBody(_Wire):
    device: str
    account: str
    anchored_size: int = Field(
        alias="anchoredSize",
        description="Only readings below this log size (the newest recorded anchor) counted.",
    )
    hours_requested: int = Field(alias="hoursRequested")
    issued_count: int = Field(alias="issuedCount")
    issued_wh: int = Field(alias="issuedWh")
    issued_gec: str = Field(alias="issuedGec")
    skipped: SkippedHours
    waiting_for_anchor: WaitingForAnchor | None = Field(
        alias="waitingForAnchor",
        description="Set when readings of the period are not anchored yet: what they would "
        "add and when the next anchor is due; null when every usable reading counted.",
    )
    certificates: list[IssuedBody] = Field(description="One per device-hour, in hour order.")

    @classmethod
    def from_result(cls, result: IssuanceResult, wait: AnchorWait) -> IssuanceBody:
        return cls(
            device=result.device_id,
            account=result.account_id,
            anchored_size=result.anchored_size,
            hours_requested=result.hours_requested,
            issued_count=len(result.issued),
            issued_wh=result.issued_wh,
            issued_gec=gec_text(result.issued_wh),
            skipped=SkippedHours(
                not_over=result.hours_not_over,
                flagged=result.hours_flagged,
                waiting_for_anchor=result.hours_waiting_for_anchor,
                without_new_production=result.hours_without_new_production,
            ),
            waiting_for_anchor=(
                WaitingForAnchor.from_production(result.unanchored, result.anchored_size, wait)
                if result.unanchored is not None
                else None
            ),
            certificates=[IssuedBody.from_issued(result.device_id, item) for item in result.issued],
        )
