"""The FastAPI application factory.

    uvicorn.run("api.app:create_app", factory=True)

Start-up migrates the schema forward, opens the registry and loads the token key; it
fails with a message naming `carbonledger init` when the registry was never initialised.
Two background threads run for the app's lifetime: anchoring (`attestation.anchoring.scheduler`) and
the certificate expiry sweep (`CertificateExpiryService`).
"""

from __future__ import annotations

import fcntl
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from api.body_guard import RequestBodyGuard
from api.ingest_queue import IngestQueue
from api.problems import (
    INTERNAL_ERROR,
    VALIDATION_ERROR,
    install_problem_handlers,
    problem_component_schemas,
    problem_responses,
)
from api.routers import (
    accounts,
    anchors,
    auth,
    certificates,
    devices,
    health,
    log,
    meters,
    readings,
    reports,
    tiles,
)
from api.security import ClientCheck, TokenSecretError, TokenService, load_token_secret
from api.settings import ApiSettings
from attestation.anchoring.scheduler import AnchorService
from attestation.chain.errors import ChainError
from ledger.keyfiles import KeyFileError
from ledger.log.store import LogNotInitialisedError
from ledger.registry import Registry, open_registry

logger = logging.getLogger(__name__)

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
    {
        "name": "devices",
        "description": "Generation devices: registration, approval by the issuer, issuance.",
    },
    {"name": "accounts", "description": "Registry accounts of the caller's organisation."},
    {
        "name": "certificates",
        "description": (
            "Granular (hourly, Wh) certificates as W3C VCs: split, transfer, retire, withdraw, "
            "expire; proof bundles (public)."
        ),
    },
    {"name": "reports", "description": "24/7 matching and Scope 2 reports."},
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


def create_app(
    settings: ApiSettings | None = None,
    *,
    primary_lock: Path | None = None,
    on_ready: Callable[[FastAPI], None] | None = None,
) -> FastAPI:
    """Build the application; nothing touches the database until the lifespan starts.

    With `primary_lock` (one of several `serve --workers` processes) the background services
    (anchoring, certificate expiry) run only in the process that holds that file's lock, and
    `on_ready` is called in that process only; the lock dies with its holder, so a restarted
    worker takes over.
    """
    settings = settings or ApiSettings()
    app = CarbonledgerAPI(
        title=API_TITLE,
        version=_package_version(),
        description=API_DESCRIPTION,
        openapi_tags=OPENAPI_TAGS,
        lifespan=_lifespan(settings, primary_lock, on_ready),
    )
    app.state.settings = settings
    install_problem_handlers(app)
    app.add_middleware(
        RequestBodyGuard,
        max_bytes=settings.max_request_bytes,
        # A batch of 5,000 signed readings is about 1.5 MB; other bodies stay small.
        path_limits={readings.READINGS_PATH: settings.max_readings_request_bytes},
    )
    common = problem_responses(INTERNAL_ERROR)
    for router in (health.router, auth.router, log.router, tiles.router):
        app.include_router(router, responses=common)
    for router in (meters.router, readings.router):
        app.include_router(router, responses=common)
    for router in (anchors.router, anchors.bundle_router):
        app.include_router(router, responses=common)
    for router in (
        devices.router,
        accounts.router,
        certificates.router,
        certificates.bundle_router,
        reports.router,
    ):
        app.include_router(router, responses=common)
    return app


def claim_primary(lock_path: Path) -> IO[bytes] | None:
    """The open, exclusively locked file if this process is the primary worker, else None."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = lock_path.open("ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def _lifespan(
    settings: ApiSettings,
    primary_lock: Path | None = None,
    on_ready: Callable[[FastAPI], None] | None = None,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        registry, tokens = open_services(settings)
        app.state.registry = registry
        app.state.tokens = tokens
        lock = claim_primary(primary_lock) if primary_lock is not None else None
        primary = primary_lock is None or lock is not None
        try:
            # Anchoring runs on its own thread when its settings enable it
            # (attestation.anchoring.scheduler), in exactly one process of the service.
            app.state.anchoring = (
                AnchorService.start(registry.log, settings.data_dir) if primary else None
            )
        except (ChainError, ValidationError) as exc:  # misconfiguration: say so and stop
            registry.close()
            raise StartupError(f"anchoring cannot start: {exc}") from exc
        app.state.expiry = (
            CertificateExpiryService.start(registry, settings.expiry_sweep_seconds)
            if primary
            else None
        )
        app.state.ingest = IngestQueue(
            registry.log,
            max_pending_items=settings.ingest_queue_items,
            max_group_items=settings.max_readings_per_batch,
        )
        if primary and on_ready is not None:
            on_ready(app)
        try:
            yield
        finally:
            app.state.ingest.close()
            if app.state.expiry is not None:
                app.state.expiry.close()
            if app.state.anchoring is not None:
                app.state.anchoring.close()
            registry.close()
            if lock is not None:
                lock.close()

    return lifespan


class CertificateExpiryService:
    """Expires certificates past their validity every `interval` seconds, on a daemon thread.

    An idle sweep is one small read and writes nothing (`expire_due_certificates`). A
    failed sweep is logged and retried at the next interval; nothing is lost, since due
    certificates stay due.
    """

    def __init__(self, registry: Registry, interval: float) -> None:
        self.registry = registry
        self.interval = interval
        self.sweeps = 0
        self.expired = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="carbonledger-expiry", daemon=True)

    @classmethod
    def start(cls, registry: Registry, interval: float) -> CertificateExpiryService | None:
        """Start sweeping; None when `interval` is 0 (CARBONLEDGER_EXPIRY_SWEEP_SECONDS)."""
        if interval <= 0:
            return None
        service = cls(registry, interval)
        service._thread.start()
        return service

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def sweep(self) -> list[str]:
        """One sweep now: the ids of the certificates it expired."""
        return certificates.expire_due_certificates(self.registry)

    def close(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        # The first sweep runs at start-up, so a service restarted more often than the
        # interval still expires what fell due.
        while not self._stop.is_set():
            try:
                expired = self.sweep()
            except Exception as exc:  # a database outage or a bug: log it, sweep again later
                self.last_error = f"{type(exc).__name__}: {exc}"
                logger.warning("certificate expiry sweep failed: %s", exc)
            else:
                self.sweeps += 1
                self.expired += len(expired)
                self.last_error = None
                if expired:
                    logger.info("expired %d certificates", len(expired))
            self._stop.wait(self.interval)


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
        issuer=registry.signer.name,
        key=key,
        ttl_seconds=settings.token_ttl_seconds,
        client_check=ClientCheck(registry.database, settings.client_check_seconds),
    )
    return registry, tokens
