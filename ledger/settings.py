"""Settings shared by every part of carbonledger (environment variables `CARBONLEDGER_*`)."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_TIMEZONE = "Asia/Shanghai"
"""China Standard Time, UTC+8 all year: the zone of the grid and factors the registry serves."""


class LedgerSettings(BaseSettings):
    """Where the registry keeps its state. Every field is documented in the README."""

    model_config = SettingsConfigDict(env_prefix="CARBONLEDGER_", extra="ignore")

    data_dir: Path = Field(
        default=Path("var"),
        description="Directory for the SQLite file and key files.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; unset means a SQLite file (WAL) in the data directory.",
    )
    log_origin: str | None = Field(
        default=None,
        description="Checkpoint origin line, fixed at init (default carbonledger.local/<key id>).",
    )
    log_key_file: Path | None = Field(
        default=None,
        description="PKCS#8 PEM Ed25519 key that signs checkpoints (default DATA_DIR/log-key.pem).",
    )

    issuer_key_file: Path | None = Field(
        default=None,
        description="PKCS#8 PEM Ed25519 key signing credentials (default DATA_DIR/issuer-key.pem).",
    )
    certificate_validity_months: int = Field(
        default=12,
        ge=1,
        le=120,
        description="Months after the end of production that a certificate stays transferable.",
    )

    max_readings_per_batch: int = Field(
        default=5000,
        ge=1,
        le=50_000,
        description="Most signed readings accepted in one ingest batch (HTTP or import).",
    )
    reading_future_skew_seconds: int = Field(
        default=300,
        ge=0,
        le=86400,
        description="How far a reading's time may lie ahead of the server clock.",
    )

    timezone: str = Field(
        default=DEFAULT_TIMEZONE,
        description=(
            "IANA time zone of what the registry shows people (the matching chart's axes and "
            "days); machine formats (JSON, CSV, log entries) stay UTC."
        ),
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not an IANA time zone name (such as Asia/Shanghai or UTC)"
            ) from None
        return value

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def resolved_database_url(self) -> str:
        if self.database_url:
            return normalise_database_url(self.database_url)
        return f"sqlite:///{(self.data_dir / 'carbonledger.db').resolve()}"

    def resolved_log_key_file(self) -> Path:
        return self.log_key_file or self.data_dir / "log-key.pem"

    def resolved_issuer_key_file(self) -> Path:
        return self.issuer_key_file or self.data_dir / "issuer-key.pem"


def normalise_database_url(url: str) -> str:
    """Accept plain `postgresql://` URLs and route them to the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
