"""The job record: create a row, find one, list a page, count the queue."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service.errors import NotFound
from service.jobs.cursors import JobCursor
from service.models import Job, JobStatus, is_job_id, utcnow
from service.options import JobOptions
from service.storage import StoredFile


def read_only_job(**values: Any) -> Job:
    """A job row to read, never to add to a session or change: built without the ORM's
    instrumentation, which costs a table model 140 us to construct (this takes 20 us), a
    good part of an upload's 2-3 ms of CPU."""
    return Job.model_construct(**values)


def new_job(
    *,
    job_id: str,
    owner: str,
    file_name: str,
    media_type: str,
    content_encoding: str | None,
    options: JobOptions,
    stored: StoredFile,
    retention: timedelta,
    idempotency_key: str | None = None,
    claimed: bool = False,
) -> Job:
    """The row of a job just accepted, with its stored upload described: queued, or with
    `claimed` already running under its first attempt (a worker starts it at once). Read
    only: it is inserted as values (`JobRecorder`)."""
    now = utcnow()
    return read_only_job(
        id=job_id,
        owner=owner,
        idempotency_key=idempotency_key,
        status=JobStatus.running if claimed else JobStatus.queued,
        attempts=1 if claimed else 0,
        started_at=now if claimed else None,
        heartbeat_at=now if claimed else None,
        created_at=now,
        updated_at=now,
        expires_at=now + retention,
        file_name=file_name,
        file_size=stored.size,
        file_sha256=stored.sha256,
        media_type=media_type,
        content_encoding=content_encoding,
        options=options.model_dump(),
    )


async def get_job(session: AsyncSession, job_id: str) -> Job | None:
    """The job with this id, whoever owns it; None for unknown or malformed ids."""
    return await session.get(Job, job_id) if is_job_id(job_id) else None


async def find_job(session: AsyncSession, job_id: str, owner: str) -> Job:
    """The caller's job, or 404 (unknown, malformed, or someone else's)."""
    job = await get_job(session, job_id)
    if job is None or job.owner != owner:
        raise NotFound(f"No job {job_id!r}.")
    return job


async def find_by_idempotency_key(session: AsyncSession, owner: str, key: str) -> Job | None:
    result = await session.exec(
        select(Job).where(col(Job.owner) == owner, col(Job.idempotency_key) == key)
    )
    return result.first()


async def count_waiting(session: AsyncSession) -> int:
    total = await session.scalar(
        select(func.count()).select_from(Job).where(col(Job.status) == JobStatus.queued)
    )
    return int(total or 0)


async def list_jobs(
    session: AsyncSession,
    *,
    owner: str,
    status: JobStatus | None,
    limit: int,
    cursor: str | None,
) -> tuple[Sequence[Job], str | None]:
    """One page of the owner's jobs, newest first, and the cursor of the next page."""
    query = select(Job).where(col(Job.owner) == owner)
    if status is not None:
        query = query.where(col(Job.status) == status)
    if cursor:
        after = JobCursor.decode(cursor)
        query = query.where(
            or_(
                col(Job.created_at) < after.created_at,
                and_(col(Job.created_at) == after.created_at, col(Job.id) < after.job_id),
            )
        )
    query = query.order_by(col(Job.created_at).desc(), col(Job.id).desc()).limit(limit + 1)
    jobs = list((await session.exec(query)).all())
    next_cursor = None
    if len(jobs) > limit:
        jobs = jobs[:limit]
        last = jobs[-1]
        next_cursor = JobCursor(last.created_at, last.id).encode()
    return jobs, next_cursor
