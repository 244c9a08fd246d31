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
            client.client_id, client.organisation_id, frozenset(client.scopes.split())
        )
