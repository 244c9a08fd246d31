"""State-map keys and values: the namespace registry and the one encoding of each.

A key is `<namespace>/<identifier>` (ASCII), hashed with SHA-256 to its 256-bit path in the
tree. A value is the JCS bytes of a JSON object whose `kind` is `<namespace>.state/<n>`; the
leaf commits to the SHA-256 of those bytes. docs/state-map.md lists the namespaces and what
their values hold; a new feature (points accounts, passports) adds its namespace here and there.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ledger.log.canonical import CanonicalizationError, canonical_entry, parse_entry


class Namespace(StrEnum):
    """The registry of key spaces. The value says what each key's identifier is."""

    CERTIFICATE = "certificate"
    """A granular certificate, by its `urn:uuid:` id."""
    METER = "meter"
    """A registered meter, by its meter id."""
    DEVICE = "device"
    """A production device, by its device id."""


MAX_IDENTIFIER_BYTES = 200
IDENTIFIER_PATTERN = re.compile(rf"[\x21-\x7e]{{1,{MAX_IDENTIFIER_BYTES}}}")
"""Printable ASCII without spaces: one spelling per key, and no Unicode normalisation to agree
on between Python, Solidity and other verifiers. Ids of meters, devices and certificates fit."""
MAX_VALUE_BYTES = 16 * 1024
"""A value is a small summary of a subject's current state; the evidence stays in the log."""
_VALUE_KIND = re.compile(r"(?P<namespace>[a-z][a-z0-9-]*)\.state/[1-9][0-9]*")


class StateKeyError(ValueError):
    """A key or value does not follow the state-map rules."""


@dataclass(frozen=True, slots=True)
class StateKey:
    namespace: Namespace
    identifier: str
    hash: bytes = field(init=False, repr=False, compare=False)
    """SHA-256 of `text`: the key's path in the tree."""

    def __post_init__(self) -> None:
        if not isinstance(self.namespace, Namespace):
            raise StateKeyError(f"{self.namespace!r} is not a registered state-map namespace")
        if not isinstance(self.identifier, str) or not IDENTIFIER_PATTERN.fullmatch(
            self.identifier
        ):
            raise StateKeyError(
                f"a {self.namespace} key's identifier is 1-{MAX_IDENTIFIER_BYTES} printable "
                f"ASCII characters without spaces; got {self.identifier!r:.80}"
            )
        object.__setattr__(self, "hash", hashlib.sha256(self.text.encode("ascii")).digest())

    @property
    def text(self) -> str:
        return f"{self.namespace}/{self.identifier}"

    @classmethod
    def parse(cls, text: str) -> StateKey:
        namespace, separator, identifier = text.partition("/")
        try:
            registered = Namespace(namespace)
        except ValueError:
            raise StateKeyError(f"{namespace!r} is not a registered state-map namespace") from None
        if not separator:
            raise StateKeyError(f"a state-map key is <namespace>/<identifier>; got {text!r:.80}")
        return cls(registered, identifier)


def encode_value(key: StateKey, value: Mapping[str, Any]) -> bytes:
    """The value's one spelling: JCS bytes, integers only, `kind` = `<namespace>.state/<n>` of
    the key's own namespace, at most `MAX_VALUE_BYTES`."""
    try:
        encoded = canonical_entry(value)
    except CanonicalizationError as exc:
        raise StateKeyError(f"value of {key.text}: {exc}") from None
    _check_value(key, str(value["kind"]), len(encoded))
    return encoded


def check_encoded_value(key: StateKey, value: bytes) -> None:
    """Check bytes that claim to be `encode_value`'s output for `key` (for values read back
    from elsewhere, such as a bundle): parsed, re-encoded and compared byte for byte."""
    if len(value) > MAX_VALUE_BYTES:
        raise StateKeyError(
            f"value of {key.text} is {len(value)} bytes; the limit is {MAX_VALUE_BYTES}"
        )
    try:
        parsed = parse_entry(value)
    except (CanonicalizationError, ValueError):
        raise StateKeyError(f"value of {key.text} is not a JSON object") from None
    if encode_value(key, parsed) != value:
        raise StateKeyError(f"value of {key.text} is not in its canonical (JCS) spelling")


def _check_value(key: StateKey, kind: str, size: int) -> None:
    match = _VALUE_KIND.fullmatch(kind)
    if match is None or match["namespace"] != key.namespace:
        raise StateKeyError(
            f'value of {key.text} needs "kind" = "{key.namespace}.state/<version>"; got {kind!r}'
        )
    if size > MAX_VALUE_BYTES:
        raise StateKeyError(f"value of {key.text} is {size} bytes; the limit is {MAX_VALUE_BYTES}")
