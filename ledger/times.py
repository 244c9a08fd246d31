"""The one spelling of a moment in every signed or hashed entry (DESIGN §4.1).

Times are RFC 3339 UTC with a `Z` suffix and whole seconds, `YYYY-MM-DDTHH:MM:SSZ`, ASCII
digits only, and lie in [1970-01-01T00:00:00Z, 9999-12-31T23:59:59Z]: the registry stores
them as non-negative epoch seconds, and a four-digit year is what every verifier's parser
expects. `parse_utc` and `format_utc` are exact inverses on that range, so a time that was
accepted is always written back with the same characters, and no leaf can hold a time the
offline verifier would refuse.

Parsing is by hand rather than `strptime`: a certificate bundle holds a few hundred times
and `strptime` alone would take a sizeable share of the 5 ms verification budget.
"""

from __future__ import annotations

import calendar
import re
import time
from datetime import UTC, datetime
from functools import lru_cache

EARLIEST = 0
"""1970-01-01T00:00:00Z, the earliest time any entry may name."""
LATEST = 253_402_300_799
"""9999-12-31T23:59:59Z, the latest time with a four-digit year."""
EXAMPLE = "2026-06-01T00:00:00Z"

_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z", re.ASCII)


class UtcTimeError(ValueError):
    """A time is not spelled `YYYY-MM-DDTHH:MM:SSZ` or lies outside the allowed range."""


def parse_utc(text: object, what: str = "time") -> int:
    """Epoch seconds of an RFC 3339 UTC whole-second time; `UtcTimeError` names `what`."""
    if not isinstance(text, str) or not _PATTERN.fullmatch(text):
        raise UtcTimeError(f"{what} must be an RFC 3339 UTC time in whole seconds, like {EXAMPLE}")
    parts = (
        int(text[0:4]),
        int(text[5:7]),
        int(text[8:10]),
        int(text[11:13]),
        int(text[14:16]),
        int(text[17:19]),
    )
    try:
        datetime(*parts)  # validation only (month lengths, leap years, 23:59:60 refused)
    except ValueError:
        raise UtcTimeError(f"{what} {text!r} is not a valid date and time") from None
    seconds = calendar.timegm((*parts, 0, 0, 0))
    if seconds < EARLIEST:
        raise UtcTimeError(f"{what} {text!r} is before 1970-01-01T00:00:00Z")
    return seconds


@lru_cache(maxsize=16_384)
def format_utc(seconds: int) -> str:
    """The spelling of epoch `seconds`; cached because issuance spells the same hour
    boundaries for thousands of credentials."""
    if type(seconds) is not int or not EARLIEST <= seconds <= LATEST:
        raise UtcTimeError(f"{seconds!r} is not a time between 1970 and 9999 in epoch seconds")
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def format_utc_date(seconds: int) -> str:
    """The UTC calendar day of epoch `seconds`, `YYYY-MM-DD`."""
    return format_utc(seconds)[:10]


def epoch_of(moment: datetime) -> int:
    """Whole UTC seconds of an aware datetime; naive or fractional times are refused."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise UtcTimeError("times must carry a time zone (UTC)")
    if moment.microsecond:
        raise UtcTimeError("times are whole seconds")
    seconds = int(moment.timestamp())
    format_utc(seconds)  # the range check
    return seconds


def datetime_of(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
