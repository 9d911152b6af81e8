"""The job lifecycle: claim, run, report progress, finish, fail, cancel, recover.

This is the only module that moves a job between states. `execute` runs in a worker
process (a process-pool worker or a Celery worker), never on the API's event loop.

Every claim of a job counts an attempt, and a worker writes only while the job is still
`running` under the attempt it claimed: a worker that was presumed dead (and whose job was
claimed again) can no longer change the job, and it writes its output to files of its own.

A running job's worker writes a heartbeat every `heartbeat_interval_s`; a job whose heartbeat
is older than `heartbeat_stale_s` is taken to have lost its worker, and whoever holds its
message (a redelivered Celery message, the local pool, the recovery sweep) may claim it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, CursorResult, func, or_, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service import parsing
from service.config import Settings
from service.db import is_disk_full, is_transient, transaction
from service.models import Job, JobStatus, utcnow
from service.storage import AttemptPaths, fsync_dir, fsync_file, job_paths

logger = logging.getLogger(__name__)

# A file that kills its worker this many times fails instead of being retried for ever.
MAX_ATTEMPTS = 5
# Database writes that fail for a passing reason (a full disk, a lock, a lost connection) are
# tried again with growing pauses up to RETRY_MAX_S, for RETRY_FOR_S in all.
RETRY_FIRST_S = 0.05
RETRY_MAX_S = 2.0
RETRY_FOR_S = 60.0
CANCEL_CHECK_INTERVAL_S = 0.25
PROGRESS_LOG_INTERVAL_S = 5.0
WRITEBACK_INTERVAL_S = 0.5


T = TypeVar("T")


class JobCancelled(Exception):
    """The job stopped running under this worker (cancelled, deleted, or claimed again)."""


Sessions = async_sessionmaker[AsyncSession]


def _rowcount(result: object) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


def _owned(job_id: str, attempt: int) -> ColumnElement[bool]:
    """The job is still running under this attempt."""
    return (
        (col(Job.id) == job_id)
        & (col(Job.status) == JobStatus.running)
        & (col(Job.attempts) == attempt)
    )


def _stale(settings: Settings, now: datetime) -> ColumnElement[bool]:
    """The job is running, but its worker has not reported for `heartbeat_stale_s`."""
    cutoff = now - timedelta(seconds=settings.heartbeat_stale_s)
    return (col(Job.status) == JobStatus.running) & (
        func.coalesce(col(Job.heartbeat_at), col(Job.updated_at)) < cutoff
    )


async def claim(sessions: Sessions, job_id: str, settings: Settings) -> Job | None:
    """Move a queued (or orphaned running) job to running; None if someone else has it."""
    now = utcnow()
    async with transaction(sessions) as session:
        claimed = await session.exec(
            update(Job)
            .where(col(Job.id) == job_id)
            .where(or_(col(Job.status) == JobStatus.queued, _stale(settings, now)))
            .values(
                status=JobStatus.running,
                started_at=now,
                updated_at=now,
                heartbeat_at=now,
                attempts=col(Job.attempts) + 1,
                phase=None,
                bytes_done=0,
                percent=0.0,
                rows_done=0,
                rows_failed=0,
                rate_bytes_per_s=None,
                eta_seconds=None,
            )
        )
        if _rowcount(claimed) == 0:
            return None
        return await session.get(Job, job_id)


async def retrying(what: str, job_id: str, write: Callable[[], Awaitable[T]]) -> T:
    """`write()`, tried again while it fails for a passing reason, for up to RETRY_FOR_S."""
    pause = RETRY_FIRST_S
    deadline = time.monotonic() + RETRY_FOR_S
    while True:
        try:
            return await write()
        except Exception as exc:
            if not is_transient(exc) or time.monotonic() + pause > deadline:
                raise
            logger.warning(
                f"{what} failed; trying again",
                extra={"job_id": job_id, "error": _first_line(exc), "pause_s": pause},
            )
        await asyncio.sleep(pause)
        pause = min(pause * 2, RETRY_MAX_S)


@dataclass(frozen=True)
class _Owner:
    status: JobStatus
    attempts: int
    heartbeat_at: datetime | None


async def _owner(sessions: Sessions, job_id: str) -> _Owner | None:
    async with sessions() as session:
        row = (
            await session.exec(
                select(Job.status, Job.attempts, Job.heartbeat_at).where(col(Job.id) == job_id)
            )
        ).first()
    return None if row is None else _Owner(JobStatus(row[0]), row[1], row[2])


async def claim_from_owner(sessions: Sessions, job_id: str, settings: Settings) -> Job | None:
    """Claim a job whose message came back while its worker may still be alive.

    A message redelivered at once (RabbitMQ, a Celery pool process that died) finds the job
    still running with a fresh heartbeat. The heartbeat decides: if it moves, the owner is
    alive and keeps the job (None); if it goes stale, the owner is dead and the job is claimed.
    Waits at most about `heartbeat_stale_s`.
    """
    deadline = time.monotonic() + settings.heartbeat_stale_s + 2 * settings.heartbeat_interval_s
    first: _Owner | None = None
    while time.monotonic() < deadline:
        owner = await _owner(sessions, job_id)
        if owner is None or owner.status.done:
            return None
        if first is None:
            first = owner
        elif owner.status is JobStatus.running and owner != first:
            return None  # the owner beat (alive), or someone else claimed the job meanwhile
        job = await claim(sessions, job_id, settings)
        if job is not None:
            return job
        await asyncio.sleep(settings.heartbeat_interval_s / 2)
    return None


async def _finish(
    sessions: Sessions,
    job_id: str,
    attempt: int,
    status: JobStatus,
    *,
    retention: timedelta,
    **values: Any,
) -> bool:
    """Move a running job to its final state; False if this attempt no longer owns it."""
    now = utcnow()
    async with transaction(sessions) as session:
        done = await session.exec(
            update(Job)
            .where(_owned(job_id, attempt))
            .values(
                status=status,
                finished_at=now,
                updated_at=now,
                expires_at=now + retention,
                eta_seconds=0.0 if status is JobStatus.succeeded else None,
                **values,
            )
        )
        return _rowcount(done) == 1


async def cancel(session: AsyncSession, job: Job, retention: timedelta) -> bool:
    """Cancel a queued or running job; False if it had already finished."""
    now = utcnow()
    cancelled = await session.exec(
        update(Job)
        .where(
            col(Job.id) == job.id,
            col(Job.status).in_([JobStatus.queued, JobStatus.running]),
        )
        .values(
            status=JobStatus.cancelled,
            finished_at=now,
            updated_at=now,
            expires_at=now + retention,
            eta_seconds=None,
        )
    )
    await session.refresh(job)
    return _rowcount(cancelled) == 1


@dataclass
class ProgressReporter:
    """Receives the parser's progress; stores it at most every `interval_s`, stops on cancel."""

    sessions: Sessions
    job_id: str
    attempt: int
    interval_s: float
    started: float = field(default_factory=time.monotonic)
    last_write: float = 0.0
    last_check: float = 0.0
    last_log: float = field(default_factory=time.monotonic)
    percent: float = 0.0
    rows_done: int = 0
    rows_failed: int = 0

    async def __call__(self, progress: parsing.ParseProgress) -> None:
        now = time.monotonic()
        self.percent = max(self.percent, min(progress.percent, 100.0))
        self.rows_done = max(self.rows_done, progress.rows_done)
        self.rows_failed = max(self.rows_failed, progress.rows_failed)
        try:
            if now - self.last_write >= self.interval_s:
                self.last_write = self.last_check = now
                await self._store(progress, now)
            elif now - self.last_check >= CANCEL_CHECK_INTERVAL_S:
                self.last_check = now
                await self._check_owned()
        except Exception as exc:
            if not is_transient(exc):
                raise
            # Progress is advisory: a full disk or a busy database must not stop the parse.
            logger.warning(
                "progress write failed", extra={"job_id": self.job_id, "error": _first_line(exc)}
            )
        if now - self.last_log >= PROGRESS_LOG_INTERVAL_S:
            self.last_log = now
            logger.info(
                "job progress",
                extra={
                    "job_id": self.job_id,
                    "percent": round(self.percent, 1),
                    "rows_done": self.rows_done,
                    "phase": progress.phase,
                },
            )

    async def _store(self, progress: parsing.ParseProgress, now: float) -> None:
        elapsed = max(now - self.started, 1e-6)
        rate = progress.bytes_done / elapsed
        eta = elapsed * (100.0 - self.percent) / self.percent if self.percent > 0 else None
        async with transaction(self.sessions) as session:
            stored = await session.exec(
                update(Job)
                .where(_owned(self.job_id, self.attempt))
                .values(
                    phase=progress.phase,
                    bytes_done=progress.bytes_done,
                    percent=round(self.percent, 2),
                    rows_done=self.rows_done,
                    rows_failed=self.rows_failed,
                    rate_bytes_per_s=round(rate, 1),
                    eta_seconds=round(eta, 2) if eta is not None else None,
                    updated_at=utcnow(),
                    heartbeat_at=utcnow(),
                )
            )
            if _rowcount(stored) == 0:
                raise JobCancelled(self.job_id)

    async def _check_owned(self) -> None:
        async with self.sessions() as session:
            owned = await session.scalar(select(Job.id).where(_owned(self.job_id, self.attempt)))
        if owned is None:
            raise JobCancelled(self.job_id)


def _first_line(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0]


async def beat(sessions: Sessions, job_id: str, attempt: int) -> bool:
    """Note that this attempt's worker is alive; False if the attempt no longer owns the job."""
    async with transaction(sessions) as session:
        beaten = await session.exec(
            update(Job).where(_owned(job_id, attempt)).values(heartbeat_at=utcnow())
        )
        return _rowcount(beaten) == 1


async def _keep_beating(sessions: Sessions, job_id: str, attempt: int, interval_s: float) -> None:
    """Beat every `interval_s` until cancelled (the job's end) or the job is no longer ours."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            if not await beat(sessions, job_id, attempt):
                return
        except Exception as exc:  # a missed beat is tried again at the next one
            logger.warning("heartbeat failed", extra={"job_id": job_id, "error": _first_line(exc)})


def parse_options(job: Job, settings: Settings) -> parsing.ParseOptions:
    options = job.options
    return parsing.ParseOptions(
        format=str(options.get("format", "auto")),
        delimiter=options.get("delimiter"),
        header=bool(options.get("header", True)),
        encoding=str(options.get("encoding", "auto")),
        max_errors=int(options.get("max_errors", 1000)),
        max_errors_stored=settings.max_errors_stored,
        max_decompressed_bytes=settings.max_decompressed_bytes,
        media_type=job.media_type,
        filename=job.file_name,
        max_record_bytes=settings.max_record_bytes,
        max_columns=settings.max_columns,
        max_column_name_bytes=settings.max_column_name_bytes,
        max_json_depth=settings.max_json_depth,
    )


def _fresh_output_dir(paths: AttemptPaths) -> None:
    """Start this attempt from nothing: earlier attempts' files (and spills) are removed."""
    shutil.rmtree(paths.root, ignore_errors=True)
    paths.root.mkdir(parents=True)


def _remove_partials(paths: AttemptPaths) -> None:
    for path in (paths.result_partial, paths.errors_partial):
        path.unlink(missing_ok=True)


def _publish(paths: AttemptPaths, *, with_result: bool) -> None:
    """Make the output durable, then rename it into place: whole or absent."""
    if not paths.errors_partial.exists():
        paths.errors_partial.touch()
    outputs = [(paths.errors_partial, paths.errors)]
    if with_result:
        outputs.append((paths.result_partial, paths.result))
    for partial, final in outputs:
        fsync_file(partial)
        partial.replace(final)
    fsync_dir(paths.root)


def _count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as handle:
            return sum(1 for _ in handle)
    except FileNotFoundError:
        return 0


async def _fail(
    sessions: Sessions,
    job_id: str,
    attempt: int,
    retention: timedelta,
    code: str,
    message: str,
    **values: Any,
) -> None:
    await retrying(
        "failing the job",
        job_id,
        lambda: _finish(
            sessions,
            job_id,
            attempt,
            JobStatus.failed,
            retention=retention,
            error_code=code,
            error_message=message,
            **values,
        ),
    )
    logger.info("job failed", extra={"job_id": job_id, "code": code})


def _io_message(exc: OSError) -> str:
    if is_disk_full(exc):
        return "The disk is full: the job's output could not be written."
    return f"The job's files could not be read or written: {exc.strerror or exc}."


def _datasync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


async def _write_back(path: Path) -> None:
    """Push the growing output to disk while the parse runs, so the final fsync is short."""
    while True:
        await asyncio.sleep(WRITEBACK_INTERVAL_S)
        await asyncio.to_thread(_datasync, path)


async def _parse(
    paths: AttemptPaths, options: parsing.ParseOptions, reporter: ProgressReporter
) -> parsing.ParseResult:
    writeback = asyncio.create_task(_write_back(paths.result_partial))
    try:
        return await parsing.parse_file(
            paths.upload, paths.result_partial, paths.errors_partial, options, reporter
        )
    finally:
        writeback.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writeback


async def execute(
    job_id: str, settings: Settings, sessions: Sessions, *, wait_for_owner: bool = False
) -> None:
    """Run one job to a final state, unless another worker owns it or it was cancelled.

    With `wait_for_owner` (a message that may come back while the job's worker still runs),
    a job found running is claimed once its heartbeat goes stale: see `claim_from_owner`.
    """
    job = await retrying("claiming the job", job_id, lambda: claim(sessions, job_id, settings))
    if job is None and wait_for_owner:
        job = await claim_from_owner(sessions, job_id, settings)
    if job is None:
        return
    heart = asyncio.create_task(
        _keep_beating(sessions, job_id, job.attempts, settings.heartbeat_interval_s)
    )
    try:
        await _run_claimed(job, settings, sessions)
    finally:
        heart.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heart


async def _run_claimed(job: Job, settings: Settings, sessions: Sessions) -> None:
    job_id, attempt = job.id, job.attempts
    log = {"job_id": job_id, "attempt": attempt}
    retention = timedelta(hours=settings.retention_hours)
    if attempt > MAX_ATTEMPTS:
        message = f"The job was interrupted {MAX_ATTEMPTS} times."
        await _fail(sessions, job_id, attempt, retention, "internal_error", message)
        return
    paths = job_paths(settings.data_dir, job_id).attempt(attempt)
    try:
        await asyncio.to_thread(_fresh_output_dir, paths)
    except OSError as exc:
        await _fail(sessions, job_id, attempt, retention, "io_error", _io_message(exc))
        return
    logger.info("job started", extra={**log, "size": job.file_size})
    reporter = ProgressReporter(sessions, job_id, attempt, settings.progress_interval_s)
    started = time.monotonic()
    try:
        result = await _parse(paths, parse_options(job, settings), reporter)
    except JobCancelled:
        await asyncio.to_thread(_remove_partials, paths)
        logger.info("job stopped: no longer running under this attempt", extra=log)
        return
    except parsing.ParseFailure as failure:
        await _fail_with_report(sessions, paths, attempt, retention, failure, reporter)
        return
    except Exception:
        logger.exception("job crashed", extra=log)
        await asyncio.to_thread(_remove_partials, paths)
        message = "The parser stopped on an unexpected error."
        await _fail(sessions, job_id, attempt, retention, "internal_error", message)
        return
    try:
        await asyncio.to_thread(_publish, paths, with_result=True)
    except FileNotFoundError:
        logger.info("job stopped: deleted while finishing", extra=log)
        return
    except OSError as exc:
        await asyncio.to_thread(_remove_partials, paths)
        await _fail(sessions, job_id, attempt, retention, "io_error", _io_message(exc))
        return
    seconds = max(time.monotonic() - started, 1e-6)
    succeeded = await retrying(
        "recording the result",
        job_id,
        lambda: _finish(
            sessions,
            job_id,
            attempt,
            JobStatus.succeeded,
            retention=retention,
            format=result.format,
            result={
                "rows": result.rows,
                "rows_failed": result.rows_failed,
                "encoding": result.encoding,
                "dialect": result.dialect,
                "columns": result.columns,
            },
            phase="write",
            bytes_done=job.file_size,
            percent=100.0,
            rate_bytes_per_s=round(job.file_size / seconds, 1),
            rows_done=result.rows,
            rows_failed=result.rows_failed,
        ),
    )
    if succeeded:
        extra = {**log, "rows": result.rows, "rows_failed": result.rows_failed}
        logger.info("job succeeded", extra={**extra, "seconds": round(seconds, 3)})
    else:
        logger.info("job stopped: no longer running under this attempt", extra=log)


async def _fail_with_report(
    sessions: Sessions,
    paths: AttemptPaths,
    attempt: int,
    retention: timedelta,
    failure: parsing.ParseFailure,
    reporter: ProgressReporter,
) -> None:
    """Fail the job, keeping the row errors found so far: they explain `too_many_errors`."""
    job_id = paths.root.name
    try:
        await asyncio.to_thread(_publish, paths, with_result=False)
        stored = await asyncio.to_thread(_count_lines, paths.errors)
    except OSError:  # deleted meanwhile, or no room left for the report
        stored = 0
    await asyncio.to_thread(_remove_partials, paths)
    await _fail(
        sessions,
        job_id,
        attempt,
        retention,
        failure.code,
        failure.message,
        percent=reporter.percent,
        rows_done=reporter.rows_done,
        rows_failed=max(reporter.rows_failed, stored),
    )


async def release(sessions: Sessions, job_id: str) -> None:
    """A running job whose worker died: queue it again."""
    async with transaction(sessions) as session:
        await session.exec(
            update(Job)
            .where(col(Job.id) == job_id, col(Job.status) == JobStatus.running)
            .values(status=JobStatus.queued, updated_at=utcnow())
        )


def _last_dispatch() -> ColumnElement[datetime]:
    return func.coalesce(col(Job.dispatched_at), col(Job.created_at))


async def queued_jobs(sessions: Sessions, *, older_than: datetime | None = None) -> Sequence[str]:
    """Ids of queued jobs, longest since dispatch first; with `older_than`, only those
    handed to an executor before then."""
    query = select(Job.id).where(col(Job.status) == JobStatus.queued)
    if older_than is not None:
        query = query.where(_last_dispatch() < older_than)
    async with sessions() as session:
        rows = await session.exec(query.order_by(_last_dispatch(), col(Job.created_at)))
        return list(rows.all())


async def requeue_interrupted(sessions: Sessions) -> Sequence[str]:
    """At start-up of the single-process deployment: every running job lost its worker.

    Returns the ids of all queued jobs, oldest first, to be submitted again.
    """
    async with transaction(sessions) as session:
        await session.exec(
            update(Job)
            .where(col(Job.status) == JobStatus.running)
            .values(status=JobStatus.queued, updated_at=utcnow())
        )
    return await queued_jobs(sessions)


async def mark_dispatched(
    sessions: Sessions, job_ids: Sequence[str], *, older_than: datetime
) -> Sequence[str]:
    """Note that these queued jobs are being handed to the executor again; returns those this
    call marked (another API process may have just done it for some)."""
    async with transaction(sessions) as session:
        rows = await session.exec(
            update(Job)
            .where(col(Job.id).in_(job_ids), col(Job.status) == JobStatus.queued)
            .where(_last_dispatch() < older_than)
            .values(dispatched_at=utcnow())
            .returning(col(Job.id))
        )
        return list(rows.scalars().all())


async def requeue_orphaned(sessions: Sessions, settings: Settings) -> Sequence[str]:
    """Running jobs whose worker stopped beating: queue them again, return their ids."""
    now = utcnow()
    async with transaction(sessions) as session:
        rows = await session.exec(
            update(Job)
            .where(_stale(settings, now))
            .values(status=JobStatus.queued, updated_at=now)
            .returning(col(Job.id))
        )
        return list(rows.scalars().all())
