"""Running one claimed job in a worker process: parse, publish the output, record the end.

`execute` runs in a worker process (a process-pool worker or a Celery worker), never on the
API's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from service import parsing
from service.config import Settings
from service.db import SessionFactory, is_disk_full
from service.models import JobStatus
from service.options import JobOptions
from service.runner import lifecycle, outputs
from service.runner.lifecycle import ClaimedJob
from service.runner.progress import ProgressWriter, keep_beating
from service.storage import AttemptPaths, job_paths

logger = logging.getLogger(__name__)

# A file that kills its worker this many times fails instead of being retried for ever.
MAX_ATTEMPTS = 5

Finished = dict[str, dict[str, Any]]
"""The rows of the jobs that succeeded here, by job id, as plain values (they go back to the
API process, which answers the jobs' waiters with them instead of reading them again)."""


def parse_options(job: ClaimedJob, settings: Settings) -> parsing.ParseOptions:
    """What the parser needs: the job's options (validated when it was accepted) and limits."""
    options = JobOptions.stored(job.options)
    return parsing.ParseOptions(
        format=options.format,
        delimiter=options.delimiter,
        header=options.header,
        encoding=options.encoding,
        max_errors=options.max_errors,
        max_errors_stored=settings.max_errors_stored,
        max_decompressed_bytes=settings.max_decompressed_bytes,
        media_type=job.media_type,
        filename=job.file_name,
        max_record_bytes=settings.max_record_bytes,
        max_columns=settings.max_columns,
        max_column_name_bytes=settings.max_column_name_bytes,
        max_json_depth=settings.max_json_depth,
    )


async def _fail(
    sessions: SessionFactory,
    job_id: str,
    attempt: int,
    retention: timedelta,
    code: str,
    message: str,
    **values: Any,
) -> None:
    await lifecycle.retrying(
        "failing the job",
        job_id,
        lambda: lifecycle.finish(
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


async def _parse(
    paths: AttemptPaths, options: parsing.ParseOptions, reporter: ProgressWriter
) -> parsing.ParseResult:
    parse = parsing.parse_file(
        paths.upload, paths.result_partial, paths.errors_partial, options, reporter
    )
    writeback = asyncio.create_task(outputs.write_back(paths.result_partial))
    try:
        return await parse
    finally:
        writeback.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writeback


# Jobs of one batch parsed at once in a worker: a small file's parse mostly waits for the
# engine's threads, so a few overlap well; more only add contention.
PARSE_CONCURRENCY = 4


@dataclass(frozen=True)
class _Parsed:
    """A job whose parse succeeded: its output awaits publishing and its final state."""

    job: ClaimedJob
    paths: AttemptPaths
    result: parsing.ParseResult
    seconds: float


async def execute(
    job_id: str, settings: Settings, sessions: SessionFactory, *, wait_for_owner: bool = False
) -> Finished:
    """Run one job to a final state, unless another worker owns it or it was cancelled.

    With `wait_for_owner` (a message that may come back while the job's worker still runs),
    a job found running is claimed once its heartbeat goes stale: see `claim_from_owner`.
    """
    return await execute_many([job_id], settings, sessions, wait_for_owner=wait_for_owner)


async def execute_many(
    job_ids: Sequence[str],
    settings: Settings,
    sessions: SessionFactory,
    *,
    wait_for_owner: bool = False,
) -> Finished:
    """Run a batch of jobs to their final states, sharing the durable work between them.

    The batch is claimed in one transaction, parsed a few at a time, its result files made
    durable together (every file fsync'd, then renamed, then every directory fsync'd), and
    the jobs that succeeded finish in one transaction. Each job keeps its own fate: one that
    fails, is cancelled or cannot be written ends alone, the others go on. Jobs that another
    worker owns are skipped. Returns the rows of those that succeeded.
    """
    jobs = await lifecycle.retrying(
        "claiming the job",
        job_ids[0],
        lambda: lifecycle.claim_many(sessions, job_ids, settings),
    )
    if not jobs and wait_for_owner and len(job_ids) == 1:
        job = await lifecycle.claim_from_owner(sessions, job_ids[0], settings)
        jobs = [job] if job is not None else []
    if not jobs:
        return {}
    return await _run_beating(jobs, settings, sessions)


async def execute_claimed(
    job: ClaimedJob, settings: Settings, sessions: SessionFactory, *, check: bool = False
) -> Finished:
    """Run a job that was claimed for this worker when it was accepted (as recorded then,
    running under its first attempt): the claim's transaction is saved. With `check`
    (the job waited before it got here), its claim is confirmed first by a heartbeat; one
    that no longer holds (the job was queued again meanwhile) is claimed as usual."""
    if check and not await lifecycle.beat(sessions, job.id, job.attempts):
        return await execute_many([job.id], settings, sessions)
    return await _run_beating([job], settings, sessions)


async def _run_beating(
    jobs: Sequence[ClaimedJob], settings: Settings, sessions: SessionFactory
) -> Finished:
    """Run claimed jobs, beating for them until they end."""
    heart = asyncio.create_task(
        keep_beating(
            sessions, [(job.id, job.attempts) for job in jobs], settings.heartbeat_interval_s
        )
    )
    try:
        return await _run_claimed(jobs, settings, sessions)
    finally:
        heart.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heart


async def _run_claimed(
    jobs: Sequence[ClaimedJob], settings: Settings, sessions: SessionFactory
) -> Finished:
    retention = timedelta(hours=settings.retention_hours)
    runnable: list[ClaimedJob] = []
    for job in jobs:
        if job.attempts > MAX_ATTEMPTS:
            message = f"The job was interrupted {MAX_ATTEMPTS} times."
            await _fail(sessions, job.id, job.attempts, retention, "internal_error", message)
        else:
            runnable.append(job)
    attempts = [job_paths(settings.data_dir, job.id).attempt(job.attempts) for job in runnable]
    made = await asyncio.to_thread(outputs.fresh_output_dirs, attempts)
    slots = asyncio.Semaphore(PARSE_CONCURRENCY)

    async def run(job: ClaimedJob, paths: AttemptPaths, error: OSError | None) -> _Parsed | None:
        if error is not None:
            await _fail(sessions, job.id, job.attempts, retention, "io_error", _io_message(error))
            return None
        async with slots:
            return await _parse_one(job, paths, settings, sessions, retention)

    each = zip(runnable, attempts, made, strict=True)
    parsed = await asyncio.gather(*(run(*job) for job in each))
    return await _publish_and_finish([p for p in parsed if p is not None], sessions, retention)


async def _parse_one(
    job: ClaimedJob,
    paths: AttemptPaths,
    settings: Settings,
    sessions: SessionFactory,
    retention: timedelta,
) -> _Parsed | None:
    """Parse one claimed job; a job that fails or stops here is ended here (None)."""
    job_id, attempt = job.id, job.attempts
    log = {"job_id": job_id, "attempt": attempt}
    logger.info("job started", extra={**log, "size": job.file_size})
    reporter = ProgressWriter(sessions, job_id, attempt, settings.progress_interval_s)
    started = time.monotonic()
    try:
        result = await _parse(paths, parse_options(job, settings), reporter)
    except lifecycle.JobCancelled:
        await asyncio.to_thread(outputs.remove_partials, paths)
        logger.info("job stopped: no longer running under this attempt", extra=log)
        return None
    except parsing.ParseFailure as failure:
        await _fail_with_report(sessions, paths, attempt, retention, failure, reporter)
        return None
    except Exception:
        logger.exception("job crashed", extra=log)
        await asyncio.to_thread(outputs.remove_partials, paths)
        message = "The parser stopped on an unexpected error."
        await _fail(sessions, job_id, attempt, retention, "internal_error", message)
        return None
    return _Parsed(job, paths, result, max(time.monotonic() - started, 1e-6))


def _success(parsed: _Parsed) -> lifecycle.Ending:
    job, result = parsed.job, parsed.result
    return lifecycle.Ending(
        job.id,
        job.attempts,
        JobStatus.succeeded,
        {
            "format": result.format,
            "result": {
                "rows": result.rows,
                "rows_failed": result.rows_failed,
                "encoding": result.encoding,
                "dialect": result.dialect,
                "columns": result.columns,
            },
            "phase": "write",
            "bytes_done": job.file_size,
            "percent": 100.0,
            "rate_bytes_per_s": round(job.file_size / parsed.seconds, 1),
            "rows_done": result.rows,
            "rows_failed": result.rows_failed,
        },
    )


async def _publish_and_finish(
    batch: Sequence[_Parsed], sessions: SessionFactory, retention: timedelta
) -> Finished:
    """Make the batch's results durable together, then record every success in one commit."""
    if not batch:
        return {}
    errors = await asyncio.to_thread(outputs.publish_many, [p.paths for p in batch])
    published: list[_Parsed] = []
    for parsed, error in zip(batch, errors, strict=True):
        job = parsed.job
        log = {"job_id": job.id, "attempt": job.attempts}
        if error is None:
            published.append(parsed)
        elif isinstance(error, FileNotFoundError):
            logger.info("job stopped: deleted while finishing", extra=log)
        else:
            await asyncio.to_thread(outputs.remove_partials, parsed.paths)
            message = _io_message(error)
            await _fail(sessions, job.id, job.attempts, retention, "io_error", message)
    if not published:
        return {}
    endings = [_success(parsed) for parsed in published]
    applied = await lifecycle.retrying(
        "recording the result",
        endings[0].job_id,
        lambda: lifecycle.finish_many(sessions, endings, retention=retention),
    )
    finished: Finished = {}
    for parsed, row in zip(published, applied, strict=True):
        result = parsed.result
        log = {"job_id": parsed.job.id, "attempt": parsed.job.attempts}
        if row is not None:
            finished[parsed.job.id] = row
            extra = {**log, "rows": result.rows, "rows_failed": result.rows_failed}
            logger.info("job succeeded", extra={**extra, "seconds": round(parsed.seconds, 3)})
        else:
            logger.info("job stopped: no longer running under this attempt", extra=log)
    return finished


async def _fail_with_report(
    sessions: SessionFactory,
    paths: AttemptPaths,
    attempt: int,
    retention: timedelta,
    failure: parsing.ParseFailure,
    reporter: ProgressWriter,
) -> None:
    """Fail the job, keeping the row errors found so far: they explain `too_many_errors`."""
    job_id = paths.root.name
    try:
        await asyncio.to_thread(outputs.publish, paths, with_result=False)
        stored = await asyncio.to_thread(outputs.count_lines, paths.errors)
    except OSError:  # deleted meanwhile, or no room left for the report
        stored = 0
    await asyncio.to_thread(outputs.remove_partials, paths)
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
