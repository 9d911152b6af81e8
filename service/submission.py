"""Accepting an upload: admission checks, streaming to storage, recording the job."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request

from service import jobs
from service.digests import expected_sha256
from service.errors import (
    BadRequest,
    Conflict,
    ProblemError,
    UnprocessableContent,
)
from service.intake import Format, check_declared_size, check_media_type, receive
from service.models import Job
from service.runtime import Runtime
from service.storage import job_paths, remove_job_files

MAX_IDEMPOTENCY_KEY_CHARS = 255


class SubmitQuery(BaseModel):
    """Query parameters of POST /jobs; the options may also come as multipart form fields."""

    model_config = ConfigDict(extra="forbid")

    format: Format | None = Field(default=None, description="auto (default), csv, tsv, jsonl, json")
    delimiter: str | None = Field(
        default=None, min_length=1, max_length=1, description="CSV delimiter (one character)"
    )
    header: bool | None = Field(default=None, description="Whether the first CSV row is the header")
    encoding: str | None = Field(default=None, description="auto (BOM, then UTF-8) or a codec name")
    max_errors: int | None = Field(
        default=None, ge=0, description="More failed rows than this fails the job (default 1000)"
    )
    filename: str | None = Field(default=None, description="File name of a raw-body upload")

    def options(self) -> dict[str, Any]:
        given = self.model_dump(exclude_unset=True, exclude={"filename"})
        return {name: value for name, value in given.items() if value is not None}


@dataclass
class Submitted:
    job: Job
    created: bool  # False: an idempotent retry answered with the original job


async def submit(request: Request, runtime: Runtime, owner: str, query: SubmitQuery) -> Submitted:
    """Store the uploaded file durably and record its job; both are on disk when this returns."""
    try:
        return await _submit(request, runtime, owner, query)
    except ProblemError as refused:
        runtime.metrics.uploads.labels(outcome=str(refused.status)).inc()
        raise


async def _submit(request: Request, runtime: Runtime, owner: str, query: SubmitQuery) -> Submitted:
    settings = runtime.settings
    media_type = check_media_type(request)
    declared = check_declared_size(request, media_type, settings.max_upload_bytes)
    expected = expected_sha256(request.headers)
    key = idempotency_key(request)
    if key is None:
        await runtime.admission.check(declared)
        return Submitted(await _store(request, runtime, owner, query, media_type, expected), True)
    in_flight = (owner, key)
    if in_flight in runtime.uploads_in_flight:
        raise Conflict("An upload with this Idempotency-Key is still in progress.")
    runtime.uploads_in_flight.add(in_flight)
    try:
        async with runtime.sessions() as session:
            original = await jobs.find_by_idempotency_key(session, owner, key)
        if original is not None:
            return Submitted(
                await _replay(request, runtime, query, media_type, expected, original), False
            )
        await runtime.admission.check(declared)
        job = await _store(request, runtime, owner, query, media_type, expected, key)
        return Submitted(job, True)
    finally:
        runtime.uploads_in_flight.discard(in_flight)


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    key = key.strip().strip('"')
    if not key or len(key) > MAX_IDEMPOTENCY_KEY_CHARS:
        raise BadRequest(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters.")
    return key


async def _store(
    request: Request,
    runtime: Runtime,
    owner: str,
    query: SubmitQuery,
    media_type: str,
    expected: str | None,
    key: str | None = None,
) -> Job:
    settings = runtime.settings
    job_id = jobs.new_job_id()
    paths = job_paths(settings.data_dir, job_id)
    upload = await receive(
        request,
        media_type=media_type,
        query_options=query.options(),
        file_name=query.filename,
        incoming_dir=settings.data_dir / "incoming",
        destination=paths.upload,
        max_bytes=settings.max_upload_bytes,
        expected_sha256=expected,
    )
    job = jobs.new_job(
        job_id=job_id,
        owner=owner,
        upload=upload,
        retention=timedelta(hours=settings.retention_hours),
        idempotency_key=key,
    )
    try:
        await runtime.recorder.record(job)
    except IntegrityError:
        await remove_job_files(paths)
        raise Conflict("Another upload with this Idempotency-Key was accepted meanwhile.") from None
    except Exception:
        await remove_job_files(paths)
        raise
    runtime.admission.accepted(upload.stored.size)
    runtime.metrics.uploads.labels(outcome="accepted").inc()
    runtime.metrics.upload_bytes.inc(upload.stored.size)
    return job


async def _replay(
    request: Request,
    runtime: Runtime,
    query: SubmitQuery,
    media_type: str,
    expected: str | None,
    original: Job,
) -> Job:
    """A retry of an accepted upload: the original job if it is the same upload, else 422."""
    upload = await receive(
        request,
        media_type=media_type,
        query_options=query.options(),
        file_name=query.filename,
        incoming_dir=runtime.settings.data_dir / "incoming",
        destination=None,
        max_bytes=runtime.settings.max_upload_bytes,
        expected_sha256=expected,
    )
    same = (
        upload.stored.sha256 == original.file_sha256
        and upload.options.model_dump() == original.options
    )
    if not same:
        raise UnprocessableContent(
            "This Idempotency-Key was used for a different upload; use a new key."
        )
    return original
