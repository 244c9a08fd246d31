"""Organisations and their API clients (OAuth2 client credentials, as in the PACT API).

Client secrets are 256-bit random strings, shown once and stored only as SHA-256:
a slow password hash protects guessable passwords, which these are not, and would
add latency to every token request (docs/decisions.md).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from ledger.access.models import ApiClient, Organisation
from ledger.storage.db import Database

SCOPE_PATTERN = re.compile(r"^[a-z][a-z0-9_.-]*(:[a-z][a-z0-9_.-]*)?$")
MAX_SCOPES_PER_CLIENT = 32
MAX_ORGANISATION_NAME = 200


class ClientError(ValueError):
    """An organisation or client request is invalid."""


@dataclass(frozen=True)
class IssuedClient:
    client_id: str
    client_secret: str
    organisation_id: str
    organisation_name: str
    scopes: frozenset[str]


@dataclass(frozen=True)
class AuthenticatedClient:
    client_id: str
    organisation_id: str
    scopes: frozenset[str]
    credential: str = ""
    """`credential_tag` of the secret it authenticated with; tokens carry it, so rotating
    the secret ends the old secret's tokens too."""


@dataclass(frozen=True)
class ClientRecord:
    """A client as `admin client list` shows it (never the secret or its digest)."""

    client_id: str
    organisation_id: str
    organisation_name: str
    scopes: frozenset[str]
    created_at: datetime
    disabled_at: datetime | None


def credential_tag(secret_sha256: bytes) -> str:
    """A short, non-secret name of one secret: 8 bytes of its SHA-256 (itself not secret
    enough to log in with: the secret is 256 bits and the tag names only the digest)."""
    return secret_sha256[:8].hex()


def _secret_digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def validate_scopes(scopes: Iterable[str]) -> frozenset[str]:
    result = frozenset(scope.strip() for scope in scopes if scope.strip())
    if not result:
        raise ClientError("a client needs at least one scope")
    if len(result) > MAX_SCOPES_PER_CLIENT:
        raise ClientError(f"a client has at most {MAX_SCOPES_PER_CLIENT} scopes")
    for scope in result:
        if not SCOPE_PATTERN.fullmatch(scope):
            raise ClientError(f"scope {scope!r} is not of the form name or name:action")
    return result


def create_client(
    database: Database, organisation_name: str, scopes: Iterable[str]
) -> IssuedClient:
    """Create a client for an organisation (created if new); the secret is returned once."""
    name = organisation_name.strip()
    if not name or len(name) > MAX_ORGANISATION_NAME:
        raise ClientError(f"organisation name must be 1..{MAX_ORGANISATION_NAME} characters")
    scope_set = validate_scopes(scopes)
    client_id = "cl_" + secrets.token_hex(12)
    secret = secrets.token_urlsafe(32)
    with database.write() as session:
        organisation = session.execute(
            select(Organisation).where(Organisation.name == name)
        ).scalar_one_or_none()
        if organisation is None:
            organisation = Organisation(id=str(uuid.uuid4()), name=name)
            session.add(organisation)
            session.flush()
        session.add(
            ApiClient(
                client_id=client_id,
                organisation_id=organisation.id,
                secret_sha256=_secret_digest(secret),
                scopes=" ".join(sorted(scope_set)),
            )
        )
        return IssuedClient(client_id, secret, organisation.id, organisation.name, scope_set)


def authenticate_client(
    database: Database, client_id: str, client_secret: str
) -> AuthenticatedClient | None:
    """The client if the secret matches and the client is enabled, else None."""
    with database.read() as session:
        client = session.get(ApiClient, client_id)
        # Compare against a dummy digest when the client is unknown, so timing does not
        # reveal which client ids exist.
        expected = client.secret_sha256 if client is not None else b"\0" * 32
        matches = hmac.compare_digest(expected, _secret_digest(client_secret))
        if client is None or not matches or client.disabled_at is not None:
            return None
        return AuthenticatedClient(
            client.client_id,
            client.organisation_id,
            frozenset(client.scopes.split()),
            credential_tag(client.secret_sha256),
        )


def current_credential(database: Database, client_id: str) -> str | None:
    """The tag of the client's current secret, or None when it is unknown or disabled:
    what a bearer token's `cred` claim must still equal for the token to be honoured."""
    with database.read() as session:
        row = session.execute(
            select(ApiClient.secret_sha256, ApiClient.disabled_at).where(
                ApiClient.client_id == client_id
            )
        ).one_or_none()
    if row is None or row.disabled_at is not None:
        return None
    return credential_tag(row.secret_sha256)


def list_clients(database: Database) -> list[ClientRecord]:
    with database.read() as session:
        rows = session.execute(
            select(ApiClient, Organisation.name)
            .join(Organisation, Organisation.id == ApiClient.organisation_id)
            .order_by(Organisation.name, ApiClient.created_at, ApiClient.client_id)
        ).all()
        return [
            ClientRecord(
                client.client_id,
                client.organisation_id,
                name,
                frozenset(client.scopes.split()),
                client.created_at,
                client.disabled_at,
            )
            for client, name in rows
        ]


def disable_client(database: Database, client_id: str) -> ClientRecord:
    """Disable a client for good: no new tokens, and its tokens are refused from the next
    credential check on (`current_credential`). Disabling twice keeps the first time."""
    with database.write() as session:
        client = session.get(ApiClient, client_id)
        if client is None:
            raise ClientError(f"there is no client {client_id!r}")
        if client.disabled_at is None:
            client.disabled_at = datetime.now(UTC)
        organisation = session.get(Organisation, client.organisation_id)
        assert organisation is not None
        session.flush()
        return ClientRecord(
            client.client_id,
            client.organisation_id,
            organisation.name,
            frozenset(client.scopes.split()),
            client.created_at,
            client.disabled_at,
        )


def rotate_client_secret(database: Database, client_id: str) -> IssuedClient:
    """A new secret for an enabled client, shown once; the old secret and every token
    issued with it stop working (tokens name their secret's `credential_tag`)."""
    secret = secrets.token_urlsafe(32)
    with database.write() as session:
        client = session.get(ApiClient, client_id)
        if client is None:
            raise ClientError(f"there is no client {client_id!r}")
        if client.disabled_at is not None:
            raise ClientError(f"client {client_id!r} is disabled; create a new one instead")
        client.secret_sha256 = _secret_digest(secret)
        organisation = session.get(Organisation, client.organisation_id)
        assert organisation is not None
        return IssuedClient(
            client.client_id,
            secret,
            organisation.id,
            organisation.name,
            frozenset(client.scopes.split()),
        )
