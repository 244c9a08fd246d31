"""The registry as credential issuer: its Ed25519 key, its `did:key`, and the log entry
that declares it.

The issuer key is separate from the checkpoint key: a checkpoint says "the log has this
root", a credential says "this energy was produced"; one key per statement kind keeps a
signature from ever being read as the other. The key is declared once in the log
(`issuer.key/1`), so a verifier learns the issuer DID from the same anchored log it already
trusts, and can pin it (`carbonledger verify --issuer`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from ledger.credentials.data_integrity import did_key, did_key_verification_method, public_bytes
from ledger.credentials.entries import ISSUER_KEY_KIND
from ledger.credentials.models import IssuerKey
from ledger.keyfiles import KeyFileError, create_ed25519_key_file, load_ed25519_key_file
from ledger.log.store import Log
from ledger.storage.base import utc_now
from ledger.times import format_utc


@dataclass(frozen=True, slots=True)
class IssuerIdentity:
    did: str
    verification_method: str
    private_key: Ed25519PrivateKey
    log_index: int


_declare_lock = threading.Lock()


def load_or_create_issuer_key(path: Path) -> Ed25519PrivateKey:
    if path.exists():
        return load_ed25519_key_file(path)
    try:
        return create_ed25519_key_file(path)
    except KeyFileError:
        # Another process created it between the check and the exclusive create.
        return load_ed25519_key_file(path)


def declare_issuer(log: Log, private_key: Ed25519PrivateKey) -> IssuerIdentity:
    """The identity of `private_key`, appending its `issuer.key/1` entry if the log lacks it."""
    did = did_key(public_bytes(private_key))
    with _declare_lock:
        with log.database.read() as session:
            row = session.get(IssuerKey, did)
            index = row.log_index if row is not None else None
        if index is None:
            with log.write() as tx:
                # Re-read under the writer lock: another process may have declared it.
                row = tx.session.get(IssuerKey, did)
                if row is None:
                    now = int(utc_now().timestamp())
                    entry = {
                        "kind": ISSUER_KEY_KIND,
                        "did": did,
                        "validFrom": format_utc(now),
                    }
                    index = tx.append(entry)
                    tx.session.add(IssuerKey(did=did, log_index=index, valid_from=now))
                else:
                    index = row.log_index
    return IssuerIdentity(did, did_key_verification_method(did), private_key, index)


def declared_issuers(log: Log) -> dict[str, int]:
    """Every declared issuer DID → the index of its `issuer.key/1` entry."""
    with log.database.read() as session:
        return {row.did: row.log_index for row in session.scalars(select(IssuerKey))}
