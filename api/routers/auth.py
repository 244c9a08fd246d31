"""OAuth 2.0 client-credentials token endpoint, shaped like the PACT footprint-exchange API."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response

from api.deps import AuthenticatedClientDep, TokenServiceDep
from api.problems import (
    INVALID_CLIENT,
    INVALID_REQUEST,
    INVALID_SCOPE,
    PAYLOAD_TOO_LARGE,
    UNSUPPORTED_GRANT_TYPE,
    ProblemError,
    problem_responses,
)
from api.schemas.auth import TokenRequestForm, TokenResponse
from api.security import ScopeSyntaxError, format_scope, parse_scope

router = APIRouter(prefix="/auth", tags=["auth"])

GRANT_CLIENT_CREDENTIALS = "client_credentials"
_SINGLE_VALUED = ("grant_type", "scope")


_PROBLEM_BY_OAUTH_ERROR = {
    "invalid_request": INVALID_REQUEST,
    "unsupported_grant_type": UNSUPPORTED_GRANT_TYPE,
    "invalid_scope": INVALID_SCOPE,
}


def _oauth_error(error: str, detail: str) -> ProblemError:
    return ProblemError(_PROBLEM_BY_OAUTH_ERROR[error], detail, extensions={"error": error})


async def _reject_repeated_parameters(request: Request) -> None:
    # RFC 6749 §3.2: parameters must not repeat. FastAPI would silently keep one value;
    # the form is already parsed and cached on the request by now.
    form = await request.form()
    for name in _SINGLE_VALUED:
        if len(form.getlist(name)) > 1:
            raise _oauth_error("invalid_request", f"the parameter {name} is repeated")


@router.post(
    "/token",
    summary="Exchange client credentials for a bearer token",
    description=(
        "HTTP Basic authentication with the client id and secret, and the form field "
        "`grant_type=client_credentials`. `scope` (space separated) narrows the token to "
        "some of the client's scopes; by default it carries all of them."
    ),
    dependencies=[Depends(_reject_repeated_parameters)],
    responses=problem_responses(
        INVALID_REQUEST, UNSUPPORTED_GRANT_TYPE, INVALID_SCOPE, INVALID_CLIENT, PAYLOAD_TOO_LARGE
    ),
)
def issue_token(
    response: Response,
    client: AuthenticatedClientDep,
    tokens: TokenServiceDep,
    form: Annotated[TokenRequestForm, Form()],
) -> TokenResponse:
    grant_type = form.grant_type
    if grant_type is None:
        raise _oauth_error(
            "invalid_request",
            "grant_type is required (form-encoded: grant_type=client_credentials)",
        )
    if grant_type != GRANT_CLIENT_CREDENTIALS:
        raise _oauth_error(
            "unsupported_grant_type", f"grant_type must be {GRANT_CLIENT_CREDENTIALS}"
        )
    try:
        requested = parse_scope(form.scope)
    except ScopeSyntaxError as exc:
        raise _oauth_error("invalid_scope", str(exc)) from exc
    not_granted = requested - client.scopes
    if not_granted:
        raise _oauth_error(
            "invalid_scope", f"the client is not granted {format_scope(not_granted)}"
        )
    issued = tokens.issue(client, requested or client.scopes)
    # RFC 6749 §5.1: token responses must not be cached.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return TokenResponse(
        access_token=issued.access_token,
        expires_in=issued.expires_in,
        scope=format_scope(issued.scopes),
    )
