"""Reading and recording jobs: create, find, list, page through row errors."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import aiofiles
import orjson
from sqlalchemy import and_, func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service.errors import BadRequest, NotFound
from service.intake import Upload
from service.models import Job, JobStatus, RowError, utcnow


def new_job_id() -> str:
    return str(uuid.uuid4())


def is_job_id(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def new_job(
    *,
    job_id: str,
    owner: str,
    upload: Upload,
    retention: timedelta,
    idempotency_key: str | None = None,
) -> Job:
    """The row of a job just accepted: queued, with its stored upload described."""
    now = utcnow()
    return Job(
        id=job_id,
        owner=owner,
        idempotency_key=idempotency_key,
        status=JobStatus.queued,
        created_at=now,
        updated_at=now,
        expires_at=now + retention,
        file_name=upload.file_name,
        file_size=upload.stored.size,
        file_sha256=upload.stored.sha256,
        media_type=upload.media_type,
        content_encoding=upload.content_encoding,
        options=upload.options.model_dump(),
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


@dataclass(frozen=True)
class Cursor:
    created_at: datetime
    job_id: str

    def encode(self) -> str:
        raw = f"{self.created_at.isoformat()}|{self.job_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
            created, job_id = raw.split("|", 1)
            return cls(datetime.fromisoformat(created), job_id)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise BadRequest("The cursor is not valid.") from None


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
        after = Cursor.decode(cursor)
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
        next_cursor = Cursor(last.created_at, last.id).encode()
    return jobs, next_cursor


def _decode_offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        offset = int(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        raise BadRequest("The cursor is not valid.") from None
    if offset < 0:
        raise BadRequest("The cursor is not valid.")
    return offset


def _encode_offset(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode().rstrip("=")


async def read_row_errors(
    path: Path, *, limit: int, cursor: str | None
) -> tuple[list[RowError], str | None]:
    """One page of a job's stored row errors, in file order; the cursor is a byte offset."""
    offset = _decode_offset(cursor)
    items: list[RowError] = []
    try:
        async with aiofiles.open(path, "rb") as handle:
            await handle.seek(offset)
            while len(items) < limit:
                line = await handle.readline()
                if not line:
                    return items, None
                offset += len(line)
                if line.strip():
                    items.append(RowError.model_validate(orjson.loads(line)))
            more = bool(await handle.read(1))
    except FileNotFoundError:
        return [], None
    return items, _encode_offset(offset) if more else None
