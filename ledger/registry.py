"""Opening a registry: settings → database (migrated) → log → checkpoint signer."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization

from ledger.credentials.issuer import IssuerIdentity, declare_issuer, load_or_create_issuer_key
from ledger.keyfiles import create_ed25519_key_file, load_ed25519_key_file
from ledger.log.checkpoint import NoteSigner
from ledger.log.store import Log, LogNotInitialisedError
from ledger.settings import LedgerSettings
from ledger.storage.db import Database

DEFAULT_ORIGIN_PREFIX = "carbonledger.local/log-"
_ISSUER_LOCK = threading.Lock()
"""API worker threads may ask for the issuer at the same first moment."""


@dataclass
class Registry:
    settings: LedgerSettings
    database: Database
    log: Log
    signer: NoteSigner
    _issuer: IssuerIdentity | None = field(default=None, repr=False)

    def issuer(self) -> IssuerIdentity:
        """The credential issuer; its key file is created and declared in the log on first use,
        so registries initialised before certificates existed gain one without a new `init`."""
        with _ISSUER_LOCK:
            if self._issuer is None:
                key = load_or_create_issuer_key(self.settings.resolved_issuer_key_file())
                self._issuer = declare_issuer(self.log, key)
            return self._issuer

    def close(self) -> None:
        self.database.dispose()


def initialise_registry(settings: LedgerSettings) -> Registry:
    """Create what is missing (data directory, schema, log key, empty log); keep what exists."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key_path = settings.resolved_log_key_file()
    key = (
        load_ed25519_key_file(key_path) if key_path.exists() else create_ed25519_key_file(key_path)
    )
    from ledger.storage.migrate import upgrade  # noqa: PLC0415 - Alembic, for init only

    database = Database(settings.resolved_database_url())
    upgrade(database)
    log = Log(database)
    try:
        origin = log.head().origin
    except LogNotInitialisedError:
        public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        origin = (
            settings.log_origin or DEFAULT_ORIGIN_PREFIX + hashlib.sha256(public).hexdigest()[:16]
        )
    if settings.log_origin and settings.log_origin != origin:
        raise LogNotInitialisedError(
            f"CARBONLEDGER_LOG_ORIGIN is {settings.log_origin!r}, "
            f"but the log was created as {origin!r}"
        )
    log.initialise(origin)
    return Registry(settings, database, log, NoteSigner(origin, key))


def open_registry(settings: LedgerSettings, *, migrate: bool = True) -> Registry:
    """Open an initialised registry (migrating the schema forward unless told not to)."""
    database = Database(settings.resolved_database_url())
    try:
        if migrate:
            # Imported here: Alembic is slow to load, and CLI commands open without migrating.
            from ledger.storage.migrate import upgrade  # noqa: PLC0415

            upgrade(database)
        log = Log(database)
        origin = log.head().origin
        key = load_ed25519_key_file(settings.resolved_log_key_file())
    except BaseException:
        database.dispose()
        raise
    return Registry(settings, database, log, NoteSigner(origin, key))
