"""Settings of the HTTP service and CLI (environment variables `CARBONLEDGER_*`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from ledger.settings import LedgerSettings


class ApiSettings(LedgerSettings):
    host: str = Field(default="127.0.0.1", description="Address `carbonledger serve` binds to.")
    port: int = Field(
        default=8000, ge=1, le=65535, description="Port `carbonledger serve` binds to."
    )
    workers: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="`carbonledger serve` worker processes (default: the machine's cores).",
    )
    ingest_queue_items: int = Field(
        default=20_000,
        ge=1,
        description="Readings that may wait for the ingest writer; above it POST /v1/readings "
        "answers 503 with Retry-After (group commit, api.ingest_queue).",
    )
    token_ttl_seconds: int = Field(
        default=3600, ge=60, le=3600, description="Lifetime of issued bearer tokens (at most 1 h)."
    )
    client_check_seconds: float = Field(
        default=5,
        ge=0,
        le=60,
        description=(
            "How long the service trusts its last look at a client: a disabled or rotated "
            "client's tokens are refused at most this many seconds later."
        ),
    )
    token_secret: SecretStr | None = Field(
        default=None,
        description="HS256 key for bearer tokens (default: DATA_DIR/token-secret, made on init).",
    )
    token_secret_file: Path | None = Field(
        default=None, description="File holding the token key (default DATA_DIR/token-secret)."
    )
    max_request_bytes: int = Field(
        default=1 << 20, ge=1024, description="Largest request body accepted (413 above it)."
    )

    max_readings_request_bytes: int = Field(
        default=8 << 20,
        ge=1024,
        description="Largest body accepted by POST /v1/readings (a batch of signed readings).",
    )
    expiry_sweep_seconds: float = Field(
        default=3600,
        ge=0,
        le=86400,
        description=(
            "How often `serve` expires certificates past their validity "
            "(`certificate.expired/1`); 0 turns the sweep off."
        ),
    )

    def resolved_token_secret_file(self) -> Path:
        return self.token_secret_file or self.data_dir / "token-secret"
