"""JSON from untrusted hands: one value per spelling, bounded nesting, never a crash.

Python's `json` accepts what no signed or hashed format may contain — duplicate members
(two readers could each see a different value), `NaN`/`Infinity` — and recurses once per
nesting level: a body of a few hundred KB of `[[[[…` exhausts the interpreter's stack
(after web3 raises the recursion limit it segfaults instead of raising). `loads` checks the
nesting with regular expressions first (C speed, no recursion), then decodes with hooks
that refuse duplicates and constants. Everything that reads JSON from outside — API bodies,
bundle files, OCMF records, CLI inputs — goes through it.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from functools import lru_cache
from typing import Any

MAX_JSON_DEPTH = 32
"""Deep enough for every format the registry reads (bundles nest 4 deep, credentials 6)."""

_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_INNERMOST_PAIR = re.compile(r"\[\]|\{\}")


class JsonInputError(ValueError):
    """The input is not JSON this registry accepts; the message says why."""


def nesting_within(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the brackets outside strings are balanced and nest at most `limit` deep.

    Strip strings and everything but brackets, then remove innermost pairs once per level;
    a run of more than `limit` openers is refused in one scan (the common attack).
    """
    skeleton = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    too_many_openers = _openers(limit + 1)
    for _ in range(limit):
        if not skeleton:
            return True
        if too_many_openers.search(skeleton):
            return False
        skeleton, removed = _INNERMOST_PAIR.subn("", skeleton)
        if not removed:
            return False
    return not skeleton


@lru_cache(maxsize=8)
def _openers(count: int) -> re.Pattern[str]:
    return re.compile(r"[\[{]{" + str(count) + "}")


_NOT_BRACKETS = bytes(value for value in range(256) if value not in b"[]{}")
_ONE_KIND = bytes.maketrans(b"{}", b"[]")


def nesting_exceeds(data: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether `data`, read as JSON, opens more than `limit` arrays or objects inside each
    other — decided before any parser recurses into it, in time linear in its length.

    Unlike `nesting_within` this says nothing about balance: a shallow body with a stray
    bracket is the parser's to refuse (as malformed), a deep one is refused here. Escaped
    backslashes and quotes go first (a run of backslashes loses its pairs left to right,
    as JSON reads them), so every remaining quote delimits a string; the text between
    every other quote is outside strings; of that only brackets count. Each pass then
    removes the innermost opener/closer pairs, so a pair still there after `limit` passes
    sits deeper than `limit`, and openers never closed show up as a run of more than
    `limit`. Only `bytes` methods, no regular expressions: nothing can backtrack, and 8 MiB
    of hostile input takes a fraction of a second.
    """
    unescaped = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside_strings = b"".join(unescaped.split(b'"')[::2])
    skeleton = outside_strings.translate(_ONE_KIND, _NOT_BRACKETS)
    run = b"[" * (limit + 1)
    for _ in range(limit):
        if run in skeleton:
            return True
        shorter = skeleton.replace(b"[]", b"")
        if len(shorter) == len(skeleton):
            return False
        skeleton = shorter
    return run in skeleton or b"[]" in skeleton


def _no_duplicate_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise JsonInputError(f"member {name!r} appears twice in one object")
        result[name] = value
    return result


def _no_constants(name: str) -> Any:
    raise JsonInputError(f"{name} is not JSON")


def loads(
    data: bytes | str, *, max_depth: int = MAX_JSON_DEPTH, exact_decimals: bool = False
) -> Any:
    """Decode JSON strictly; `JsonInputError` for invalid UTF-8 or JSON, duplicate members,
    NaN/Infinity and nesting deeper than `max_depth`. With `exact_decimals`, numbers with a
    fraction become `Decimal` (0.2596 stays exactly 0.2596)."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise JsonInputError(f"not valid UTF-8: {exc}") from exc
    if not nesting_within(text, max_depth):
        raise JsonInputError(f"not valid JSON: unbalanced or nested over {max_depth} deep")
    try:
        return json.loads(
            text,
            object_pairs_hook=_no_duplicate_members,
            parse_constant=_no_constants,
            parse_float=Decimal if exact_decimals else None,
        )
    except json.JSONDecodeError as exc:
        raise JsonInputError(f"not valid JSON: {exc}") from exc
    except RecursionError as exc:  # unreachable after the nesting check; kept as a backstop
        raise JsonInputError("JSON nested too deeply") from exc
