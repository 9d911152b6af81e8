"""Settings read from `INGEST_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    ByteSize,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

GiB = 1024**3
MiB = 1024**2
KiB = 1024
ENV_PREFIX = "INGEST_"
_SIZES = TypeAdapter(ByteSize)


def _bytes(value: Any) -> Any:
    """A size as a number of bytes, or with a unit: `10MB` (10**6 bytes each), `10MiB` (2**20)."""
    if isinstance(value, str):
        try:
            return int(_SIZES.validate_python(value.strip()))
        except ValidationError:
            raise ValueError(
                "expected a number of bytes, such as 10485760, 10MB or 10MiB"
            ) from None
    return value


Bytes = Annotated[int, BeforeValidator(_bytes)]


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _log_level(value: Any) -> Any:
    level = str(value).strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)} (any case)")
    return level


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    data_dir: Path = Path("./data")
    database_url: str = ""
    executor: Literal["inprocess", "celery"] = "inprocess"
    broker_url: str = "redis://127.0.0.1:6379/0"
    celery_queue: str = "ingest"
    max_upload_bytes: Bytes = Field(default=2 * GiB, gt=0)
    max_decompressed_bytes: Bytes = Field(default=20 * GiB, gt=0)
    min_free_bytes: Bytes = Field(default=512 * MiB, ge=0)
    max_concurrent_jobs: int = Field(default=2, ge=1)
    worker_priority: Literal["idle", "low"] = "idle"
    max_queued_jobs: int = Field(default=1000, ge=1)
    progress_interval_s: float = Field(default=1.0, gt=0, le=60)
    wait_recheck_s: float = Field(default=0.25, gt=0, le=60)
    max_errors_stored: int = Field(default=10_000, ge=0)
    retention_hours: float = Field(default=168.0, gt=0)
    upload_expiry_hours: float = Field(default=24.0, gt=0)
    api_keys: Annotated[list[str], NoDecode] = []
    log_level: Annotated[str, BeforeValidator(_log_level)] = "INFO"
    shutdown_grace_s: float = Field(default=30.0, ge=0)
    sweep_interval_s: float = Field(default=300.0, gt=0)
    client_timeout_s: float = Field(default=60.0, gt=0)
    header_timeout_s: float = Field(default=10.0, gt=0)
    max_header_bytes: Bytes = Field(default=64 * KiB, ge=4 * KiB)
    max_record_bytes: Bytes = Field(default=8 * MiB, ge=64 * KiB)
    max_columns: int = Field(default=10_000, ge=1)
    max_column_name_bytes: Bytes = Field(default=1024, ge=1)
    max_json_depth: int = Field(default=1000, ge=1, le=1000)
    heartbeat_interval_s: float = Field(default=3.0, gt=0, le=60)
    heartbeat_stale_s: float = Field(default=15.0, gt=0)
    recovery_interval_s: float = Field(default=5.0, gt=0)
    dispatch_retry_max_s: float = Field(default=2.0, gt=0)
    spare_converter: bool = True

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @model_validator(mode="after")
    def _stale_after_beats(self) -> Settings:
        if self.heartbeat_stale_s < 2 * self.heartbeat_interval_s:
            raise ValueError(
                f"{ENV_PREFIX}HEARTBEAT_STALE_S={self.heartbeat_stale_s:g} must be at least "
                f"twice {ENV_PREFIX}HEARTBEAT_INTERVAL_S={self.heartbeat_interval_s:g}, "
                "or a live worker could be taken for a dead one"
            )
        return self

    @property
    def sqlalchemy_url(self) -> str:
        """The configured database URL, defaulting to SQLite inside the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'ingest.db').resolve()}"


class ConfigError(Exception):
    """A setting from the environment is not valid; the message names it, one line each."""


def load_settings() -> Settings:
    """Settings from the environment; ConfigError names every bad variable and its value."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc)) from None


def describe_errors(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        if not error["loc"]:  # a rule between settings: its message names them
            lines.append(message)
            continue
        value = error.get("input")
        shown = f"={value!r}" if isinstance(value, str | int | float) else ""
        lines.append(f"{ENV_PREFIX}{str(error['loc'][0]).upper()}{shown} is not valid: {message}")
    return "\n".join(lines)


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment on first use."""
    return load_settings()
