"""Bearer tokens for API clients: scopes, the HS256 token key, issuing and verifying JWTs.

Tokens are stateless JWTs (RFC 7519) signed with HS256 under a key only this service
holds. Claims:

| claim | value                                            |
| ----- | ------------------------------------------------ |
| iss   | the log origin, so tokens of another log fail    |
| sub   | the client id                                    |
| org   | the client's organisation id                     |
| scope | granted scopes, space separated (RFC 8693 §4.2)  |
| iat   | issue time (seconds since the epoch)             |
| exp   | expiry: iat + CARBONLEDGER_TOKEN_TTL_SECONDS     |
| jti   | a random token id, for audit logs                |

The FastAPI dependencies that use this module live in `api.deps`.
"""

from __future__ import annotations

import hmac
import re
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jwt

from api.settings import ApiSettings
from ledger.access.clients import AuthenticatedClient, current_credential
from ledger.keyfiles import KeyFileError, read_private_key_pem, write_private_key_file
from ledger.storage.db import Database

SCOPE_LOG_READ = "log:read"
SCOPE_ADMIN = "admin"
SCOPE_METERS_READ = "meters:read"
SCOPE_METERS_WRITE = "meters:write"
SCOPE_READINGS_READ = "readings:read"
SCOPE_READINGS_WRITE = "readings:write"
SCOPE_AUDIT_READ = "audit:read"
SCOPE_DEVICES_READ = "devices:read"
SCOPE_DEVICES_WRITE = "devices:write"
SCOPE_CERTIFICATES_READ = "certificates:read"
SCOPE_CERTIFICATES_WRITE = "certificates:write"
SCOPE_ISSUER = "issuer"
SCOPE_REPORTS_READ = "reports:read"

KNOWN_SCOPES: Mapping[str, str] = MappingProxyType(
    {
        SCOPE_LOG_READ: "Read log entries (the leaf bytes and their parsed content).",
        SCOPE_ADMIN: "Administer the registry; with `audit:read`, audit any organisation.",
        SCOPE_METERS_READ: "Read the organisation's meters and their keys.",
        SCOPE_METERS_WRITE: "Register the organisation's meters, register and revoke their keys.",
        SCOPE_READINGS_READ: "Read the organisation's accepted readings and interval energy.",
        SCOPE_READINGS_WRITE: "Submit signed readings for the organisation's meters.",
        SCOPE_AUDIT_READ: "List equivocation evidence of the organisation's meters.",
        SCOPE_DEVICES_READ: "Read the organisation's generation devices.",
        SCOPE_DEVICES_WRITE: "Register the organisation's devices and request issuance for them.",
        SCOPE_CERTIFICATES_READ: "Read the organisation's accounts and certificates.",
        SCOPE_CERTIFICATES_WRITE: "Open accounts; transfer, split and retire certificates.",
        SCOPE_ISSUER: "Act as the registry issuer: approve devices; withdraw, expire certificates.",
        SCOPE_REPORTS_READ: "Read the organisation's 24/7 matching and Scope 2 reports.",
    }
)
"""Every scope a route may require, with the description shown in the OpenAPI document."""

# An algorithm name, not a credential.
TOKEN_ALGORITHM = "HS256"  # noqa: S105
TOKEN_SECRET_BYTES = 32
MIN_TOKEN_SECRET_BYTES = 32
"""RFC 7518 §3.2: an HS256 key must be at least as long as the hash output."""
REQUIRED_CLAIMS = ("iss", "sub", "org", "scope", "iat", "exp", "jti", "cred")

# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")


class TokenSecretError(RuntimeError):
    """The token key is missing, unreadable or too short."""


class InvalidTokenError(ValueError):
    """A bearer token failed verification; the message says why (safe to show the client)."""


class ScopeSyntaxError(ValueError):
    pass


# ------------------------------------------------------------------------ the key


def ensure_token_secret(settings: ApiSettings) -> Path | None:
    """Create the token key file (mode 0600) unless it exists; return its path.

    Returns None when `CARBONLEDGER_TOKEN_SECRET` is set: the key then comes from the
    environment and no file is needed. Called by `carbonledger init`.
    """
    if settings.token_secret is not None:
        return None
    path = settings.resolved_token_secret_file()
    if not path.exists():
        # Hex text rather than raw bytes, so the file survives copy-paste into a secret store.
        write_private_key_file(path, secrets.token_hex(TOKEN_SECRET_BYTES).encode())
    return path


def load_token_secret(settings: ApiSettings) -> bytes:
    """The HS256 key: `CARBONLEDGER_TOKEN_SECRET` if set, else the key file's content."""
    if settings.token_secret is not None:
        key = settings.token_secret.get_secret_value().strip().encode()
        source = "CARBONLEDGER_TOKEN_SECRET"
    else:
        path = settings.resolved_token_secret_file()
        try:
            key = read_private_key_pem(path).strip()
        except KeyFileError as exc:
            raise TokenSecretError(f"token key unavailable: {exc}") from exc
        source = str(path)
    if len(key) < MIN_TOKEN_SECRET_BYTES:
        raise TokenSecretError(
            f"the token key from {source} is {len(key)} bytes; at least "
            f"{MIN_TOKEN_SECRET_BYTES} are needed"
        )
    return key


# ----------------------------------------------------------------------- scopes


def parse_scope(text: str | None) -> frozenset[str]:
    """The scopes of an RFC 6749 `scope` parameter (space separated); empty if absent."""
    if text is None:
        return frozenset()
    scopes = frozenset(text.split(" ")) - {""}
    for scope in scopes:
        if not _SCOPE_TOKEN.fullmatch(scope):
            raise ScopeSyntaxError(f"scope {scope!r} contains characters RFC 6749 §3.3 forbids")
    return scopes


def format_scope(scopes: Iterable[str]) -> str:
    return " ".join(sorted(scopes))


# ----------------------------------------------------------------------- tokens


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified bearer token speaks for. Routes scope their data by `organisation_id`."""

    client_id: str
    organisation_id: str
    scopes: frozenset[str]
    token_id: str
    expires_at: datetime
    credential: str = ""


class ClientCheck:
    """Whether a token's client still stands: enabled, and still on the secret the token
    was issued for. One indexed read per client per `ttl_seconds`, so a disabled or
    rotated client's tokens stop working within that many seconds, not at expiry.
    """

    MAX_ENTRIES = 10_000

    def __init__(self, database: Database, ttl_seconds: float) -> None:
        self.database = database
        self.ttl_seconds = ttl_seconds
        self._lock = threading.Lock()
        self._current: dict[str, tuple[float, str | None]] = {}

    def honours(self, client_id: str, credential: str) -> bool:
        now = time.monotonic()
        with self._lock:
            cached = self._current.get(client_id)
        if cached is None or cached[0] <= now:
            current = current_credential(self.database, client_id)
            with self._lock:
                if len(self._current) >= self.MAX_ENTRIES:
                    self._current.clear()  # bounded memory; refilled by one read per client
                self._current[client_id] = (now + self.ttl_seconds, current)
        else:
            current = cached[1]
        return current is not None and hmac.compare_digest(current, credential)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scopes: frozenset[str]


@dataclass(frozen=True)
class TokenService:
    issuer: str
    key: bytes = field(repr=False)
    ttl_seconds: int
    client_check: ClientCheck | None = None
    """None only where no database is at hand; the service always has one."""

    def issue(
        self, client: AuthenticatedClient, scopes: frozenset[str], *, now: int | None = None
    ) -> IssuedToken:
        assert scopes <= client.scopes, "callers narrow scopes, never widen them"
        issued_at = int(time.time()) if now is None else now
        claims = {
            "iss": self.issuer,
            "sub": client.client_id,
            "org": client.organisation_id,
            "scope": format_scope(scopes),
            "iat": issued_at,
            "exp": issued_at + self.ttl_seconds,
            "jti": secrets.token_urlsafe(16),
            "cred": client.credential,
        }
        token = jwt.encode(claims, self.key, algorithm=TOKEN_ALGORITHM)
        return IssuedToken(token, self.ttl_seconds, scopes)

    def verify(self, token: str) -> Principal:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.key,
                # Pinned: the header's `alg` is never trusted (no `none`, no key confusion).
                algorithms=[TOKEN_ALGORITHM],
                issuer=self.issuer,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidTokenError("the token has expired") from exc
        except jwt.InvalidIssuerError as exc:
            raise InvalidTokenError("the token was issued by another log") from exc
        except jwt.InvalidSignatureError as exc:
            raise InvalidTokenError("the token signature does not verify") from exc
        except jwt.InvalidTokenError as exc:
            # PyJWT's messages name only claims and formats, never the key.
            raise InvalidTokenError(f"the token is invalid: {exc}") from exc
        organisation, scope, credential = claims["org"], claims["scope"], claims["cred"]
        if not all(isinstance(value, str) for value in (organisation, scope, credential)):
            raise InvalidTokenError("the token's org, scope and cred claims must be strings")
        if self.client_check is not None and not self.client_check.honours(
            str(claims["sub"]), credential
        ):
            raise InvalidTokenError("the token's client was disabled or its secret was rotated")
        try:
            scopes = parse_scope(scope)
        except ScopeSyntaxError as exc:
            raise InvalidTokenError("the token's scope claim is malformed") from exc
        return Principal(
            client_id=claims["sub"],
            organisation_id=organisation,
            scopes=scopes,
            token_id=claims["jti"],
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
            credential=credential,
        )
