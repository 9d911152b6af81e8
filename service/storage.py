"""Files on disk: streamed uploads (temp file, fsync, rename) and each job's output.

Layout under the data dir:
    incoming/<random>.part     an upload still arriving
    uploads/<job id>           the stored upload, exactly as sent
    jobs/<job id>/             parse output: result.ndjson and errors.ndjson, renamed into
                               place when whole (`*.part` while being written); the result
                               converted for downloads, made on first request: result.json,
                               result.csv, result.parquet, result.arrows (`.result.*.tmp`
                               while being written, `.result.*.lock` held meanwhile)
    resumable/<upload id>/     a resumable (tus) upload: `data` (the bytes received so far),
                               `state.json` (its record, replaced whole), `lock` (held while a
                               request changes it)
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import functools
import hashlib
import os
import shutil
import weakref
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import aiofiles
import aiofiles.os
import orjson
from aiofiles.threadpool.binary import AsyncBufferedIOBase

from service.group_commit import GroupCommit
from service.ids import random_hex
from service.sync_many import sync_for_each

WRITE_BUFFER_BYTES = 1024 * 1024
# Start writeback every so often during a large upload, so the final fsync is short.
SYNC_EVERY_BYTES = 64 * 1024 * 1024
# Hashing less than this on the event loop is cheaper than a trip to a thread.
INLINE_HASH_BYTES = 64 * 1024


class UploadTooLarge(Exception):
    """An upload went past the size limit while it streamed; nothing of it is kept."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"The upload is larger than {limit} bytes.")
        self.limit = limit


@dataclass(frozen=True)
class JobPaths:
    """Where one job's files live."""

    upload: Path
    root: Path

    @property
    def result(self) -> Path:
        return self.root / "result.ndjson"

    @property
    def errors(self) -> Path:
        return self.root / "errors.ndjson"

    def converted(self, extension: str) -> Path:
        """The result in another format (see service.formats), beside the NDJSON."""
        return self.root / f"result.{extension}"

    def attempt(self, number: int) -> AttemptPaths:
        return AttemptPaths(self.upload, self.root, number)


@dataclass(frozen=True)
class AttemptPaths(JobPaths):
    """One attempt's output files: partial files of its own, the same final names."""

    number: int

    @property
    def result_partial(self) -> Path:
        return self.root / f"result.ndjson.{self.number}.part"

    @property
    def errors_partial(self) -> Path:
        return self.root / f"errors.ndjson.{self.number}.part"


def job_paths(data_dir: Path, job_id: str) -> JobPaths:
    return JobPaths(upload=data_dir / "uploads" / job_id, root=data_dir / "jobs" / job_id)


def make_data_dirs(data_dir: Path) -> None:
    for name in ("incoming", "uploads", "jobs", "resumable"):
        (data_dir / name).mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class StoredFile:
    size: int
    sha256: str


class UploadWriter:
    """Streams an upload to a temporary file, counting size and sha-256 as bytes arrive.

    Bytes are gathered into ~1 MiB blocks; one block is written and hashed in threads while
    the next one arrives, so receiving and writing overlap and memory stays bounded. An upload
    that ends before its first block is full is stored with a single trip to a thread.
    `commit` makes the file durable and moves it into place; leaving the `async with` block
    without committing deletes the partial file.
    """

    def __init__(self, incoming_dir: Path, max_bytes: int) -> None:
        self._path = incoming_dir / f"{random_hex()}.part"
        self._max_bytes = max_bytes
        self._hash = hashlib.sha256()
        self._size = 0
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._file: AsyncBufferedIOBase | None = None
        self._writing: asyncio.Future[None] | None = None
        self._syncing: asyncio.Future[None] | None = None
        self._unsynced = 0
        self._stored: StoredFile | None = None
        self._committed = False

    async def __aenter__(self) -> UploadWriter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        background = [task for task in (self._writing, self._syncing) if task is not None]
        await asyncio.gather(*background, return_exceptions=True)
        if self._file is not None:
            await self._file.close()
        if not self._committed:
            await _unlink_quietly(self._path)

    async def write(self, chunk: bytes) -> None:
        assert self._stored is None, "write after digest"
        self._size += len(chunk)
        if self._size > self._max_bytes:
            raise UploadTooLarge(self._max_bytes)
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        if self._pending_size >= WRITE_BUFFER_BYTES:
            await self._start_block()

    def _take_pending(self) -> bytes:
        block = b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        return block

    async def _start_block(self) -> None:
        block = self._take_pending()
        if self._writing is not None:
            await self._writing
        if self._file is None:
            self._file = await aiofiles.open(self._path, "wb")
        self._writing = asyncio.ensure_future(self._write_block(self._file, block))

    async def _write_block(self, file: AsyncBufferedIOBase, block: bytes) -> None:
        # hashlib and file writes both release the GIL: they run side by side in threads.
        await asyncio.gather(file.write(block), asyncio.to_thread(self._hash.update, block))
        self._unsynced += len(block)
        if self._unsynced >= SYNC_EVERY_BYTES and (self._syncing is None or self._syncing.done()):
            self._unsynced = 0
            self._syncing = asyncio.ensure_future(asyncio.to_thread(os.fdatasync, file.fileno()))

    async def _drain(self) -> None:
        if self._file is not None and self._pending:
            await self._start_block()
        if self._writing is not None:
            await self._writing
        if self._syncing is not None:
            await self._syncing

    async def digest(self) -> StoredFile:
        """Size and sha-256 of the whole upload; call once every byte has been written."""
        if self._stored is not None:
            return self._stored
        if self._file is None:
            block = self._take_pending()
            if len(block) > INLINE_HASH_BYTES:
                await asyncio.to_thread(self._hash.update, block)
            else:
                self._hash.update(block)
            self._pending = [block]
            self._pending_size = len(block)
        else:
            await self._drain()
        self._stored = StoredFile(size=self._size, sha256=self._hash.hexdigest())
        return self._stored

    async def commit(self, destination: Path) -> StoredFile:
        """Make the upload durable at `destination`: fsync, rename, fsync the directory."""
        stored = await self.digest()
        if self._file is None:
            await store_whole(self._take_pending(), self._path, destination)
            self._committed = True
            return stored
        await self._file.flush()
        await asyncio.to_thread(os.fsync, self._file.fileno())
        await self._file.close()
        self._file = None
        await asyncio.to_thread(os.replace, self._path, destination)
        self._committed = True
        await sync_dir(destination.parent)
        return stored


def _store_group(files: list[tuple[bytes, Path, Path]]) -> list[OSError | None]:
    """Store each file whole: write them all, make them durable, rename them into place, then
    make the directories renamed into durable. Each file's outcome: one that cannot be
    stored fails alone; a directory that cannot be synced fails the files renamed into it."""
    errors: list[OSError | None] = []
    for data, temp, _ in files:
        try:
            _write(data, temp)
        except OSError as exc:
            errors.append(exc)
        else:
            errors.append(None)
    sync_for_each(errors, lambda n: [files[n][1]], fsync_file)
    for n, (_, temp, destination) in enumerate(files):
        if errors[n] is None:
            try:
                os.replace(temp, destination)
            except OSError as exc:
                errors[n] = exc
    sync_for_each(errors, lambda n: [files[n][2].parent], fsync_dir)
    return errors


def _write(data: bytes, temp: Path) -> None:
    with open(temp, "wb") as handle:
        handle.write(data)


_whole_file_stores: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, GroupCommit[tuple[bytes, Path, Path]]
] = weakref.WeakKeyDictionary()


async def store_whole(data: bytes, temp: Path, destination: Path) -> None:
    """Write `data` to `temp`, fsync it, rename it to `destination` and fsync that directory.

    The uploads held whole in memory (the small ones) that end while one group of them is
    being stored are stored next, together, in one trip to a thread: a trip per upload cost
    more CPU than storing a small file (the thread's wake-up, and a handover of the GIL
    around each of its system calls while the event loop is busy)."""
    loop = asyncio.get_running_loop()
    group = _whole_file_stores.get(loop)
    if group is None:
        group = _whole_file_stores[loop] = GroupCommit(_store_in_thread)
    await group.submit((data, temp, destination))


async def _store_in_thread(files: list[tuple[bytes, Path, Path]]) -> list[OSError | None]:
    return await asyncio.to_thread(_store_group, files)


# Per event loop, per directory: a rename waits for an fsync of its directory that started
# after it, and every rename made while one fsync runs shares the next one.
_directory_syncs: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[Path, GroupCommit[None]]
] = weakref.WeakKeyDictionary()


async def sync_dir(directory: Path) -> None:
    """fsync `directory` after a rename into it, sharing the fsync with concurrent renames."""
    groups = _directory_syncs.setdefault(asyncio.get_running_loop(), {})
    group = groups.get(directory)
    if group is None:
        group = groups[directory] = GroupCommit(functools.partial(_sync, directory))
    await group.submit(None)


async def _sync(directory: Path, renames: list[None]) -> list[None]:
    await asyncio.to_thread(fsync_dir, directory)
    return [None] * len(renames)


def _rename_durably(source: Path, destination: Path) -> None:
    os.replace(source, destination)
    fsync_dir(destination.parent)


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
    """Delete a job's upload and its output directory."""
    await _unlink_quietly(paths.upload)
    await asyncio.to_thread(shutil.rmtree, paths.root, True)


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


# ---- Resumable uploads ----------------------------------------------------------------------


@dataclass(frozen=True)
class ResumablePaths:
    """Where one resumable upload lives until its job is made (and its record after)."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    @property
    def lock(self) -> Path:
        return self.root / "lock"


def resumable_dir(data_dir: Path) -> Path:
    return data_dir / "resumable"


def resumable_paths(data_dir: Path, upload_id: str) -> ResumablePaths:
    return ResumablePaths(resumable_dir(data_dir) / upload_id)


@dataclass
class ResumableState:
    """The durable record of a resumable upload: `offset` bytes of `data` are stored, and
    every byte past it (from a request that never finished) is not part of the upload."""

    id: str
    owner: str
    job_id: str  # chosen at creation, so that making the job twice is never possible
    length: int | None  # None: deferred, until a PATCH says it
    offset: int
    metadata: str | None  # the Upload-Metadata header as sent, echoed by HEAD
    file_name: str
    media_type: str
    options: dict[str, Any]
    created_at: datetime
    expires_at: datetime
    completed: bool = False  # its job exists

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes) -> ResumableState:
        values = orjson.loads(raw)
        for name in ("created_at", "expires_at"):
            values[name] = datetime.fromisoformat(values[name])
        return cls(**values)


def save_state(paths: ResumablePaths, state: ResumableState) -> None:
    """Replace the record durably: a temporary file, fsync, rename, fsync of the directory."""
    temporary = paths.root / f"state.{random_hex()}.tmp"
    with open(temporary, "wb") as handle:
        handle.write(state.to_json())
        handle.flush()
        os.fsync(handle.fileno())
    _rename_durably(temporary, paths.state)


def load_state(paths: ResumablePaths) -> ResumableState | None:
    """The record, or None if there is no such upload (or it is being removed)."""
    try:
        return ResumableState.from_json(paths.state.read_bytes())
    except (FileNotFoundError, NotADirectoryError):
        return None


def try_lock(path: Path) -> int | None:
    """An open descriptor holding an exclusive lock on the file `path`, or None if another
    request, in this process or another, holds it; FileNotFoundError if there is no such
    file. `unlock` releases it."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    return fd


def unlock(fd: int) -> None:
    os.close(fd)  # closing the descriptor drops its lock


def remove_resumable(paths: ResumablePaths) -> None:
    shutil.rmtree(paths.root, ignore_errors=True)
