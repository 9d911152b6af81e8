"""The job table and the public models the API returns."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, field_serializer
from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, MetaData
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel

from service.ids import random_uuid
from service.options import JobOptions

# A naming convention keeps constraint names identical on SQLite and PostgreSQL,
# which Alembic needs to alter them later.
SQLModel.metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def new_job_id() -> str:
    """A job id: a random UUID, unguessable."""
    return str(random_uuid())


def is_job_id(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def utcnow() -> datetime:
    return datetime.now(UTC)


class JobStatus(enum.StrEnum):
    """Where a job is in its life; only the runner moves a job between these."""

    queued = "queued"  # stored and waiting for a worker
    running = "running"  # a worker is parsing it
    succeeded = "succeeded"  # parsed; the result is complete
    failed = "failed"  # could not be parsed; `error_code` says why
    cancelled = "cancelled"  # stopped at the client's request

    @property
    def done(self) -> bool:
        return self in FINISHED_STATUSES


FINISHED_STATUSES = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled})


def _timestamp() -> Any:
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


class JobBase(SQLModel):
    file_name: str
    file_size: int = Field(sa_type=BigInteger)
    file_sha256: str
    media_type: str
    content_encoding: str | None = None
    options: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Job(JobBase, table=True):
    __tablename__ = "job"
    __table_args__ = (
        Index("ix_job_status_created", "status", "created_at"),
        Index("ix_job_owner_created", "owner", "created_at"),
        Index("ix_job_owner_idempotency", "owner", "idempotency_key", unique=True),
    )

    id: str = Field(primary_key=True, max_length=36)
    owner: str = Field(default="", max_length=64)
    idempotency_key: str | None = Field(default=None, max_length=255)
    status: JobStatus = Field(
        default=JobStatus.queued,
        sa_type=SAEnum(JobStatus, native_enum=False, length=16, create_constraint=False),
    )
    attempts: int = 0
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    expires_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, index=True)
    )
    started_at: datetime | None = _timestamp()
    finished_at: datetime | None = _timestamp()
    # Written by the worker running the job at a fixed interval, apart from progress, so a
    # heartbeat neither changes the ETag nor wakes watchers; a stale one marks a dead worker.
    heartbeat_at: datetime | None = _timestamp()
    # When the job was last handed to the broker again (null: only when it was accepted).
    dispatched_at: datetime | None = _timestamp()
    format: str | None = Field(default=None, max_length=16)
    phase: str | None = Field(default=None, max_length=16)
    bytes_done: int = Field(default=0, sa_type=BigInteger)
    percent: float = 0.0
    rows_done: int = Field(default=0, sa_type=BigInteger)
    rows_failed: int = Field(default=0, sa_type=BigInteger)
    rate_bytes_per_s: float | None = None
    eta_seconds: float | None = None
    result: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    error_code: str | None = Field(default=None, max_length=64)
    error_message: str | None = None


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


class _PublicModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class FileInfo(_PublicModel):
    name: str
    size: int
    sha256: str
    media_type: str


class Progress(_PublicModel):
    bytes_total: int
    bytes_done: int
    percent: float
    rows_done: int
    rows_failed: int
    rate_bytes_per_s: float | None
    eta_seconds: float | None
    phase: str | None


class ColumnSummary(_PublicModel):
    name: str
    type: str
    nulls: int


class Dialect(_PublicModel):
    delimiter: str
    quotechar: str
    header: bool


class JobResult(_PublicModel):
    rows: int
    rows_failed: int
    encoding: str
    dialect: Dialect | None
    columns: list[ColumnSummary]


class JobError(_PublicModel):
    code: str
    message: str


class JobLinks(_PublicModel):
    self: str
    result: str  # NDJSON, or the format `Accept` asks for
    result_ndjson: str  # then one link per format: ?format=
    result_json: str
    result_csv: str
    result_parquet: str
    result_arrow: str
    errors: str
    events: str


class JobPublic(_PublicModel):
    """A job as clients see it."""

    id: str
    status: JobStatus
    done: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    expires_at: datetime
    file: FileInfo
    options: JobOptions
    format: str | None
    progress: Progress
    result: JobResult | None
    error: JobError | None
    links: JobLinks

    @field_serializer("created_at", "started_at", "finished_at", "updated_at", "expires_at")
    def _iso_utc(self, value: datetime | None) -> str | None:
        value = as_utc(value)
        if value is None:
            return None
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    @classmethod
    def from_job(cls, job: Job) -> JobPublic:
        base = f"/jobs/{job.id}"
        status = JobStatus(job.status)
        return cls(
            id=job.id,
            status=status,
            done=status.done,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            updated_at=job.updated_at,
            expires_at=job.expires_at,
            file=FileInfo(
                name=job.file_name,
                size=job.file_size,
                sha256=job.file_sha256,
                media_type=job.media_type,
            ),
            options=JobOptions.stored(job.options),
            format=job.format,
            progress=Progress(
                bytes_total=job.file_size,
                bytes_done=job.bytes_done,
                percent=job.percent,
                rows_done=job.rows_done,
                rows_failed=job.rows_failed,
                rate_bytes_per_s=job.rate_bytes_per_s,
                eta_seconds=job.eta_seconds,
                phase=job.phase,
            ),
            result=(
                JobResult.model_validate(job.result)
                if status is JobStatus.succeeded and job.result
                else None
            ),
            error=(
                JobError(code=job.error_code, message=job.error_message or "")
                if status is JobStatus.failed and job.error_code
                else None
            ),
            links=JobLinks(
                self=base,
                result=f"{base}/result",
                result_ndjson=f"{base}/result?format=ndjson",
                result_json=f"{base}/result?format=json",
                result_csv=f"{base}/result?format=csv",
                result_parquet=f"{base}/result?format=parquet",
                result_arrow=f"{base}/result?format=arrow",
                errors=f"{base}/errors",
                events=f"{base}/events",
            ),
        )


class JobPage(_PublicModel):
    """One page of jobs, newest first."""

    items: list[JobPublic]
    next: str | None


class RowError(_PublicModel):
    line: int
    type: str
    message: str
    raw: str


class RowErrorPage(_PublicModel):
    """One page of row errors, in file order."""

    total: int
    stored: int
    items: list[RowError]
    next: str | None


class Problem(_PublicModel):
    """An RFC 9457 problem document."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None
