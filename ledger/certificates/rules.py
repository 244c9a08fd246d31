"""The certificate lifecycle as pure rules (docs/certificates.md, "Rules").

One definition serves three readers: the service checks a request against it before it
writes anything, `carbonledger audit replay` re-applies it to the log's statements, and
the offline verifier uses it to derive a certificate's status from its bundle. Each
function takes a state and returns the next one, or raises `RuleViolationError` naming the rule.
Times are integer seconds since the epoch (UTC); energy and serials are integer Wh.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum

from ledger.times import format_utc

HOUR = 3600
WH_PER_GEC = 1_000_000
"""1 green-electricity certificate (GEC, 绿证) = 1 MWh."""
MAX_SPLIT_PARTS = 64
MAX_HOUR_WH = 10**12 * HOUR // HOUR
"""A 1 TW device (the meter registry's capacity bound) for one hour, in Wh."""


class CertificateStatus(StrEnum):
    ACTIVE = "active"
    SPLIT = "split"
    RETIRED = "retired"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"


class RetirementPurpose(StrEnum):
    SCOPE2_MARKET_BASED = "scope2-market-based"
    RE100 = "re100"
    VOLUNTARY = "voluntary"
    COMPLIANCE = "compliance"


class CertificateRequestError(ValueError):
    """A device, account or certificate request is invalid; the message says why (HTTP 400)."""


class RecordNotFoundError(CertificateRequestError, LookupError):
    """No such device, account or certificate visible to the caller (HTTP 404)."""


class NotOwnedError(CertificateRequestError, PermissionError):
    """The record exists but belongs to another organisation (HTTP 403)."""


class StateConflictError(CertificateRequestError):
    """The request is well formed but the registry's state forbids it now (HTTP 409)."""


class RuleViolationError(StateConflictError):
    """A lifecycle step breaks a rule; `rule` is a stable slug, the message says what."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


class VintageMismatchError(CertificateRequestError):
    """A retirement's reporting period does not cover the certificate's production hour
    (`require_vintage`; HTTP 422)."""


@dataclass(frozen=True, slots=True)
class CertificateState:
    certificate: str
    device: str
    hour_start: int
    serial_start: int
    serial_end: int
    account: str
    valid_until: int
    status: CertificateStatus = CertificateStatus.ACTIVE
    parent: str | None = None
    beneficiary: str | None = None
    reason: str | None = None

    @property
    def volume_wh(self) -> int:
        return self.serial_end - self.serial_start


def gec_text(wh: int) -> str:
    """Wh as GEC (MWh) with six decimals, exactly (no floats in signed payloads)."""
    assert wh >= 0
    return f"{wh // WH_PER_GEC}.{wh % WH_PER_GEC:06d}"


def add_months(seconds: int, months: int) -> int:
    """The same UTC clock time `months` calendar months later (day clamped to the month)."""
    moment = datetime.fromtimestamp(seconds, UTC)
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return int(moment.replace(year=year, month=month, day=day).timestamp())


def serial_text(device: str, hour_start: int, serial_start: int, serial_end: int) -> str:
    hour = datetime.fromtimestamp(hour_start, UTC).strftime("%Y%m%d%H")
    return f"{device}/{hour}/{serial_start}-{serial_end - 1}"


def require_movable(state: CertificateState, at: int, action: str) -> None:
    """Only an active certificate before its `validUntil` may be split, moved or retired."""
    if state.status is not CertificateStatus.ACTIVE:
        rule = {
            CertificateStatus.RETIRED: "retired-is-final",
            CertificateStatus.EXPIRED: "expired",
            CertificateStatus.WITHDRAWN: "withdrawn",
            CertificateStatus.SPLIT: "split-holds-nothing",
        }[state.status]
        raise RuleViolationError(
            rule, f"{state.certificate} is {state.status}; it cannot be {action}"
        )
    if at >= state.valid_until:
        raise RuleViolationError(
            "expired", f"{state.certificate} expired at {state.valid_until}; it cannot be {action}"
        )


def _require_holder(state: CertificateState, account: str) -> None:
    if account != state.account:
        raise RuleViolationError(
            "not-holder", f"{state.certificate} is held by account {state.account}, not {account}"
        )


def transfer(
    state: CertificateState, *, from_account: str, to_account: str, at: int
) -> CertificateState:
    require_movable(state, at, "transferred")
    _require_holder(state, from_account)
    if to_account == from_account:
        raise RuleViolationError("same-account", "a transfer needs a different destination account")
    return replace(state, account=to_account)


def split_ranges(state: CertificateState, volumes: list[int]) -> list[tuple[int, int]]:
    """Sub-ranges of `volumes` Wh, in order, that partition the certificate's range exactly."""
    if not 2 <= len(volumes) <= MAX_SPLIT_PARTS:
        raise RuleViolationError("split-parts", f"a split makes 2 to {MAX_SPLIT_PARTS} parts")
    if any(volume <= 0 for volume in volumes):
        raise RuleViolationError("split-parts", "every part of a split holds at least 1 Wh")
    if sum(volumes) != state.volume_wh:
        raise RuleViolationError(
            "split-partition",
            f"parts add up to {sum(volumes)} Wh; {state.certificate} holds {state.volume_wh} Wh",
        )
    ranges, start = [], state.serial_start
    for volume in volumes:
        ranges.append((start, start + volume))
        start += volume
    assert start == state.serial_end
    return ranges


def split(
    state: CertificateState, *, children: list[tuple[str, int, int]], account: str, at: int
) -> tuple[CertificateState, list[CertificateState]]:
    """The parent (now holding nothing) and its children, in the parent's account."""
    require_movable(state, at, "split")
    _require_holder(state, account)
    split_ranges(state, [end - start for _, start, end in children])
    expected = state.serial_start
    for _, start, end in children:
        if start != expected:
            raise RuleViolationError(
                "split-partition", "children must partition the range in order"
            )
        expected = end
    parent = replace(state, status=CertificateStatus.SPLIT)
    kids = [
        replace(
            state,
            certificate=child,
            serial_start=start,
            serial_end=end,
            parent=state.certificate,
        )
        for child, start, end in children
    ]
    return parent, kids


def retire(state: CertificateState, *, account: str, beneficiary: str, at: int) -> CertificateState:
    require_movable(state, at, "retired")
    _require_holder(state, account)
    return replace(state, status=CertificateStatus.RETIRED, beneficiary=beneficiary)


def require_vintage(state: CertificateState, *, period_start: int, period_end: int) -> None:
    """The vintage rule of a retirement: the certificate's production hour lies wholly inside
    the reporting period it is claimed for (the GHG Protocol Scope 2 quality criteria ask
    for instruments from the period of the consumption they cover; an hourly certificate
    states its hour, so "the same period" is checked exactly, not by calendar year).

    Checked when a retirement is requested, not when the log is replayed: retirements
    logged before the rule existed stay valid history (decision 82).
    """
    hour_end = state.hour_start + HOUR
    if state.hour_start < period_start or hour_end > period_end:
        raise VintageMismatchError(
            f"{state.certificate} was produced in the hour from {format_utc(state.hour_start)}, "
            f"outside the reporting period {format_utc(period_start)} to "
            f"{format_utc(period_end)}; a certificate can only be retired for a reporting "
            "period that contains its production hour"
        )


def expire(state: CertificateState, *, at: int) -> CertificateState:
    if state.status is not CertificateStatus.ACTIVE:
        raise RuleViolationError("expire-active-only", f"{state.certificate} is {state.status}")
    if at < state.valid_until:
        raise RuleViolationError(
            "not-yet-expired", f"{state.certificate} is valid until {state.valid_until}"
        )
    return replace(state, status=CertificateStatus.EXPIRED)


def withdraw(state: CertificateState, *, reason: str, at: int) -> CertificateState:
    del at  # withdrawal is possible at any time
    if state.status in (CertificateStatus.SPLIT, CertificateStatus.WITHDRAWN):
        raise RuleViolationError("withdraw", f"{state.certificate} is {state.status}")
    if not reason.strip():
        raise RuleViolationError("withdraw", "a withdrawal needs a reason")
    return replace(state, status=CertificateStatus.WITHDRAWN, reason=reason)
