"""Wire format of the token endpoint (OAuth 2.0 client credentials, as in the PACT API)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TokenRequestForm(BaseModel):
    """RFC 6749 §4.4.2 access-token request, sent form-encoded."""

    # RFC 6749 §3.2: unrecognised parameters are ignored, not rejected.
    model_config = ConfigDict(extra="ignore")

    # Optional here so that a missing field is the OAuth `invalid_request` problem, not a
    # generic 422 that an OAuth client library would not understand.
    grant_type: str | None = Field(default=None, description="Must be `client_credentials`.")
    scope: str | None = Field(
        default=None,
        description="Space-separated scopes to narrow the token to; all of the client's if absent.",
    )


class TokenResponse(BaseModel):
    """RFC 6749 §5.1 successful access-token response."""

    access_token: str = Field(
        description="A JWT (HS256) to send as `Authorization: Bearer <token>`."
    )
    # A token type name, not a credential.
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
    expires_in: int = Field(ge=1, description="Seconds until the token expires.")
    scope: str = Field(description="The granted scopes, space separated.")
