"""When the next anchor is due, and what `serve` tells a caller who waits for it.

`anchor_due` is the scheduler's rule written once, as a pure function: an anchor is due when
`every_entries` entries are new since the last recorded anchor, or `interval` after that
anchor when at least one entry is new; a log never anchored is due as soon as it has an
entry. `AnchorScheduler` decides its steps with it, and `AnchorService.forecast` turns it
into the moment the running loop will really try (`AnchorForecast`), which the API passes
on to callers as `nextAnchorDueAt` and `Retry-After`. Only a process that runs the
scheduler can say that; everything else (CLI, tests, a service with anchoring off) has no
forecast, and callers then say so instead of inventing a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class AnchorDue:
    """What the newest recorded anchor leaves uncovered, and when the rule anchors it."""

    pending_entries: int
    """Entries of the log above the newest recorded anchor (> 0)."""
    due_at: datetime
    """When the rule makes the next anchor due; `now` when it is due already."""


def anchor_due(
    *,
    log_size: int,
    anchored_size: int,
    anchored_at: datetime | None,
    every_entries: int,
    interval: timedelta,
    now: datetime,
) -> AnchorDue | None:
    """The scheduler's rule (pure); None when every entry is anchored already.

    `anchored_size`/`anchored_at` are the newest recorded anchor's (0 and None before the
    first one).
    """
    assert every_entries >= 1 and interval > timedelta(0)
    assert (anchored_at is None) == (anchored_size == 0), "a recorded anchor has entries"
    pending = log_size - anchored_size
    if pending <= 0:
        return None
    if anchored_at is None or pending >= every_entries:
        return AnchorDue(pending, now)
    return AnchorDue(pending, max(now, anchored_at + interval))


@dataclass(frozen=True, slots=True)
class AnchorForecast:
    """When the running scheduler will next try to anchor what is pending (`serve` only)."""

    attempt_at: datetime
    """The loop's next step that will anchor: the rule's due time, but no earlier than the
    loop wakes up, and after a failure no earlier than its backoff allows."""
    pending_entries: int | None
    """Entries not covered by a recorded anchor; None while the chain is not connected yet
    (the anchors recorded for its contract are not known then)."""
    retrying: bool
    """The last step (or connection) failed; `attempt_at` is its retry."""

    def seconds_until(self, now: datetime) -> int:
        """Whole seconds until the attempt, at least 1: the `Retry-After` value.

        The anchor is recorded a moment after the attempt (mined at once on the embedded
        chain; after its confirmations on a JSON-RPC chain), so rounding up is the honest
        direction; a caller retrying too early gets a fresh forecast.
        """
        return max(1, math.ceil((self.attempt_at - now).total_seconds()))
