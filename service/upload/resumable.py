"""Resumable uploads on disk: creating one, appending a request's bytes at its offset durably,
and turning a whole one into a job exactly as POST /jobs makes one.

The record on disk (`storage.ResumableState`) is the truth, so API processes sharing the data
dir (the Celery deployment) share uploads too. A request that changes an upload holds its
lock file (flock, across processes; plus a set of ids within this process, where flock on
network file systems does not exclude). An offset is reported only once the bytes up to it
and the record saying so are fsync'd; bytes past the recorded offset (from a request that
never finished) are cut off before the next append.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import os
import shutil
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from starlette.requests import ClientDisconnect, Request

from service.errors import (
    BadRequest,
    Conflict,
    InsufficientStorage,
    NotFound,
    PayloadTooLarge,
    ProblemError,
    RequestTimeout,
)
from service.jobs import queries
from service.models import is_job_id, new_job_id, utcnow
from service.options import JobOptions
from service.runtime import Runtime
from service.storage import (
    ResumablePaths,
    ResumableState,
    StoredFile,
    free_bytes,
    fsync_dir,
    job_paths,
    load_state,
    remove_resumable,
    resumable_paths,
    save_state,
    try_lock,
    unlock,
)
from service.upload import submit
from service.upload.receive import Upload
from service.upload.request import ClientSilence
from service.upload.tus import Checksum, ChecksumMismatch, Hasher, UploadDescription

logger = logging.getLogger(__name__)

BLOCK_BYTES = 1024 * 1024
# A long PATCH without a checksum records its offset this often, so that a crash in the middle
# of a single-request upload of gigabytes costs at most this much.
CHECKPOINT_BYTES = 64 * 1024 * 1024
HASHES_KEPT = 512
READ_BYTES = 4 * 1024 * 1024
SYNC_EVERY_BYTES = 8 * 1024 * 1024
# DELETE waits this long for a PATCH in progress (its client may just have gone).
TERMINATE_WAIT_S = 3.0


@dataclass(frozen=True)
class Outcome:
    """An upload after a request, and whether that request made its job."""

    state: ResumableState
    job_made: bool = False


class ResumableUploads:
    """This process's hand on the resumable uploads of the data dir.

    Besides the lock set, it keeps the sha-256 state of uploads' stored bytes, so that a PATCH
    continues the file's hash rather than read the file again. hashlib objects cannot be
    saved; after a restart (or when another process took the last chunks) the hash is
    recomputed from the stored bytes.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._busy: set[str] = set()
        self._hashes: OrderedDict[str, tuple[int, Hasher]] = OrderedDict()

    # ---- Reading ------------------------------------------------------------------------

    def _paths(self, upload_id: str) -> ResumablePaths:
        return resumable_paths(self.runtime.settings.data_dir, upload_id)

    async def find(self, upload_id: str, owner: str) -> ResumableState:
        """The caller's upload, or 404 (unknown, malformed id, removed, or someone else's)."""
        state = None
        if is_job_id(upload_id):
            state = await asyncio.to_thread(load_state, self._paths(upload_id))
        if state is None or state.owner != owner:
            raise NotFound(f"No upload {upload_id!r}.")
        return state

    # ---- Creation -----------------------------------------------------------------------

    async def create(
        self, owner: str, length: int | None, metadata: str | None, described: UploadDescription
    ) -> ResumableState:
        """A new, empty upload, on disk; 413 if its declared length is over the limit, 503 or
        507 if a job could not be accepted now."""
        settings = self.runtime.settings
        try:
            if length is not None and length > settings.max_upload_bytes:
                raise PayloadTooLarge(
                    f"Upload-Length {length} is larger than the limit of "
                    f"{settings.max_upload_bytes} bytes (Tus-Max-Size)."
                )
            await self.runtime.admission.check(length)
        except ProblemError as refused:
            self.runtime.metrics.uploads.labels(outcome=str(refused.status)).inc()
            raise
        now = utcnow()
        state = ResumableState(
            id=new_job_id(),
            owner=owner,
            job_id=new_job_id(),
            length=length,
            offset=0,
            metadata=metadata,
            file_name=described.file_name,
            media_type=described.media_type,
            options=described.options.model_dump(),
            created_at=now,
            expires_at=now + self._expiry(),
        )
        try:
            await asyncio.to_thread(_create_on_disk, self._paths(state.id), state)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise InsufficientStorage("The disk is full: the upload was not created.") from None
            raise
        return state

    def _expiry(self) -> timedelta:
        return timedelta(hours=self.runtime.settings.upload_expiry_hours)

    # ---- Appending ----------------------------------------------------------------------

    async def append(
        self,
        state: ResumableState,
        request: Request,
        *,
        offset: int,
        length: int | None,
        declared: int | None,
        checksum: Checksum | None,
    ) -> Outcome:
        """Store the request's body at `offset`, then make the job if the upload is whole.

        409 if `offset` is not the upload's (or another request is writing to it), 460 if the
        body does not match `checksum` (nothing of it is kept), 413 past the upload's length
        or the limit, 507 when the disk is low, 408 when the client falls silent (what arrived
        is kept). A 503 or 507 from making the job keeps every byte: retry with a PATCH of no
        bytes at the final offset, or a HEAD.
        """
        async with self._locked(state.id):
            state = await self.find(state.id, state.owner)
            if offset != state.offset:
                raise Conflict(
                    f"Upload-Offset {offset} is not this upload's offset, {state.offset}; "
                    "ask HEAD for it and resume from there.",
                    headers={"Upload-Offset": str(state.offset)},
                )
            self._settle_length(state, length)
            room = self._room(state)
            if declared is not None and declared > room:
                raise PayloadTooLarge(self._too_large(state, declared))
            if state.completed:
                if declared:
                    raise PayloadTooLarge(self._too_large(state, declared))
                return Outcome(state)
            if declared:
                await self._check_disk(declared)
            await self._receive(state, request, checksum, room)
            return await self._complete_if_whole(state)

    def _settle_length(self, state: ResumableState, length: int | None) -> None:
        """Apply the Upload-Length a PATCH gives to a deferred upload (it may never change)."""
        if length is None:
            return
        if state.length is not None:
            if length != state.length:
                raise BadRequest(
                    f"Upload-Length {length} differs from the upload's length, {state.length}; "
                    "it cannot change."
                )
            return
        if length < state.offset:
            raise BadRequest(
                f"Upload-Length {length} is less than the {state.offset} bytes already stored."
            )
        if length > self.runtime.settings.max_upload_bytes:
            raise PayloadTooLarge(
                f"Upload-Length {length} is larger than the limit of "
                f"{self.runtime.settings.max_upload_bytes} bytes (Tus-Max-Size)."
            )
        state.length = length

    def _room(self, state: ResumableState) -> int:
        limit = self.runtime.settings.max_upload_bytes if state.length is None else state.length
        return limit - state.offset

    def _too_large(self, state: ResumableState, declared: int) -> str:
        if state.length is None:
            return (
                f"{declared} more bytes would take the upload past the limit of "
                f"{self.runtime.settings.max_upload_bytes} bytes (Tus-Max-Size)."
            )
        return (
            f"{declared} more bytes would take the upload past its Upload-Length, "
            f"{state.length} ({state.offset} are stored)."
        )

    async def _check_disk(self, incoming: int) -> None:
        settings = self.runtime.settings
        free = await asyncio.to_thread(free_bytes, settings.data_dir)
        if free < settings.min_free_bytes + incoming:
            raise InsufficientStorage(
                f"Not enough free disk space for {incoming} more bytes: {free} bytes are free "
                f"and {settings.min_free_bytes} must stay free."
            )

    async def _receive(
        self, state: ResumableState, request: Request, checksum: Checksum | None, room: int
    ) -> None:
        """Append the body; record the new offset durably unless the body is refused."""
        paths = self._paths(state.id)
        file_hash = await self._hash_at(state, paths)
        chunk_hash = checksum.hasher() if checksum else None
        hashers = [file_hash] if chunk_hash is None else [file_hash, chunk_hash]
        fd = await asyncio.to_thread(_open_at, paths.data, state.offset)
        appender = _Appender(fd, hashers, start=state.offset)
        try:
            try:
                await self._stream(state, paths, request, appender, room, chunk_hash is None)
            except (ClientDisconnect, TimeoutError) as stopped:
                # Keep what arrived (unless it cannot be verified), as tus asks of servers.
                if chunk_hash is None:
                    await self._commit(state, paths, appender)
                raise self._interrupted(state, stopped) from None
            if checksum is not None and chunk_hash is not None:
                await appender.drain()
                if chunk_hash.digest() != checksum.digest:
                    raise ChecksumMismatch(
                        f"The body does not match its Upload-Checksum ({checksum.algorithm}); "
                        f"it was not kept. The upload's offset is still {state.offset}.",
                        headers={"Upload-Offset": str(state.offset)},
                    )
            await self._commit(state, paths, appender)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise InsufficientStorage(
                    f"The disk is full; the upload keeps the {state.offset} bytes stored.",
                    headers={"Upload-Offset": str(state.offset)},
                ) from None
            raise
        finally:
            # Whatever was not recorded is cut off: a refused chunk is not kept.
            await appender.close(keep=state.offset)

    async def _stream(
        self,
        state: ResumableState,
        paths: ResumablePaths,
        request: Request,
        appender: _Appender,
        room: int,
        checkpoints: bool,
    ) -> None:
        async with ClientSilence(self.runtime.settings.client_timeout_s) as silence:
            async for chunk in request.stream():
                silence.heard()
                if appender.size + len(chunk) > room:
                    raise PayloadTooLarge(self._too_large(state, appender.size + len(chunk)))
                await appender.add(chunk)
                if checkpoints and appender.end - state.offset >= CHECKPOINT_BYTES:
                    await self._commit(state, paths, appender)
        await appender.drain()

    def _interrupted(self, state: ResumableState, stopped: Exception) -> ProblemError:
        if isinstance(stopped, TimeoutError):
            timeout_s = self.runtime.settings.client_timeout_s
            return RequestTimeout(
                f"The client sent nothing for {timeout_s:g} s in the middle of the body; "
                f"the upload keeps the {state.offset} bytes stored.",
                headers={"Connection": "close", "Upload-Offset": str(state.offset)},
            )
        return BadRequest("The client disconnected in the middle of the body.")

    async def _commit(
        self, state: ResumableState, paths: ResumablePaths, appender: _Appender
    ) -> None:
        """Make every byte appended durable, then the record that says so."""
        await appender.drain()
        if appender.end != state.offset:
            await asyncio.to_thread(os.fdatasync, appender.fd)
        expires_at = utcnow() + self._expiry()
        recorded = replace(state, offset=appender.end, expires_at=expires_at)
        await asyncio.to_thread(save_state, paths, recorded)
        state.offset, state.expires_at = recorded.offset, recorded.expires_at
        self._remember(state.id, state.offset, appender.hashers[0].copy())

    # ---- The file's sha-256 -------------------------------------------------------------

    def _remember(self, upload_id: str, offset: int, file_hash: Hasher) -> None:
        self._hashes[upload_id] = (offset, file_hash)
        self._hashes.move_to_end(upload_id)
        while len(self._hashes) > HASHES_KEPT:
            self._hashes.popitem(last=False)

    async def _hash_at(self, state: ResumableState, paths: ResumablePaths) -> Hasher:
        """The sha-256 of the upload's first `state.offset` bytes, continued where known."""
        start, known = self._hashes.get(state.id, (0, None))
        if known is None or start > state.offset:
            start, known = 0, hashlib.sha256()
        file_hash = known.copy()
        if start < state.offset:
            await asyncio.to_thread(_hash_range, paths.data, start, state.offset, file_hash)
            self._remember(state.id, state.offset, file_hash.copy())
        return file_hash

    # ---- Completion ---------------------------------------------------------------------

    async def complete_if_whole(self, state: ResumableState) -> Outcome:
        """For HEAD: make the job of an upload whose bytes have all arrived, if it has none
        yet (an earlier try was refused with 503 or 507); a request holding the upload will
        make it itself."""
        if state.completed or state.length is None or state.offset != state.length:
            return Outcome(state)
        try:
            async with self._locked(state.id):
                state = await self.find(state.id, state.owner)
                return await self._complete_if_whole(state)
        except Conflict:
            return Outcome(state)

    async def _complete_if_whole(self, state: ResumableState) -> Outcome:
        if state.completed or state.length is None or state.offset != state.length:
            return Outcome(state)
        paths = self._paths(state.id)
        try:
            made = await self._make_job(state, paths)
        except ProblemError as refused:
            self.runtime.metrics.uploads.labels(outcome=str(refused.status)).inc()
            refused.headers["Upload-Offset"] = str(state.offset)
            raise
        state.completed = True
        await asyncio.to_thread(save_state, paths, state)
        # The job holds the bytes under its own name now.
        await asyncio.to_thread(paths.data.unlink, True)
        self._hashes.pop(state.id, None)
        return Outcome(state, job_made=made)

    async def _make_job(self, state: ResumableState, paths: ResumablePaths) -> bool:
        """Record the upload's job, as POST /jobs does; False if an earlier try already did
        (it died before saying so in the record)."""
        async with self.runtime.sessions() as session:
            if await queries.get_job(session, state.job_id) is not None:
                return False
        await self.runtime.admission.check(None)  # the bytes are on disk already
        file_hash = await self._hash_at(state, paths)
        destination = job_paths(self.runtime.settings.data_dir, state.job_id).upload
        try:
            await asyncio.to_thread(_link_durably, paths.data, destination)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise InsufficientStorage("The disk is full: the job was not made.") from None
            raise
        stored = Upload(
            file_name=state.file_name,
            media_type=state.media_type,
            content_encoding=None,
            options=JobOptions.stored(state.options),
            stored=StoredFile(size=state.offset, sha256=file_hash.hexdigest()),
        )
        await submit.record_job(self.runtime, state.job_id, state.owner, stored)
        logger.info(
            "resumable upload complete",
            extra={"job_id": state.job_id, "upload_id": state.id, "bytes": state.offset},
        )
        return True

    # ---- Termination --------------------------------------------------------------------

    async def terminate(self, upload_id: str, owner: str) -> None:
        """Remove the upload and its bytes (a job made from it stays); 409 if a request keeps
        writing to it."""
        state = await self.find(upload_id, owner)
        deadline = asyncio.get_running_loop().time() + TERMINATE_WAIT_S
        while True:
            try:
                async with self._locked(state.id):
                    await asyncio.to_thread(remove_resumable, self._paths(state.id))
                    self._hashes.pop(state.id, None)
                    return
            except Conflict:
                if asyncio.get_running_loop().time() > deadline:
                    raise
            await asyncio.sleep(0.05)

    # ---- Locking ------------------------------------------------------------------------

    @asynccontextmanager
    async def _locked(self, upload_id: str) -> AsyncIterator[None]:
        """Hold the upload for one request; 409 if another holds it, 404 if it is gone."""
        busy = Conflict(
            "Another request is writing to this upload; ask HEAD for its offset once it ends.",
        )
        if upload_id in self._busy:
            raise busy
        self._busy.add(upload_id)
        try:
            try:
                fd = await asyncio.to_thread(try_lock, self._paths(upload_id).lock)
            except FileNotFoundError:
                raise NotFound(f"No upload {upload_id!r}.") from None
            if fd is None:
                raise busy
            try:
                yield
            finally:
                unlock(fd)
        finally:
            self._busy.discard(upload_id)


class _Appender:
    """Appends a body to an open file in ~1 MiB blocks, hashing each block as it goes: one
    block is written and hashed in threads while the next one arrives."""

    def __init__(self, fd: int, hashers: list[Hasher], start: int) -> None:
        self.fd = fd
        self.hashers = hashers
        self.start = start
        self.size = 0
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._writing: asyncio.Future[None] | None = None
        self._syncing: asyncio.Future[None] | None = None
        self._unsynced = 0

    async def add(self, chunk: bytes) -> None:
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        self.size += len(chunk)
        if self._pending_size >= BLOCK_BYTES:
            block = self._take()
            if self._writing is not None:
                await self._writing
            self._writing = asyncio.ensure_future(self._write(block))

    @property
    def end(self) -> int:
        """The file offset after every byte added."""
        return self.start + self.size

    def _take(self) -> bytes:
        block = b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        return block

    async def _write(self, block: bytes) -> None:
        # File writes and hashlib release the GIL: they run side by side.
        await asyncio.gather(
            asyncio.to_thread(_write_all, self.fd, block),
            *(asyncio.to_thread(hasher.update, block) for hasher in self.hashers),
        )
        # Write back as the body arrives, so the fsync before the answer has little left.
        self._unsynced += len(block)
        if self._unsynced >= SYNC_EVERY_BYTES and (self._syncing is None or self._syncing.done()):
            self._unsynced = 0
            self._syncing = asyncio.ensure_future(asyncio.to_thread(os.fdatasync, self.fd))

    async def drain(self) -> None:
        """Wait until every byte added is written and hashed."""
        if self._writing is not None:
            await self._writing
            self._writing = None
        if self._pending:
            block = self._take()
            await asyncio.to_thread(_write_and_hash, self.fd, block, self.hashers)
        if self._syncing is not None:
            await self._syncing
            self._syncing = None

    async def close(self, keep: int) -> None:
        """Stop, cut the file at `keep` bytes, close it."""
        running = [task for task in (self._writing, self._syncing) if task is not None]
        await asyncio.gather(*running, return_exceptions=True)
        try:
            await asyncio.to_thread(_cut_and_close, self.fd, keep)
        except OSError:
            logger.exception("could not cut a resumable upload back to its recorded offset")


def _create_on_disk(paths: ResumablePaths, state: ResumableState) -> None:
    paths.root.mkdir(parents=True)
    paths.lock.touch()
    paths.data.touch()
    save_state(paths, state)
    fsync_dir(paths.root.parent)


def _open_at(path: Path, offset: int) -> int:
    """The upload's data file open for writing at `offset`, cut there: bytes past the
    recorded offset were never reported to anyone."""
    fd = os.open(path, os.O_WRONLY)
    try:
        if os.fstat(fd).st_size != offset:
            os.ftruncate(fd, offset)
        os.lseek(fd, offset, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _cut_and_close(fd: int, keep: int) -> None:
    try:
        if os.fstat(fd).st_size > keep:
            os.ftruncate(fd, keep)
    finally:
        os.close(fd)


def _write_all(fd: int, block: bytes) -> None:
    view = memoryview(block)
    while view:
        view = view[os.write(fd, view) :]


def _write_and_hash(fd: int, block: bytes, hashers: list[Hasher]) -> None:
    _write_all(fd, block)
    for hasher in hashers:
        hasher.update(block)


def _hash_range(path: Path, start: int, end: int, hasher: Hasher) -> None:
    with open(path, "rb") as handle:
        handle.seek(start)
        left = end - start
        while left > 0:
            block = handle.read(min(READ_BYTES, left))
            if not block:
                raise OSError(errno.EIO, f"{path} is shorter than its recorded offset")
            hasher.update(block)
            left -= len(block)


def _link_durably(source: Path, destination: Path) -> None:
    """Give the stored bytes the job's upload name too (a hard link: nothing is copied, and
    the upload keeps its bytes if the job cannot be recorded); a copy where links are not
    supported."""
    try:
        os.unlink(destination)  # left by a try that died before recording the job
    except FileNotFoundError:
        pass
    try:
        os.link(source, destination)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK):
            raise
        shutil.copyfile(source, destination)
        with open(destination, "rb+") as handle:
            os.fsync(handle.fileno())
    fsync_dir(destination.parent)
