"""What the API tells a caller who waits for an anchor: when to come back, and why.

Issuance counts only anchored readings and a bundle needs an anchor that covers its
entries, so both answer "not yet" while the next anchor is pending. Only the process that
runs the anchoring scheduler (`serve`, `app.state.anchoring`) knows when that anchor is
due (`AnchorService.forecast`); `AnchorWait` carries that forecast, or the fact that there
is none, into `nextAnchorDueAt`, `retryAfterSeconds`/`Retry-After` and a sentence. Without
a scheduler there is no due time to give, and the sentence says who anchors instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request

from attestation.anchoring.due import AnchorForecast
from attestation.anchoring.scheduler import AnchorService
from ledger.times import format_utc

NO_SCHEDULER = (
    "this service runs no anchoring scheduler (CARBONLEDGER_ANCHOR_ENABLED, or a JSON-RPC "
    "chain without a schedule), so nothing is anchored until an operator runs "
    "`carbonledger anchor now`"
)


@dataclass(frozen=True, slots=True)
class AnchorWait:
    """The anchoring outlook at `now`, as this service knows it."""

    scheduled: bool
    """This process runs the anchoring scheduler."""
    forecast: AnchorForecast | None
    """None with `scheduled`: everything is anchored (an anchor landed a moment ago)."""
    now: datetime

    @property
    def retry_after_seconds(self) -> int | None:
        """Seconds until a retry can succeed; 0 when it can now; None when nobody knows."""
        if not self.scheduled:
            return None
        if self.forecast is None:
            return 0
        return self.forecast.seconds_until(self.now)

    @property
    def next_anchor_due_at(self) -> str | None:
        """RFC 3339 UTC (rounded up to the second) of the scheduler's next attempt."""
        if self.forecast is None:
            return None
        return format_utc(math.ceil(self.forecast.attempt_at.timestamp()))

    def sentence(self) -> str:
        """When the next anchor comes, for a `detail` (no trailing full stop)."""
        if not self.scheduled:
            return NO_SCHEDULER
        if self.forecast is None:
            return "an anchor covering them was recorded a moment ago: retry now"
        seconds = self.forecast.seconds_until(self.now)
        if self.forecast.retrying:
            return (
                f"the last anchoring attempt failed; the next is due at "
                f"{self.next_anchor_due_at} (in {seconds} s): retry after it"
            )
        return f"the next anchor is due at {self.next_anchor_due_at} (in {seconds} s): retry then"

    def headers(self) -> dict[str, str]:
        """`Retry-After` (RFC 9110 §10.2.3, seconds) when there is a due time to give."""
        seconds = self.retry_after_seconds
        return {} if seconds is None else {"Retry-After": str(seconds)}


def anchor_wait_of(service: AnchorService | None, now: datetime | None = None) -> AnchorWait:
    moment = now or datetime.now(UTC)
    if service is None:
        return AnchorWait(False, None, moment)
    return AnchorWait(True, service.forecast(moment), moment)


def anchoring_service(request: Request) -> AnchorService | None:
    """The app's anchoring scheduler; None when it runs none."""
    service: AnchorService | None = getattr(request.app.state, "anchoring", None)
    return service


AnchoringDep = Annotated[AnchorService | None, Depends(anchoring_service)]
