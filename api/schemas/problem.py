"""RFC 9457 problem details: the body of every error response (`application/problem+json`).

The `type` values and their meaning are listed in `api.problems`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Problem(BaseModel):
    """An error response. Extension members (`errors`, `error`, …) sit beside the standard ones."""

    # RFC 9457 §3.2: problem types may add members; clients ignore the ones they don't know.
    model_config = ConfigDict(extra="allow")

    type: str = Field(
        default="about:blank",
        description="URI naming the kind of problem: `urn:carbonledger:problem:<slug>`.",
    )
    title: str = Field(
        description="Short summary of the problem type; the same for every occurrence."
    )
    status: int = Field(ge=400, le=599, description="The HTTP status code of this response.")
    detail: str | None = Field(default=None, description="What went wrong in this occurrence.")
    instance: str | None = Field(default=None, description="The request path that failed.")


class FieldError(BaseModel):
    location: str = Field(
        description="Where the field was sent: `query`, `path`, `header` or `body`."
    )
    field: str = Field(
        description="Dotted path of the field inside that location; empty for the whole body."
    )
    message: str


class ValidationProblem(Problem):
    """`urn:carbonledger:problem:validation-error` (422): the request did not match its schema."""

    errors: list[FieldError]


class OAuthProblem(Problem):
    """A token-endpoint or bearer-token error, carrying the OAuth 2.0 error code as `error`."""

    error: str = Field(
        description="OAuth 2.0 error code (RFC 6749 §5.2, RFC 6750 §3.1), e.g. `invalid_token`."
    )
