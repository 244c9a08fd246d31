"""Canonical bytes for everything that is signed or hashed (DESIGN §4.1).

RFC 8785 (JCS) through the `rfc8785` package: `json.dumps(sort_keys=True)` orders
keys by code point rather than by UTF-16 code unit and formats numbers differently,
so it fails the JCS vectors.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import rfc8785

MAX_CANONICAL_BYTES = 64 * 1024
"""Upper bound for one canonical object (a log entry); larger payloads are refused."""


class CanonicalizationError(ValueError):
    """The value cannot be represented as canonical JSON under this project's rules."""


_SAFE_INTEGER = 2**53 - 1
_fast_encoder = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")
)


def fast_path_safe(value: Any, depth: int = 0) -> bool:
    r"""Whether `json.dumps(sort_keys=True)` spells `value` exactly as RFC 8785 does.

    True for ASCII member names (code-point order is then UTF-16 order), integers JCS
    prints without exponent, no floats, and no container types json would coerce (tuples).
    String escaping agrees for every string that encodes to UTF-8: both escape only the
    quote, the backslash and control characters, with the same short forms and lower-case
    `\u00xx`; a lone surrogate fails the final `encode` and takes the slow path.
    """
    if depth > 64:
        return False
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return True
    if kind is int:
        return bool(-_SAFE_INTEGER <= value <= _SAFE_INTEGER)
    if kind is dict:
        return all(
            type(key) is str and key.isascii() and fast_path_safe(item, depth + 1)
            for key, item in value.items()
        )
    if kind is list:
        return all(fast_path_safe(item, depth + 1) for item in value)
    return False


def canonical_json_checked(value: Any) -> bytes:
    """`canonical_json` for a value the caller has already found `fast_path_safe`.

    For documents assembled from parts that were each checked (a credential and its proof),
    where walking the whole value again would cost as much as encoding it.
    """
    return _fast_encoder.encode(value).encode("utf-8")


def canonical_json(value: Any) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of a JSON-compatible value.

    Signing thousands of credentials per request made `rfc8785` (pure Python) the cost
    that mattered; values on the fast path above are encoded by the C json encoder
    instead, which a differential property test holds equal to `rfc8785`.
    """
    if fast_path_safe(value):
        try:
            return _fast_encoder.encode(value).encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate: rfc8785 reports it
    try:
        encoded: bytes = rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise CanonicalizationError(f"value is not canonicalisable JSON: {exc}") from exc
    return encoded


def _reject_floats(value: Any, path: str) -> None:
    if isinstance(value, float):
        raise CanonicalizationError(
            f"{path} is a float; signed payloads carry integers (Wh, seconds) only"
        )
    if isinstance(value, Mapping):
        for key, item in value.items():
            _reject_floats(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for position, item in enumerate(value):
            _reject_floats(item, f"{path}[{position}]")


def canonical_entry(entry: Mapping[str, Any]) -> bytes:
    """Canonical bytes of a log entry: a JSON object with a `kind` of the form `name/version`.

    Floats are refused anywhere in the entry (DESIGN §4.1: no floats in signed payloads),
    and the result is bounded by `MAX_CANONICAL_BYTES`.
    """
    kind = entry.get("kind")
    if not isinstance(kind, str) or "/" not in kind:
        raise CanonicalizationError('a log entry needs "kind" of the form "<name>/<version>"')
    name, _, version = kind.rpartition("/")
    if not name or not (version.isascii() and version.isdigit()):
        raise CanonicalizationError(f'entry kind {kind!r} is not of the form "<name>/<version>"')
    _reject_floats(entry, "entry")
    encoded = canonical_json(dict(entry))
    if len(encoded) > MAX_CANONICAL_BYTES:
        raise CanonicalizationError(
            f"entry is {len(encoded)} bytes canonicalised; the limit is {MAX_CANONICAL_BYTES}"
        )
    return encoded


def parse_entry(leaf: bytes) -> dict[str, Any]:
    """Parse leaf bytes back into the entry object (no canonicality check)."""
    value = json.loads(leaf)
    if not isinstance(value, dict):
        raise CanonicalizationError("a log entry is a JSON object")
    return value
