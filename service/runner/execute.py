"""Running one claimed job in a worker process: parse, publish the output, record the end.

`execute` runs in a worker process (a process-pool worker or a Celery worker), never on the
API's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import timedelta
from typing import Any

from service import parsing
from service.config import Settings
from service.db import SessionFactory, is_disk_full
from service.models import Job, JobStatus
from service.options import JobOptions
from service.runner import lifecycle, outputs
from service.runner.progress import ProgressWriter, keep_beating
from service.storage import AttemptPaths, job_paths

logger = logging.getLogger(__name__)

# A file that kills its worker this many times fails instead of being retried for ever.
MAX_ATTEMPTS = 5


def parse_options(job: Job, settings: Settings) -> parsing.ParseOptions:
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
    writeback = asyncio.create_task(outputs.write_back(paths.result_partial))
    try:
        return await parsing.parse_file(
            paths.upload, paths.result_partial, paths.errors_partial, options, reporter
        )
    finally:
        writeback.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writeback


async def execute(
    job_id: str, settings: Settings, sessions: SessionFactory, *, wait_for_owner: bool = False
) -> None:
    """Run one job to a final state, unless another worker owns it or it was cancelled.

    With `wait_for_owner` (a message that may come back while the job's worker still runs),
    a job found running is claimed once its heartbeat goes stale: see `claim_from_owner`.
    """
    job = await lifecycle.retrying(
        "claiming the job", job_id, lambda: lifecycle.claim(sessions, job_id, settings)
    )
    if job is None and wait_for_owner:
        job = await lifecycle.claim_from_owner(sessions, job_id, settings)
    if job is None:
        return
    heart = asyncio.create_task(
        keep_beating(sessions, job_id, job.attempts, settings.heartbeat_interval_s)
    )
    try:
        await _run_claimed(job, settings, sessions)
    finally:
        heart.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heart


async def _run_claimed(job: Job, settings: Settings, sessions: SessionFactory) -> None:
    job_id, attempt = job.id, job.attempts
    log = {"job_id": job_id, "attempt": attempt}
    retention = timedelta(hours=settings.retention_hours)
    if attempt > MAX_ATTEMPTS:
        message = f"The job was interrupted {MAX_ATTEMPTS} times."
        await _fail(sessions, job_id, attempt, retention, "internal_error", message)
        return
    paths = job_paths(settings.data_dir, job_id).attempt(attempt)
    try:
        await asyncio.to_thread(outputs.fresh_output_dir, paths)
    except OSError as exc:
        await _fail(sessions, job_id, attempt, retention, "io_error", _io_message(exc))
        return
    logger.info("job started", extra={**log, "size": job.file_size})
    reporter = ProgressWriter(sessions, job_id, attempt, settings.progress_interval_s)
    started = time.monotonic()
    try:
        result = await _parse(paths, parse_options(job, settings), reporter)
    except lifecycle.JobCancelled:
        await asyncio.to_thread(outputs.remove_partials, paths)
        logger.info("job stopped: no longer running under this attempt", extra=log)
        return
    except parsing.ParseFailure as failure:
        await _fail_with_report(sessions, paths, attempt, retention, failure, reporter)
        return
    except Exception:
        logger.exception("job crashed", extra=log)
        await asyncio.to_thread(outputs.remove_partials, paths)
        message = "The parser stopped on an unexpected error."
        await _fail(sessions, job_id, attempt, retention, "internal_error", message)
        return
    try:
        await asyncio.to_thread(outputs.publish, paths, with_result=True)
    except FileNotFoundError:
        logger.info("job stopped: deleted while finishing", extra=log)
        return
    except OSError as exc:
        await asyncio.to_thread(outputs.remove_partials, paths)
        await _fail(sessions, job_id, attempt, retention, "io_error", _io_message(exc))
        return
    seconds = max(time.monotonic() - started, 1e-6)
    succeeded = await lifecycle.retrying(
        "recording the result",
        job_id,
        lambda: lifecycle.finish(
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
