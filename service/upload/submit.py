"""Accepting an upload: admission checks, the body streamed to storage, the job recorded, and
the answer (idempotent retries answered with the original job)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import Field
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request

from service.errors import (
    BadRequest,
    Conflict,
    ProblemError,
    UnprocessableContent,
)
from service.jobs import queries
from service.models import Job, JobPublic, JobStatus, new_job_id
from service.options import JobOptions
from service.runtime import Runtime
from service.storage import job_paths, remove_job_files
from service.upload.digests import expected_sha256
from service.upload.receive import Upload, receive
from service.upload.request import check_declared_size, check_media_type

logger = logging.getLogger(__name__)

MAX_IDEMPOTENCY_KEY_CHARS = 255
MAX_FILENAME_QUERY_CHARS = 1024


class SubmitQuery(JobOptions):
    """Query parameters of POST /jobs: the options (multipart form fields win over them) and
    the file name of a raw-body upload."""

    filename: str | None = Field(
        default=None,
        max_length=MAX_FILENAME_QUERY_CHARS,
        description="The file name of a raw-body upload (metadata only).",
        examples=["orders.csv"],
    )

    def options(self) -> dict[str, Any]:
        """The options given in the query string, validated; absent ones are left out."""
        return self.model_dump(exclude_unset=True, exclude={"filename"})


@dataclass
class Submitted:
    job: Job
    created: bool  # False: an idempotent retry answered with the original job


async def submit(
    request: Request, runtime: Runtime, owner: str, query: SubmitQuery, *, start: bool = False
) -> Submitted:
    """Store the uploaded file durably and record its job; both are on disk when this returns.

    With `start` (the client waits for the job), a job that a worker can start at once is
    recorded already claimed for it: see `record_job`."""
    try:
        return await _submit(request, runtime, owner, query, start)
    except ProblemError as refused:
        runtime.metrics.uploads.labels(outcome=str(refused.status)).inc()
        raise


@dataclass(frozen=True)
class _Request:
    """What the headers say about an upload, read before its body."""

    request: Request
    query: SubmitQuery
    media_type: str
    content_encoding: str | None
    expected_sha256: str | None


async def _submit(
    request: Request, runtime: Runtime, owner: str, query: SubmitQuery, start: bool
) -> Submitted:
    media_type, content_encoding = check_media_type(request)
    declared = check_declared_size(request, media_type, runtime.settings.max_upload_bytes)
    upload = _Request(
        request, query, media_type, content_encoding, expected_sha256(request.headers)
    )
    key = idempotency_key(request)
    if key is None:
        await runtime.admission.check(declared)
        return Submitted(await _store(runtime, upload, owner, start=start), True)
    in_flight = (owner, key)
    if in_flight in runtime.uploads_in_flight:
        raise Conflict("An upload with this Idempotency-Key is still in progress.")
    runtime.uploads_in_flight.add(in_flight)
    try:
        async with runtime.sessions() as session:
            original = await queries.find_by_idempotency_key(session, owner, key)
        if original is not None:
            return Submitted(await _replay(runtime, upload, original), False)
        await runtime.admission.check(declared)
        return Submitted(await _store(runtime, upload, owner, key, start=start), True)
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


async def _receive(runtime: Runtime, upload: _Request, destination: Path | None) -> Upload:
    settings = runtime.settings
    return await receive(
        upload.request,
        media_type=upload.media_type,
        content_encoding=upload.content_encoding,
        query_options=upload.query.options(),
        file_name=upload.query.filename,
        incoming_dir=settings.data_dir / "incoming",
        destination=destination,
        max_bytes=settings.max_upload_bytes,
        client_timeout_s=settings.client_timeout_s,
        expected_sha256=upload.expected_sha256,
    )


async def _store(
    runtime: Runtime, upload: _Request, owner: str, key: str | None = None, *, start: bool = False
) -> Job:
    job_id = new_job_id()
    stored = await _receive(runtime, upload, job_paths(runtime.settings.data_dir, job_id).upload)
    return await record_job(runtime, job_id, owner, stored, key, start=start)


async def record_job(
    runtime: Runtime,
    job_id: str,
    owner: str,
    stored: Upload,
    key: str | None = None,
    *,
    start: bool = False,
) -> Job:
    """Record the queued job of an upload already stored durably at its job's upload path,
    through the group commit; every way of uploading ends here. If the job cannot be
    recorded, its files are removed and the refusal raised.

    With `start`, when a worker of this process is idle, the job is recorded already claimed
    (running, first attempt) in the same commit, and `dispatch` hands it to that worker: the
    claim's own transaction is saved. Should this process die before the job ends, the
    job's state is as if a worker had claimed it (start-up queues it again)."""
    settings = runtime.settings
    job = queries.new_job(
        job_id=job_id,
        owner=owner,
        file_name=stored.file_name,
        media_type=stored.media_type,
        content_encoding=stored.content_encoding,
        options=stored.options,
        stored=stored.stored,
        retention=timedelta(hours=settings.retention_hours),
        idempotency_key=key,
        claimed=start and runtime.executor.can_claim_on_accept(),
    )
    try:
        await runtime.recorder.record(job)
    except IntegrityError:
        await remove_job_files(job_paths(settings.data_dir, job_id))
        raise Conflict("Another upload with this Idempotency-Key was accepted meanwhile.") from None
    except Exception:
        await remove_job_files(job_paths(settings.data_dir, job_id))
        raise
    runtime.admission.accepted(stored.stored.size)
    runtime.metrics.uploads.labels(outcome="accepted").inc()
    runtime.metrics.upload_bytes.inc(stored.stored.size)
    return job


async def _replay(runtime: Runtime, upload: _Request, original: Job) -> Job:
    """A retry of an accepted upload: the original job if it is the same upload, else 422."""
    retried = await _receive(runtime, upload, None)
    same = (
        retried.stored.sha256 == original.file_sha256
        and retried.options.model_dump() == original.options
    )
    if not same:
        raise UnprocessableContent(
            "This Idempotency-Key was used for a different upload; use a new key."
        )
    return original


async def dispatch(runtime: Runtime, job_id: str, claimed: Job | None = None) -> None:
    """Hand the job to the executor; if that fails, the sweep hands it over again later."""
    try:
        if claimed is not None:
            await runtime.executor.submit_claimed(claimed)
        else:
            await runtime.executor.submit(job_id)
    except Exception:
        logger.exception("job dispatch failed; it stays queued", extra={"job_id": job_id})


async def answer(
    runtime: Runtime, submitted: Submitted, owner: str, wait: float | None
) -> JobPublic:
    """The job to answer the upload with: as accepted, or, with `Prefer: wait`, once it is
    done or the wait is over (it then starts the job itself rather than leave that to the
    background task that runs after the response)."""
    job = JobPublic.from_job(submitted.job)
    if wait is None:
        return job
    accepted_at = runtime.views.mark()
    if submitted.created:
        claimed = submitted.job if submitted.job.status is JobStatus.running else None
        await dispatch(runtime, job.id, claimed)
    finished = await runtime.views.next_version(
        job.id,
        owner,
        since=None,
        timeout=wait,
        until_done=True,
        known=runtime.views.unkept(job, owner) if submitted.created else None,
        known_at=accepted_at,
    )
    return finished.job
