"""When a reading's energy is implausible for its meter (decision 23): the one definition.

A reading is flagged when the energy since the meter's previous reading, in either register
direction, exceeds the meter's registered capacity x the interval x 1.1. Flagged readings
are accepted (they are signed facts) and never counted for issuance. Ingestion, the audit
replay and the offline verifier all call `exceeds_capacity`, so they cannot disagree.
"""

from __future__ import annotations

SLACK_NUMERATOR, SLACK_DENOMINATOR = 11, 10
"""Capacity x 1.1: metering tolerances and a meter clock a little off never flag."""
SECONDS_PER_HOUR = 3_600


def exceeds_capacity(
    capacity_w: int | None, seconds: int, import_delta_wh: int, export_delta_wh: int
) -> bool:
    """Whether max(import delta, export delta) Wh > capacity W x seconds / 3600 x 11/10.

    Multiplied out to stay in integers (no rounding at the boundary). A meter with no
    registered capacity is never flagged.
    """
    if capacity_w is None:
        return False
    assert seconds > 0, "readings of a meter are strictly increasing in time"
    most = max(import_delta_wh, export_delta_wh)
    return most * SECONDS_PER_HOUR * SLACK_DENOMINATOR > capacity_w * seconds * SLACK_NUMERATOR
