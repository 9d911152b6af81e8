"""Settings read from `INGEST_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

GiB = 1024**3
MiB = 1024**2


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INGEST_", extra="ignore")

    data_dir: Path = Path("./data")
    database_url: str = ""
    executor: Literal["inprocess", "celery"] = "inprocess"
    broker_url: str = "redis://127.0.0.1:6379/0"
    celery_queue: str = "ingest"
    max_upload_bytes: int = Field(default=2 * GiB, gt=0)
    max_decompressed_bytes: int = Field(default=20 * GiB, gt=0)
    min_free_bytes: int = Field(default=512 * MiB, ge=0)
    max_concurrent_jobs: int = Field(default=2, ge=1)
    max_queued_jobs: int = Field(default=1000, ge=1)
    progress_interval_s: float = Field(default=1.0, gt=0, le=60)
    max_errors_stored: int = Field(default=10_000, ge=0)
    retention_hours: float = Field(default=168.0, gt=0)
    api_keys: Annotated[list[str], NoDecode] = []
    log_level: str = "INFO"
    shutdown_grace_s: float = Field(default=30.0, ge=0)
    sweep_interval_s: float = Field(default=300.0, gt=0)
    heartbeat_interval_s: float = Field(default=3.0, gt=0, le=60)
    heartbeat_stale_s: float = Field(default=15.0, gt=0)
    recovery_interval_s: float = Field(default=5.0, gt=0)
    dispatch_retry_max_s: float = Field(default=2.0, gt=0)

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
                "heartbeat_stale_s must be at least twice heartbeat_interval_s, "
                "or a live worker could be taken for a dead one"
            )
        return self

    @property
    def sqlalchemy_url(self) -> str:
        """The configured database URL, defaulting to SQLite inside the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'ingest.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment on first use."""
    return Settings()
