"""The credential entries of the log: the issuer's key declaration, and the DID reader
shared by every signed statement's parser (docs/certificates.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ledger.credentials.data_integrity import CredentialError, public_key_from_did_key
from ledger.log.entry_fields import EntryFormatError, require_fields, text, utc_time

ISSUER_KEY_KIND = "issuer.key/1"
_ISSUER_FIELDS = frozenset({"kind", "did", "validFrom"})


def did_key_member(entry: Mapping[str, Any], name: str) -> str:
    """A did:key DID (not a DID URL) whose key decodes."""
    value = text(entry, name)
    try:
        public_key_from_did_key(value)
    except CredentialError as exc:
        raise EntryFormatError(f"{name}: {exc}") from None
    if "#" in value:
        raise EntryFormatError(f"{name} must be a did:key DID, not a DID URL")
    return value


def issuer_declaration(entry: Mapping[str, Any]) -> str:
    """The DID an `issuer.key/1` entry declares; raises `EntryFormatError` when malformed."""
    require_fields(entry, _ISSUER_FIELDS)
    utc_time(entry, "validFrom")
    return did_key_member(entry, "did")
