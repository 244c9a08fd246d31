"""The FastAPI application factory.

    uvicorn.run("api.app:create_app", factory=True)

Start-up migrates the schema forward, opens the registry and loads the token key; it
fails with a message naming `carbonledger init` when the registry was never initialised.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from importlib import metadata
from typing import Any

from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import (
    INTERNAL_ERROR,
    VALIDATION_ERROR,
    PayloadTooLargeError,
    install_problem_handlers,
    problem_component_schemas,
    problem_response,
    problem_responses,
)
from api.routers import anchors, auth, health, log, meters, readings
from api.security import TokenSecretError, TokenService, load_token_secret
from api.settings import ApiSettings
from attestation.chain import ChainError
from attestation.scheduler import AnchorService
from ledger.keyfiles import KeyFileError
from ledger.log import LogNotInitialisedError
from ledger.registry import Registry, open_registry

API_TITLE = "carbonledger"
API_DESCRIPTION = (
    "Signed meter readings in an append-only RFC 9162 Merkle log whose roots are anchored "
    "on chain. Every error is an RFC 9457 `application/problem+json` document."
)
OPENAPI_TAGS = [
    {"name": "health", "description": "Liveness and readiness probes."},
    {"name": "auth", "description": "OAuth 2.0 client credentials: bearer tokens for API clients."},
    {
        "name": "log",
        "description": "The Merkle log: checkpoints and proofs (public), entries (`log:read`).",
    },
    {
        "name": "meters",
        "description": "Meters of the caller's organisation, their keys, readings and energy.",
    },
    {"name": "readings", "description": "Batch ingestion of signed meter readings."},
    {"name": "anchors", "description": "Log roots anchored on chain (public)."},
]


class StartupError(RuntimeError):
    """The service cannot start; the message says what to do."""


def _package_version() -> str:
    try:
        return metadata.version("carbonledger")
    except metadata.PackageNotFoundError:
        return "0.0.0+unknown"


class CarbonledgerAPI(FastAPI):
    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            schema = super().openapi()
            # Routes reference the problem bodies by $ref under application/problem+json
            # (FastAPI would file a `model=` under application/json); define them here.
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(problem_component_schemas())
            _document_validation_problems(schema)
        return self.openapi_schema or {}


def _document_validation_problems(schema: dict[str, Any]) -> None:
    """Point FastAPI's automatic 422 responses at the problem document actually sent."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            response = operation.get("responses", {}).get("422")
            if response and "application/json" in response.get("content", {}):
                operation["responses"]["422"] = problem_responses(VALIDATION_ERROR)[422]
    # Only those automatic responses referenced FastAPI's validation schemas.
    components = schema["components"]["schemas"]
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """Build the application; nothing touches the database until the lifespan starts."""
    settings = settings or ApiSettings()
    app = CarbonledgerAPI(
        title=API_TITLE,
        version=_package_version(),
        description=API_DESCRIPTION,
        openapi_tags=OPENAPI_TAGS,
        lifespan=_lifespan(settings),
    )
    app.state.settings = settings
    install_problem_handlers(app)
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_request_bytes,
        # A batch of 5,000 signed readings is about 1.5 MB; other bodies stay small.
        path_limits={readings.READINGS_PATH: settings.max_readings_request_bytes},
    )
    common = problem_responses(INTERNAL_ERROR)
    for router in (health.router, auth.router, log.router, meters.router, readings.router):
        app.include_router(router, responses=common)
    for router in (anchors.router, anchors.bundle_router):
        app.include_router(router, responses=common)
    return app


def _lifespan(
    settings: ApiSettings,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        registry, tokens = open_services(settings)
        app.state.registry = registry
        app.state.tokens = tokens
        try:
            # Anchoring runs on its own thread when its settings enable it (attestation.scheduler).
            app.state.anchoring = AnchorService.start(registry.log, settings.data_dir)
        except (ChainError, ValidationError) as exc:  # misconfiguration: say so and stop
            registry.close()
            raise StartupError(f"anchoring cannot start: {exc}") from exc
        try:
            yield
        finally:
            if app.state.anchoring is not None:
                app.state.anchoring.close()
            registry.close()

    return lifespan


def open_services(settings: ApiSettings) -> tuple[Registry, TokenService]:
    """Open the registry (migrating it) and load the token key, or explain what is missing."""
    where = make_url(settings.resolved_database_url()).render_as_string(hide_password=True)
    try:
        registry = open_registry(settings, migrate=True)
    except LogNotInitialisedError as exc:
        raise StartupError(
            f"the registry in {where} is not initialised; run `carbonledger init` first"
        ) from exc
    except KeyFileError as exc:
        raise StartupError(f"the log signing key cannot be loaded: {exc}") from exc
    try:
        key = load_token_secret(settings)
    except TokenSecretError as exc:
        registry.close()
        raise StartupError(
            f"{exc}; run `carbonledger init` or set CARBONLEDGER_TOKEN_SECRET"
        ) from exc
    tokens = TokenService(
        issuer=registry.signer.name, key=key, ttl_seconds=settings.token_ttl_seconds
    )
    return registry, tokens


class BodySizeLimitMiddleware:
    """413 for bodies over `max_bytes`: by Content-Length up front, else while streaming.

    A pure ASGI middleware, so chunked bodies are counted as they arrive and nothing
    over the limit is buffered. Starlette's own limiter answers in plain text in some
    paths; this one always answers with a problem document.
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, path_limits: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.path_limits = dict(path_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.path_limits.get(scope["path"], self.max_bytes)
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            # Rejected before the application sees the request, so nothing can change.
            error = PayloadTooLargeError(max_bytes)
            response = problem_response(
                error.kind,
                error.problem_detail,
                instance=Request(scope).url.path,
                headers=error.headers,
            )
            await response(scope, receive, send)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    # An HTTPException: FastAPI re-raises it from body parsing and the
                    # problem handlers turn it into the 413 document.
                    raise PayloadTooLargeError(max_bytes)
            return message

        await self.app(scope, limited_receive, send)
