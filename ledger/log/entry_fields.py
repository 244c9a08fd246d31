"""Strict readers for the members of a decoded log entry, shared by every entry parser.

A log entry is JSON the registry wrote (canonical, `docs/*.md` fix each kind's members);
whoever reads one back — the offline verifier, the audit replay — must refuse any other
shape with a message that names the member. These readers raise `EntryFormatError`, never
`KeyError` or `TypeError`, so a hostile leaf can only ever produce a named finding.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from ledger.times import UtcTimeError, parse_utc

MAX_TEXT_CHARS = 1_000
"""Longest free text in an entry (names, reasons); the ledger's own limits are lower."""

UUID_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)
HEX64_PATTERN = re.compile(r"[0-9a-f]{64}", re.ASCII)


class EntryFormatError(ValueError):
    """An entry (or a member of it) is not shaped as its kind's format says."""


def require_object(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise EntryFormatError(f"{what} must be a JSON object")
    return value


def require_fields(entry: Mapping[str, Any], expected: frozenset[str]) -> None:
    """Exactly these members, no more and no fewer."""
    if set(entry) != expected:
        missing, extra = sorted(expected - set(entry)), sorted(set(entry) - expected)
        raise EntryFormatError(f"fields: missing {missing}, unexpected {extra}")


def text(entry: Mapping[str, Any], name: str, pattern: re.Pattern[str] | None = None) -> str:
    """A non-empty string of at most `MAX_TEXT_CHARS` characters (matching `pattern`)."""
    value = _member(entry, name)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT_CHARS:
        raise EntryFormatError(
            f"{name} must be a non-empty string of at most {MAX_TEXT_CHARS} characters"
        )
    if pattern is not None and not pattern.fullmatch(value):
        raise EntryFormatError(f"{name} {value!r} does not have the required form")
    return value


def integer(entry: Mapping[str, Any], name: str, low: int = 0) -> int:
    """An integer of at least `low` (a JSON `true` is not 1)."""
    value = _member(entry, name)
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise EntryFormatError(f"{name} must be an integer of at least {low}")
    return value


def utc_time(entry: Mapping[str, Any], name: str) -> int:
    """Epoch seconds of a time member (`ledger.times`)."""
    try:
        return parse_utc(_member(entry, name), name)
    except UtcTimeError as exc:
        raise EntryFormatError(str(exc)) from None


def choice(entry: Mapping[str, Any], name: str, allowed: type[StrEnum]) -> str:
    """One of the values of `allowed`."""
    value = _member(entry, name)
    if not isinstance(value, str) or value not in {member.value for member in allowed}:
        raise EntryFormatError(f"{name} {value!r} is not one of {[m.value for m in allowed]}")
    return value


def _member(entry: Mapping[str, Any], name: str) -> object:
    if name not in entry:
        raise EntryFormatError(f"{name} is missing")
    return entry[name]
