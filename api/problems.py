"""RFC 9457 problem details for every error the API returns.

Every error response is `application/problem+json` with the members `type`, `title`,
`status`, `detail` and `instance` (the request path). `type` is one of the stable URIs
below, `urn:carbonledger:problem:<slug>`; clients branch on it, never on `detail`.
A status without its own slug here uses `about:blank` (RFC 9457 §4.2.1).

| slug                        | status | when                                                 |
| --------------------------- | ------ | ---------------------------------------------------- |
| not-found                   | 404    | no route matches, or the addressed resource is absent |
| method-not-allowed          | 405    | the route exists, not for this method (see `Allow`)  |
| validation-error            | 422    | query, path or body breaks its schema; `errors` lists |
|                             |        | each failing field as {location, field, message}     |
| payload-too-large           | 413    | the body exceeds CARBONLEDGER_MAX_REQUEST_BYTES      |
| json-too-deep               | 400    | a JSON body nests arrays/objects over 32 deep        |
|                             |        | (refused before it is parsed)                        |
| proof-request-invalid       | 400    | well-formed proof parameters the log cannot satisfy: |
|                             |        | index or size beyond the current tree, from > to     |
| unauthorized                | 401    | bearer token missing, malformed, badly signed, from  |
|                             |        | another issuer or expired (`error`: invalid_token,   |
|                             |        | absent when no token was sent)                       |
| forbidden                   | 403    | the token lacks a scope the route needs              |
|                             |        | (`error`: insufficient_scope)                        |
| invalid-client              | 401    | token endpoint: no HTTP Basic, unknown client or     |
|                             |        | wrong secret                                         |
| invalid-request             | 400    | token endpoint: a parameter is missing or repeated   |
| unsupported-grant-type      | 400    | token endpoint: grant_type is not client_credentials |
| invalid-scope               | 400    | token endpoint: a requested scope is not the client's |
| not-owner                   | 403    | the meter, device, account or certificate belongs to |
|                             |        | another organisation                                 |
| meter-exists                | 409    | a meter with this id is already registered           |
| key-exists                  | 409    | this public key is already registered (any meter)    |
| key-already-revoked         | 409    | the key was revoked before; revocation is final      |
| meter-request-invalid       | 400    | a meter or key request breaks a registry rule (e.g. a |
|                             |        | bad public key, revocation before validFrom)         |
| batch-too-large             | 413    | more readings in one batch than the configured limit |
| range-invalid               | 400    | `from`/`to` not ordered, not on interval boundaries, |
|                             |        | or too many intervals                                |
| bundle-request-invalid      | 400    | a proof bundle was asked for with no, too many, or   |
|                             |        | malformed entry indices                              |
| not-anchored                | 409    | no recorded anchor covers the entries of a bundle    |
|                             |        | yet (`anchoredSize`, `logSize`); with the scheduler  |
|                             |        | of `serve`: `Retry-After`, `nextAnchorDueAt` and     |
|                             |        | `retryAfterSeconds`, and `detail` says what it waits |
|                             |        | for                                                  |
| certificate-request-invalid | 400    | a device, account or certificate request breaks a    |
|                             |        | registry rule (e.g. a non-renewable source, hours    |
|                             |        | not on the hour, a partial volume out of range)      |
| retirement-vintage          | 422    | a retirement's reporting period does not contain the |
|                             |        | certificate's production hour (decision 82)          |
| state-conflict              | 409    | the registry's state forbids the request now (device |
|                             |        | exists or not approved, certificate retired, split,  |
|                             |        | expired or withdrawn, ...); `rule`: the stable slug  |
|                             |        | of the certificate rule that refused it (see         |
|                             |        | `ledger.certificates.rules`), when a rule did         |
| not-ready                   | 503    | the log is not initialised or the database is down   |
| ingest-busy                 | 503    | too many readings wait for the ingest writer; retry  |
|                             |        | after `Retry-After` seconds (nothing was written)    |
| internal-error              | 500    | an unexpected failure; logged, never described       |

Token-endpoint and bearer-token problems also carry `error`, the OAuth 2.0 error code
(RFC 6749 §5.2, RFC 6750 §3.1), so OAuth client libraries understand them.
"""

from __future__ import annotations

import http
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from api.anchor_wait import anchor_wait_of, anchoring_service
from api.schemas.problem import OAuthProblem, Problem, ValidationProblem
from attestation.bundles.build import BundleRequestError, NotYetAnchoredError
from ledger.certificates.rules import (
    CertificateRequestError,
    NotOwnedError,
    RecordNotFoundError,
    RuleViolationError,
    StateConflictError,
    VintageMismatchError,
)
from ledger.log.merkle import ProofRequestError
from ledger.log.store import EntryNotFoundError, LogNotInitialisedError

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:carbonledger:problem:"


@dataclass(frozen=True, slots=True)
class ProblemType:
    slug: str
    status: int
    title: str
    schema: type[Problem] = Problem
    """The body model, for the OpenAPI document."""

    @property
    def uri(self) -> str:
        return PROBLEM_TYPE_PREFIX + self.slug


NOT_FOUND = ProblemType("not-found", 404, "Not found")
METHOD_NOT_ALLOWED = ProblemType("method-not-allowed", 405, "Method not allowed")
VALIDATION_ERROR = ProblemType(
    "validation-error", 422, "Request validation failed", ValidationProblem
)
PAYLOAD_TOO_LARGE = ProblemType("payload-too-large", 413, "Request body too large")
JSON_TOO_DEEP = ProblemType("json-too-deep", 400, "JSON nested too deep")
PROOF_REQUEST_INVALID = ProblemType("proof-request-invalid", 400, "Proof request invalid")
UNAUTHORIZED = ProblemType("unauthorized", 401, "Authentication required", OAuthProblem)
FORBIDDEN = ProblemType("forbidden", 403, "Insufficient scope", OAuthProblem)
INVALID_CLIENT = ProblemType("invalid-client", 401, "Client authentication failed", OAuthProblem)
INVALID_REQUEST = ProblemType("invalid-request", 400, "Invalid token request", OAuthProblem)
UNSUPPORTED_GRANT_TYPE = ProblemType(
    "unsupported-grant-type", 400, "Unsupported grant type", OAuthProblem
)
INVALID_SCOPE = ProblemType("invalid-scope", 400, "Invalid scope", OAuthProblem)
NOT_OWNER = ProblemType("not-owner", 403, "Resource of another organisation")
METER_EXISTS = ProblemType("meter-exists", 409, "Meter already registered")
KEY_EXISTS = ProblemType("key-exists", 409, "Key already registered")
KEY_ALREADY_REVOKED = ProblemType("key-already-revoked", 409, "Key already revoked")
METER_REQUEST_INVALID = ProblemType("meter-request-invalid", 400, "Meter request invalid")
BATCH_TOO_LARGE = ProblemType("batch-too-large", 413, "Too many readings in one batch")
RANGE_INVALID = ProblemType("range-invalid", 400, "Range invalid")
BUNDLE_REQUEST_INVALID = ProblemType("bundle-request-invalid", 400, "Bundle request invalid")
NOT_ANCHORED = ProblemType("not-anchored", 409, "Not anchored yet")
CERTIFICATE_REQUEST_INVALID = ProblemType(
    "certificate-request-invalid", 400, "Certificate request invalid"
)
RETIREMENT_VINTAGE = ProblemType(
    "retirement-vintage", 422, "Reporting period does not match the certificate's production"
)
STATE_CONFLICT = ProblemType("state-conflict", 409, "Conflicts with the registry's state")
NOT_READY = ProblemType("not-ready", 503, "Service not ready")
INGEST_BUSY = ProblemType("ingest-busy", 503, "Ingest queue full")
INTERNAL_ERROR = ProblemType("internal-error", 500, "Internal server error")

PROBLEM_TYPES: tuple[ProblemType, ...] = (
    NOT_FOUND,
    METHOD_NOT_ALLOWED,
    VALIDATION_ERROR,
    PAYLOAD_TOO_LARGE,
    JSON_TOO_DEEP,
    PROOF_REQUEST_INVALID,
    UNAUTHORIZED,
    FORBIDDEN,
    INVALID_CLIENT,
    INVALID_REQUEST,
    UNSUPPORTED_GRANT_TYPE,
    INVALID_SCOPE,
    NOT_OWNER,
    METER_EXISTS,
    KEY_EXISTS,
    KEY_ALREADY_REVOKED,
    METER_REQUEST_INVALID,
    BATCH_TOO_LARGE,
    RANGE_INVALID,
    BUNDLE_REQUEST_INVALID,
    NOT_ANCHORED,
    CERTIFICATE_REQUEST_INVALID,
    RETIREMENT_VINTAGE,
    STATE_CONFLICT,
    NOT_READY,
    INGEST_BUSY,
    INTERNAL_ERROR,
)

# Framework errors carry only a status code; these are the types they map to.
_TYPE_BY_STATUS = {
    kind.status: kind
    for kind in (NOT_FOUND, METHOD_NOT_ALLOWED, PAYLOAD_TOO_LARGE, NOT_READY, INTERNAL_ERROR)
}
_INTERNAL_ERROR_DETAIL = "the server failed to handle this request; the error has been logged"


class ProblemError(HTTPException):
    """Raise to answer with a problem of a known type.

    It is an `HTTPException` so that FastAPI passes it through untouched wherever it
    re-raises those (body parsing, security dependencies).
    """

    def __init__(
        self,
        kind: ProblemType,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        extensions: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(kind.status, detail, dict(headers) if headers else None)
        self.kind = kind
        self.problem_detail = detail
        self.extensions: dict[str, Any] = dict(extensions or {})


class PayloadTooLargeError(ProblemError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            PAYLOAD_TOO_LARGE,
            f"the request body exceeds the limit of {limit} bytes",
            # The rest of the body is never read, so the connection cannot be reused.
            headers={"Connection": "close"},
        )


def problem_body(
    kind: ProblemType,
    detail: str | None,
    instance: str | None,
    extensions: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"type": kind.uri, "title": kind.title, "status": kind.status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    for name, value in (extensions or {}).items():
        # Extensions must not shadow the standard members.
        assert name not in body, f"problem extension {name!r} clashes with a standard member"
        body[name] = value
    return body


def problem_response(
    kind: ProblemType,
    detail: str | None = None,
    *,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> JSONResponse:
    return JSONResponse(
        problem_body(kind, detail, instance, extensions),
        status_code=kind.status,
        headers=dict(headers) if headers else None,
        media_type=PROBLEM_MEDIA_TYPE,
    )


def _generic_problem(status: int, detail: str | None, instance: str) -> dict[str, Any]:
    """`about:blank` problem: the title is the status phrase (RFC 9457 §4.2.1)."""
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    body: dict[str, Any] = {"type": "about:blank", "title": phrase, "status": status}
    if detail and detail != phrase:
        body["detail"] = detail
    body["instance"] = instance
    return body


# ------------------------------------------------------------------------- handlers


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    instance = request.url.path
    headers = dict(exc.headers) if exc.headers else None
    if isinstance(exc, ProblemError):
        return problem_response(
            exc.kind,
            exc.problem_detail,
            instance=instance,
            headers=headers,
            extensions=exc.extensions,
        )
    if exc.status_code < 400:
        # Not an error (a redirect or 304 raised as an exception): nothing to describe.
        return Response(status_code=exc.status_code, headers=headers)
    # Only text details are shown; FastAPI allows any JSON there, which is not ours to echo.
    detail: str | None = exc.detail if isinstance(exc.detail, str) else None
    kind = _TYPE_BY_STATUS.get(exc.status_code)
    if kind is None:
        return JSONResponse(
            _generic_problem(exc.status_code, detail, instance),
            status_code=exc.status_code,
            headers=headers,
            media_type=PROBLEM_MEDIA_TYPE,
        )
    if detail == http.HTTPStatus(exc.status_code).phrase:
        detail = None  # Starlette's default: say something more useful below
    if kind is NOT_FOUND and detail is None:
        detail = f"there is no resource at {instance}"
    elif kind is METHOD_NOT_ALLOWED and detail is None:
        allowed = (headers or {}).get("Allow")
        detail = f"{request.method} is not allowed here"
        if allowed:
            detail += f"; allowed: {allowed}"
    elif kind is INTERNAL_ERROR:
        detail = _INTERNAL_ERROR_DETAIL
    return problem_response(kind, detail, instance=instance, headers=headers)


def _field_path(parts: Sequence[Any]) -> str:
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    # The offending input is not echoed back: it may be large or hold a secret.
    errors = [
        {
            "location": str(error["loc"][0]) if error.get("loc") else "",
            "field": _field_path(error.get("loc", ())[1:]),
            "message": str(error.get("msg", "invalid")),
        }
        for error in exc.errors()
    ]
    count = len(errors)
    detail = f"{count} field{'s' if count != 1 else ''} failed validation"
    return problem_response(
        VALIDATION_ERROR, detail, instance=request.url.path, extensions={"errors": errors}
    )


async def _proof_request_error(request: Request, exc: Exception) -> Response:
    return problem_response(PROOF_REQUEST_INVALID, str(exc), instance=request.url.path)


async def _entry_not_found(request: Request, exc: Exception) -> Response:
    return problem_response(NOT_FOUND, str(exc), instance=request.url.path)


async def _bundle_request_error(request: Request, exc: Exception) -> Response:
    return problem_response(BUNDLE_REQUEST_INVALID, str(exc), instance=request.url.path)


def _not_anchored(request: Request, exc: Exception) -> Response:
    # Sync: the forecast reads the database, so Starlette runs this in its threadpool.
    assert isinstance(exc, NotYetAnchoredError)
    wait = anchor_wait_of(anchoring_service(request))
    return problem_response(
        NOT_ANCHORED,
        f"{exc}; {wait.sentence()}",
        instance=request.url.path,
        headers=wait.headers(),
        extensions={
            "anchoredSize": exc.anchored_size,
            "logSize": exc.log_size,
            "nextAnchorDueAt": wait.next_anchor_due_at,
            "retryAfterSeconds": wait.retry_after_seconds,
        },
    )


def certificate_problem(exc: CertificateRequestError) -> ProblemError:
    """The problem for a device, account or certificate error (most specific class first)."""
    if isinstance(exc, RecordNotFoundError):
        return ProblemError(NOT_FOUND, str(exc))
    if isinstance(exc, NotOwnedError):
        return ProblemError(NOT_OWNER, str(exc))
    if isinstance(exc, VintageMismatchError):
        return ProblemError(RETIREMENT_VINTAGE, str(exc))
    if isinstance(exc, RuleViolationError):
        return ProblemError(STATE_CONFLICT, str(exc), extensions={"rule": exc.rule})
    if isinstance(exc, StateConflictError):
        return ProblemError(STATE_CONFLICT, str(exc))
    return ProblemError(CERTIFICATE_REQUEST_INVALID, str(exc))


async def _certificate_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CertificateRequestError)
    problem = certificate_problem(exc)
    return problem_response(
        problem.kind,
        problem.problem_detail,
        instance=request.url.path,
        extensions=problem.extensions,
    )


async def _log_not_initialised(request: Request, exc: Exception) -> Response:
    return problem_response(NOT_READY, str(exc), instance=request.url.path)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    # Starlette's ServerErrorMiddleware re-raises after this response, so the server
    # logs the traceback; the client learns nothing about the internals.
    return problem_response(INTERNAL_ERROR, _INTERNAL_ERROR_DETAIL, instance=request.url.path)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ProofRequestError, _proof_request_error)
    app.add_exception_handler(EntryNotFoundError, _entry_not_found)
    app.add_exception_handler(LogNotInitialisedError, _log_not_initialised)
    app.add_exception_handler(BundleRequestError, _bundle_request_error)
    app.add_exception_handler(NotYetAnchoredError, _not_anchored)
    # The ledger's device, account and certificate functions raise these; one mapping for all.
    app.add_exception_handler(CertificateRequestError, _certificate_error)
    app.add_exception_handler(Exception, _unexpected_error)


# -------------------------------------------------------------------------- OpenAPI


def problem_responses(*kinds: ProblemType) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entry documenting which problems a route may answer with."""
    by_status: defaultdict[int, list[ProblemType]] = defaultdict(list)
    for kind in kinds:
        by_status[kind.status].append(kind)
    responses: dict[int | str, dict[str, Any]] = {}
    for status, group in sorted(by_status.items()):
        schemas = {kind.schema.__name__ for kind in group}
        # One status may have several types with different bodies (401: token or client).
        schema_name = group[0].schema.__name__ if len(schemas) == 1 else Problem.__name__
        responses[status] = {
            "description": "; ".join(f"`{kind.uri}`: {kind.title}" for kind in group),
            "content": {
                PROBLEM_MEDIA_TYPE: {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}
            },
        }
    return responses


def problem_component_schemas() -> dict[str, Any]:
    """JSON schemas of the problem bodies, for `components.schemas` of the OpenAPI document."""
    schemas: dict[str, Any] = {}
    for model in (Problem, ValidationProblem, OAuthProblem):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas
