"""Files on disk: streamed uploads (temp file, fsync, rename) and each job's directory.

Layout under the data dir:
    incoming/<random>.part     an upload still arriving
    jobs/<job id>/upload       the stored upload, exactly as sent
    jobs/<job id>/result.ndjson, errors.ndjson   parse output, renamed into place when whole
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import aiofiles
import aiofiles.os
from aiofiles.threadpool.binary import AsyncBufferedIOBase

from service.errors import PayloadTooLarge

WRITE_BUFFER_BYTES = 1024 * 1024


@dataclass(frozen=True)
class JobPaths:
    """Where one job's files live."""

    root: Path

    @property
    def upload(self) -> Path:
        return self.root / "upload"

    @property
    def result(self) -> Path:
        return self.root / "result.ndjson"

    @property
    def errors(self) -> Path:
        return self.root / "errors.ndjson"

    @property
    def result_partial(self) -> Path:
        return self.root / "result.ndjson.part"

    @property
    def errors_partial(self) -> Path:
        return self.root / "errors.ndjson.part"


def job_paths(jobs_dir: Path, job_id: str) -> JobPaths:
    return JobPaths(jobs_dir / job_id)


@dataclass(frozen=True)
class StoredFile:
    size: int
    sha256: str


class UploadWriter:
    """Streams an upload to a temporary file, counting size and sha-256 as bytes arrive.

    Writes are coalesced into ~1 MiB blocks. `commit` makes the file durable and moves it
    into place; leaving the block without committing deletes the partial file.
    """

    def __init__(self, incoming_dir: Path, max_bytes: int) -> None:
        self._path = incoming_dir / f"{uuid.uuid4().hex}.part"
        self._max_bytes = max_bytes
        self._hash = hashlib.sha256()
        self._size = 0
        self._buffer = bytearray()
        self._file: AsyncBufferedIOBase | None = None
        self._committed = False

    async def __aenter__(self) -> UploadWriter:
        await aiofiles.os.makedirs(self._path.parent, exist_ok=True)
        self._file = await aiofiles.open(self._path, "wb")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._file is not None:
            await self._file.close()
        if not self._committed:
            await _unlink_quietly(self._path)

    @property
    def size(self) -> int:
        return self._size

    async def write(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._max_bytes:
            raise PayloadTooLarge(f"The upload is larger than {self._max_bytes} bytes.")
        self._buffer += chunk
        if len(self._buffer) >= WRITE_BUFFER_BYTES:
            await self._flush()

    async def _flush(self) -> None:
        if not self._buffer or self._file is None:
            return
        block = bytes(self._buffer)
        self._buffer.clear()
        # hashlib and file writes both release the GIL: hash in a worker thread
        # while aiofiles writes, so neither holds the event loop.
        await asyncio.gather(self._file.write(block), asyncio.to_thread(self._hash.update, block))

    async def digest(self) -> StoredFile:
        """Size and sha-256 of everything written so far."""
        await self._flush()
        return StoredFile(size=self._size, sha256=self._hash.hexdigest())

    async def commit(self, destination: Path) -> StoredFile:
        """Flush, fsync and rename into `destination`; durable when this returns."""
        assert self._file is not None
        await self._flush()
        await self._file.flush()
        await asyncio.to_thread(os.fsync, self._file.fileno())
        await self._file.close()
        self._file = None
        await aiofiles.os.makedirs(destination.parent, exist_ok=True)
        await aiofiles.os.replace(self._path, destination)
        await asyncio.to_thread(fsync_dir, destination.parent)
        await asyncio.to_thread(fsync_dir, destination.parent.parent)
        self._committed = True
        return StoredFile(size=self._size, sha256=self._hash.hexdigest())


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


async def _unlink_quietly(path: Path) -> None:
    try:
        await aiofiles.os.remove(path)
    except FileNotFoundError:
        pass


async def remove_job_files(paths: JobPaths) -> None:
    """Delete a job's directory and everything in it."""
    await asyncio.to_thread(shutil.rmtree, paths.root, True)


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free
