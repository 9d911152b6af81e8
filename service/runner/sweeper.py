"""Periodic upkeep.

- Recovery, every `recovery_interval_s`: running jobs whose worker stopped beating go back to
  the queue, and queued jobs the executor may not hold (a lost message, a failed claim) are
  handed to it again.
- Retention, every `sweep_interval_s`: expired jobs and orphan files are removed, and
  resumable uploads left unfinished past their `Upload-Expires` (or whose job is gone).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sqlmodel import col, select

from service.config import Settings
from service.db import SessionFactory, transaction
from service.models import FINISHED_STATUSES, Job, utcnow
from service.runner import lifecycle
from service.storage import (
    ResumablePaths,
    job_paths,
    load_state,
    remove_job_files,
    remove_resumable,
    resumable_dir,
    try_lock,
    unlock,
)

if TYPE_CHECKING:
    from service.runner.executors import Executor

logger = logging.getLogger(__name__)

# Files younger than this may belong to an upload that is about to record its job.
ORPHAN_MIN_AGE_S = 3600
SWEEP_BATCH = 500


async def expire_jobs(settings: Settings, sessions: SessionFactory) -> int:
    """Delete finished jobs past `expires_at`, with their files; returns how many."""
    removed = 0
    while True:
        async with transaction(sessions) as session:
            expired = list(
                (
                    await session.exec(
                        select(Job)
                        .where(col(Job.status).in_(FINISHED_STATUSES))
                        .where(col(Job.expires_at) < utcnow())
                        .limit(SWEEP_BATCH)
                    )
                ).all()
            )
            for job in expired:
                await session.delete(job)
        for job in expired:
            await remove_job_files(job_paths(settings.data_dir, job.id))
        removed += len(expired)
        if len(expired) < SWEEP_BATCH:
            return removed


def _stale_entries(directory: Path, now: float) -> list[Path]:
    if not directory.is_dir():
        return []
    return [
        entry for entry in directory.iterdir() if now - entry.stat().st_mtime > ORPHAN_MIN_AGE_S
    ]


def _remove_path(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


async def remove_orphans(settings: Settings, sessions: SessionFactory) -> int:
    """Remove uploads and job directories that have no job row, and abandoned partial uploads."""
    now = time.time()
    candidates = [
        path
        for folder in ("uploads", "jobs")
        for path in await asyncio.to_thread(_stale_entries, settings.data_dir / folder, now)
    ]
    removed = 0
    for chunk_start in range(0, len(candidates), SWEEP_BATCH):
        chunk = candidates[chunk_start : chunk_start + SWEEP_BATCH]
        async with sessions() as session:
            known = set(
                (
                    await session.exec(
                        select(Job.id).where(col(Job.id).in_([path.name for path in chunk]))
                    )
                ).all()
            )
        for path in chunk:
            if path.name not in known:
                await asyncio.to_thread(_remove_path, path)
                removed += 1
    for part in await asyncio.to_thread(_stale_entries, settings.data_dir / "incoming", now):
        await asyncio.to_thread(part.unlink, True)
        removed += 1
    return removed


def _resumable_to_remove(data_dir: Path, now: float) -> tuple[list[Path], dict[str, Path]]:
    """Unfinished uploads past their expiry, or half-created an hour ago; and finished ones,
    by the id of their job (kept while the job is)."""
    expired: list[Path] = []
    finished: dict[str, Path] = {}
    root = resumable_dir(data_dir)
    if not root.is_dir():
        return expired, finished
    for entry in root.iterdir():
        try:
            state = load_state(ResumablePaths(entry))
        except ValueError:  # a record cut short: nothing can resume it
            state = None
        if state is None:
            if now - entry.stat().st_mtime > ORPHAN_MIN_AGE_S:
                expired.append(entry)
        elif state.completed:
            finished[state.job_id] = entry
        elif state.expires_at.timestamp() < now:
            expired.append(entry)
    return expired, finished


def _remove_unless_busy(root: Path) -> bool:
    """Remove an upload unless a request is writing to it right now."""
    paths = ResumablePaths(root)
    try:
        fd = try_lock(paths.lock)
    except FileNotFoundError:
        fd = None  # created half-way
    else:
        if fd is None:
            return False
    try:
        remove_resumable(paths)
    finally:
        if fd is not None:
            unlock(fd)
    return True


async def remove_resumable_uploads(settings: Settings, sessions: SessionFactory) -> int:
    """Remove expired unfinished uploads, and finished ones whose job is gone."""
    expired, finished = await asyncio.to_thread(
        _resumable_to_remove, settings.data_dir, time.time()
    )
    if finished:
        async with sessions() as session:
            known = set(
                (await session.exec(select(Job.id).where(col(Job.id).in_(list(finished))))).all()
            )
        expired += [root for job_id, root in finished.items() if job_id not in known]
    removed = 0
    for root in expired:
        try:
            removed += await asyncio.to_thread(_remove_unless_busy, root)
        except FileNotFoundError:
            pass  # terminated meanwhile
    return removed


async def recover(settings: Settings, sessions: SessionFactory, executor: Executor) -> None:
    """One round of recovery: requeue jobs whose worker died, re-dispatch jobs without one.

    Only jobs handed over at least one recovery interval ago are candidates, so a job being
    dispatched right now is left alone; claiming in the database makes any repeat harmless.
    """
    requeued = await lifecycle.requeue_orphaned(sessions, settings)
    if requeued:
        logger.warning("worker lost; jobs queued again", extra={"job_ids": list(requeued)})
    queued = await lifecycle.queued_jobs(sessions)
    settled = utcnow() - timedelta(seconds=settings.recovery_interval_s)
    candidates = set(await lifecycle.queued_jobs(sessions, older_than=settled)) - set(requeued)
    # Jobs of dead workers have no message to wait for (Redis keeps it until its visibility
    # timeout); the others are compared with what the executor holds.
    others = [job_id for job_id in queued if job_id in candidates]
    missing = [*requeued, *await executor.missing(others, len(queued) - len(requeued))]
    if not missing:
        return
    # Marking first means two API processes do not both publish the same jobs.
    marked = set(await lifecycle.mark_dispatched(sessions, missing, older_than=settled))
    resubmitted = [job_id for job_id in missing if job_id in marked]
    for job_id in resubmitted:
        await executor.submit(job_id)
    if resubmitted:
        logger.info("jobs dispatched again", extra={"count": len(resubmitted)})


async def recover_periodically(
    settings: Settings, sessions: SessionFactory, executor: Executor
) -> None:
    """Recover every `recovery_interval_s` until cancelled; a failed round is logged."""
    while True:
        try:
            await recover(settings, sessions, executor)
        except Exception:
            logger.exception("recovery round failed")
        await asyncio.sleep(settings.recovery_interval_s)


async def sweep(settings: Settings, sessions: SessionFactory) -> None:
    """One round of retention."""
    expired = await expire_jobs(settings, sessions)
    orphans = await remove_orphans(settings, sessions)
    uploads = await remove_resumable_uploads(settings, sessions)
    if expired or orphans or uploads:
        logger.info(
            "sweep",
            extra={"expired_jobs": expired, "orphan_files": orphans, "resumable_uploads": uploads},
        )


async def run_periodically(settings: Settings, sessions: SessionFactory) -> None:
    """Sweep every `sweep_interval_s` until cancelled; a failed round is logged, not fatal."""
    while True:
        try:
            await sweep(settings, sessions)
        except Exception:
            logger.exception("sweep failed")
        await asyncio.sleep(settings.sweep_interval_s)
