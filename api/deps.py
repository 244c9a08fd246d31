"""FastAPI dependencies: the registry, the token service, client and bearer authentication.

Routes never reach into `app.state` themselves; they declare what they need:

    def route(registry: RegistryDep, principal: Annotated[Principal, require_scopes("log:read")])

`require_scopes` also puts the scopes into the OpenAPI document, so every protected
operation shows what it needs.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import unquote_plus

from fastapi import Depends, HTTPException, Request, Security
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import HTTPBasic, HTTPBasicCredentials, OAuth2, SecurityScopes

from api.ingest_queue import IngestQueue
from api.problems import FORBIDDEN, INVALID_CLIENT, UNAUTHORIZED, ProblemError
from api.security import KNOWN_SCOPES, InvalidTokenError, Principal, TokenService, format_scope
from ledger.access.clients import AuthenticatedClient, authenticate_client
from ledger.registry import Registry

# A URL, not a credential.
TOKEN_URL = "/auth/token"  # noqa: S105
REALM = "carbonledger"


async def get_registry(request: Request) -> Registry:
    registry: Registry = request.app.state.registry
    return registry


async def get_token_service(request: Request) -> TokenService:
    tokens: TokenService = request.app.state.tokens
    return tokens


async def get_ingest_queue(request: Request) -> IngestQueue:
    queue: IngestQueue = request.app.state.ingest
    return queue


RegistryDep = Annotated[Registry, Depends(get_registry)]
IngestQueueDep = Annotated[IngestQueue, Depends(get_ingest_queue)]
TokenServiceDep = Annotated[TokenService, Depends(get_token_service)]


# ------------------------------------------------------------- client authentication


class _ClientBasic(HTTPBasic):
    """HTTP Basic for the token endpoint, failing with an `invalid_client` problem."""

    def make_not_authenticated_error(self) -> HTTPException:
        return _invalid_client("send the client id and secret with HTTP Basic authentication")


client_basic = _ClientBasic(
    scheme_name="clientBasic",
    realm=REALM,
    description="Client id and secret of an API client, for `POST /auth/token` only.",
)


def _invalid_client(detail: str) -> ProblemError:
    return ProblemError(
        INVALID_CLIENT,
        detail,
        headers={"WWW-Authenticate": f'Basic realm="{REALM}"'},
        extensions={"error": "invalid_client"},
    )


def authenticated_client(
    credentials: Annotated[HTTPBasicCredentials, Depends(client_basic)],
    registry: RegistryDep,
) -> AuthenticatedClient:
    """The API client named by HTTP Basic credentials (a database read: runs in the threadpool)."""
    # RFC 6749 §2.3.1: id and secret are form-urlencoded before the Basic encoding.
    client_id = unquote_plus(credentials.username)
    client_secret = unquote_plus(credentials.password)
    client = authenticate_client(registry.database, client_id, client_secret)
    if client is None:
        # One message for unknown client, wrong secret and disabled client: no oracle.
        raise _invalid_client("unknown client or wrong secret")
    return client


AuthenticatedClientDep = Annotated[AuthenticatedClient, Depends(authenticated_client)]


# ------------------------------------------------------------- bearer authentication

bearer_scheme = OAuth2(
    flows=OAuthFlows(
        clientCredentials=OAuthFlowClientCredentials(tokenUrl=TOKEN_URL, scopes=dict(KNOWN_SCOPES))
    ),
    scheme_name="clientCredentials",
    description=(
        "OAuth 2.0 client credentials: `POST /auth/token` with HTTP Basic client id and "
        "secret, then send `Authorization: Bearer <access_token>`."
    ),
    # Missing credentials are answered below as a problem with the RFC 6750 challenge.
    auto_error=False,
)


def _bearer_challenge(error: str | None, scopes: list[str]) -> dict[str, str]:
    parameters = [f'realm="{REALM}"']
    if error is not None:
        parameters.append(f'error="{error}"')
    if scopes:
        parameters.append(f'scope="{format_scope(scopes)}"')
    return {"WWW-Authenticate": "Bearer " + ", ".join(parameters)}


async def authenticate(
    security_scopes: SecurityScopes,
    authorization: Annotated[str | None, Depends(bearer_scheme)],
    tokens: TokenServiceDep,
) -> Principal:
    """Verify the bearer token and check it holds every scope the route chain requires."""
    required = security_scopes.scopes
    if not authorization:
        # RFC 6750 §3.1: a request without credentials gets the challenge but no error code.
        raise ProblemError(
            UNAUTHORIZED,
            "this route needs a bearer token from POST /auth/token",
            headers=_bearer_challenge(None, required),
        )
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    try:
        if scheme.lower() != "bearer" or not token:
            raise InvalidTokenError("the Authorization header is not `Bearer <token>`")
        principal = tokens.verify(token)
    except InvalidTokenError as exc:
        raise ProblemError(
            UNAUTHORIZED,
            str(exc),
            headers=_bearer_challenge("invalid_token", required),
            extensions={"error": "invalid_token"},
        ) from exc
    missing = set(required) - principal.scopes
    if missing:
        raise ProblemError(
            FORBIDDEN,
            f"the token lacks the scope {format_scope(missing)}",
            headers=_bearer_challenge("insufficient_scope", required),
            extensions={"error": "insufficient_scope"},
        )
    return principal


def require_scopes(*scopes: str) -> Any:
    """A dependency marker: a valid bearer token holding all `scopes`; yields its `Principal`.

    Use as `Annotated[Principal, require_scopes("log:read")]`, or in `dependencies=[...]`.
    With no scopes it accepts any valid token.
    """
    unknown = set(scopes) - set(KNOWN_SCOPES)
    # Fails at import time, so a typo in a scope name cannot ship as an open route.
    if unknown:
        raise ValueError(f"unknown scopes {sorted(unknown)}; add them to api.security.KNOWN_SCOPES")
    return Security(authenticate, scopes=list(scopes))
