"""Reading and recording jobs: create, find, list, page through row errors."""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import orjson
from sqlalchemy import and_, func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service.errors import BadRequest, NotFound
from service.intake import Upload
from service.models import Job, JobStatus, RowError, utcnow

# Cursors are base64url of at most ~70 ASCII characters; anything longer is not ours.
MAX_CURSOR_CHARS = 128
CURSOR_CHARS = re.compile(r"[A-Za-z0-9_-]*")
# A row-errors cursor is a byte offset: ASCII digits only (str.isdigit also takes "²").
OFFSET = re.compile(r"[0-9]{1,19}")


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


def _encode_cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(value: str) -> str:
    """The text of a cursor this service wrote: short, base64url, ASCII inside; else 400."""
    if len(value) > MAX_CURSOR_CHARS or not CURSOR_CHARS.fullmatch(value):
        raise BadRequest("The cursor is not valid.")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("ascii")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadRequest("The cursor is not valid.") from None
    return raw


@dataclass(frozen=True)
class Cursor:
    """Where a page of /jobs ends: the last job's creation time and id."""

    created_at: datetime
    job_id: str

    def encode(self) -> str:
        return _encode_cursor(f"{self.created_at.isoformat()}|{self.job_id}")

    @classmethod
    def decode(cls, value: str) -> Cursor:
        created, _, job_id = _decode_cursor(value).partition("|")
        try:
            cursor = cls(datetime.fromisoformat(created), job_id)
        except ValueError:
            cursor = None
        if cursor is None or not is_job_id(job_id):
            raise BadRequest("The cursor is not valid.")
        return cursor


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


def _start_of_page(handle: BinaryIO, cursor: str | None) -> int:
    """The byte offset a row-errors cursor points at; 400 unless it is the start of a line."""
    if not cursor:
        return 0
    raw = _decode_cursor(cursor)
    size = os.fstat(handle.fileno()).st_size
    if not OFFSET.fullmatch(raw) or not 0 < int(raw) <= size:
        raise BadRequest("The cursor is not valid.")
    offset = int(raw)
    handle.seek(offset - 1)
    if handle.read(1) != b"\n":
        raise BadRequest("The cursor is not valid.")
    return offset


def _read_page(path: Path, limit: int, cursor: str | None) -> tuple[list[RowError], str | None]:
    with open(path, "rb") as handle:
        offset = _start_of_page(handle, cursor)
        handle.seek(offset)
        items: list[RowError] = []
        while len(items) < limit:
            line = handle.readline()
            if not line:
                return items, None
            offset += len(line)
            if line.strip():
                items.append(RowError.model_validate(orjson.loads(line)))
        more = bool(handle.read(1))
    return items, _encode_cursor(str(offset)) if more else None


async def read_row_errors(
    path: Path, *, limit: int, cursor: str | None
) -> tuple[list[RowError], str | None]:
    """One page of a job's stored row errors, in file order; the cursor is a byte offset."""
    try:
        return await asyncio.to_thread(_read_page, path, limit, cursor)
    except FileNotFoundError:
        return [], None
