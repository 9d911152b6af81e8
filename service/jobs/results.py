"""A job's result as a download: in the format asked for, converted once, in byte ranges."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiofiles
from aiofiles.threadpool.binary import AsyncBufferedReader

from service.errors import Conflict, NotFound
from service.formats.registry import Format
from service.jobs import queries
from service.jobs.negotiation import byte_range, content_disposition
from service.models import JobStatus, as_utc
from service.runtime import Runtime
from service.storage import job_paths

READ_CHUNK_BYTES = 1024 * 1024


@dataclass
class Download:
    """An open result file and the part of it to send. The file stays readable even if the
    job is deleted while it streams."""

    handle: AsyncBufferedReader
    size: int  # of the whole file
    start: int
    end: int  # exclusive
    partial: bool  # a 206 for a Range
    format: Format
    etag: str
    disposition: str

    @property
    def headers(self) -> dict[str, str]:
        headers = {
            "Content-Length": str(self.end - self.start),
            "Content-Disposition": self.disposition,
            "ETag": self.etag,
            "Accept-Ranges": "bytes",
            "Vary": "Accept",
        }
        if self.partial:
            headers["Content-Range"] = f"bytes {self.start}-{self.end - 1}/{self.size}"
        return headers

    async def close(self) -> None:
        await self.handle.close()

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            if self.start:
                await self.handle.seek(self.start)
            left = self.end - self.start
            while left > 0 and (chunk := await self.handle.read(min(READ_CHUNK_BYTES, left))):
                left -= len(chunk)
                yield chunk
        finally:
            await self.handle.close()


async def open_download(
    runtime: Runtime,
    job_id: str,
    owner: str,
    fmt: Format,
    range_header: str | None = None,
    if_range: str | None = None,
) -> Download:
    """The result of a succeeded job in `fmt`, converted first if this is the first request
    for it (the request waits; every request for it at the same time waits for the same
    conversion); 409 before the job has succeeded, 416 for a range past the end."""
    async with runtime.sessions() as session:
        job = await queries.find_job(session, job_id, owner)
    if job.status is not JobStatus.succeeded:
        raise Conflict(f"The job is {job.status.value}; the result exists once it has succeeded.")
    paths = job_paths(runtime.settings.data_dir, job.id)
    path = paths.result
    if fmt.converted:
        path = paths.converted(fmt.extension)
        columns = list((job.result or {}).get("columns", []))
        metric = runtime.metrics.conversions.labels(fmt.name)
        await runtime.conversions.ensure(paths.result, columns, fmt, path, metric.inc)
    try:
        handle = await aiofiles.open(path, "rb")
    except FileNotFoundError:
        raise NotFound(f"Job {job_id!r} is being deleted; its result is gone.") from None
    try:
        size = (await asyncio.to_thread(os.fstat, handle.fileno())).st_size
        finished = as_utc(job.finished_at)
        # A succeeded job's result never changes and conversions are deterministic: one
        # strong ETag per job and format, the same from every API process.
        version = int(finished.timestamp() * 1_000_000) if finished else 0
        etag = f'"{fmt.name}-{version}-{size}"'
        wanted = byte_range(range_header, if_range, etag, size)
    except BaseException:
        await handle.close()
        raise
    start, end = wanted if wanted is not None else (0, size)
    return Download(
        handle=handle,
        size=size,
        start=start,
        end=end,
        partial=wanted is not None,
        format=fmt,
        etag=etag,
        disposition=content_disposition(job.file_name, fmt.extension, fallback=job.id),
    )
