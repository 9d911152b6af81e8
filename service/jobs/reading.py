"""Reading jobs for clients: pages of jobs, pages of row errors (the result: `results`)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import BinaryIO

import orjson

from service.errors import BadRequest
from service.jobs import queries
from service.jobs.cursors import decode_offset, encode_cursor
from service.models import JobPage, JobPublic, JobStatus, RowError, RowErrorPage
from service.runtime import Runtime
from service.storage import job_paths

READ_CHUNK_BYTES = 1024 * 1024


async def job_page(
    runtime: Runtime, owner: str, status: JobStatus | None, limit: int, cursor: str | None
) -> JobPage:
    async with runtime.sessions() as session:
        page, next_cursor = await queries.list_jobs(
            session, owner=owner, status=status, limit=limit, cursor=cursor
        )
    next_link = None
    if next_cursor:
        status_part = f"status={status.value}&" if status else ""
        next_link = f"/jobs?{status_part}limit={limit}&cursor={next_cursor}"
    return JobPage(items=[JobPublic.from_job(job) for job in page], next=next_link)


async def row_error_page(
    runtime: Runtime, job_id: str, owner: str, limit: int, cursor: str | None
) -> RowErrorPage:
    async with runtime.sessions() as session:
        job = await queries.find_job(session, job_id, owner)
    path = job_paths(runtime.settings.data_dir, job.id).errors
    items, next_cursor = await read_row_errors(path, limit=limit, cursor=cursor)
    return RowErrorPage(
        total=job.rows_failed,
        stored=min(job.rows_failed, runtime.settings.max_errors_stored),
        items=items,
        next=f"/jobs/{job.id}/errors?limit={limit}&cursor={next_cursor}" if next_cursor else None,
    )


def _start_of_page(handle: BinaryIO, cursor: str | None) -> int:
    """The byte offset a row-errors cursor points at; 400 unless it is the start of a line."""
    if not cursor:
        return 0
    offset = decode_offset(cursor)
    if not 0 < offset <= os.fstat(handle.fileno()).st_size:
        raise BadRequest("The cursor is not valid.")
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
    return items, encode_cursor(str(offset)) if more else None


async def read_row_errors(
    path: Path, *, limit: int, cursor: str | None
) -> tuple[list[RowError], str | None]:
    """One page of a job's stored row errors, in file order; the cursor is a byte offset."""
    try:
        return await asyncio.to_thread(_read_page, path, limit, cursor)
    except FileNotFoundError:
        return [], None
