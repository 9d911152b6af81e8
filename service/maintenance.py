"""Periodic upkeep: expire old jobs, remove orphan files, requeue jobs whose worker vanished."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from sqlmodel import col, select

from service import runner
from service.config import Settings
from service.db import transaction
from service.models import FINISHED_STATUSES, Job, utcnow
from service.storage import job_paths, remove_job_files

logger = logging.getLogger(__name__)

# Files younger than this may belong to an upload that is about to record its job.
ORPHAN_MIN_AGE_S = 3600
SWEEP_BATCH = 500
# A job queued this long may have missed its executor (a broker that was down, a dispatch
# that failed): it is submitted again. Claiming in the database makes repeats harmless.
RESUBMIT_AFTER = timedelta(minutes=10)


async def expire_jobs(settings: Settings, sessions: runner.Sessions) -> int:
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


async def remove_orphans(settings: Settings, sessions: runner.Sessions) -> int:
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


async def sweep(
    settings: Settings, sessions: runner.Sessions, resubmit: Callable[[str], Awaitable[None]]
) -> None:
    """One round of upkeep."""
    expired = await expire_jobs(settings, sessions)
    orphans = await remove_orphans(settings, sessions)
    requeued = await runner.requeue_orphaned(sessions)
    stranded = await runner.queued_jobs(sessions, older_than=utcnow() - RESUBMIT_AFTER)
    for job_id in [*requeued, *stranded]:
        await resubmit(job_id)
    if stranded:
        await runner.touch_queued(sessions, stranded)
    if expired or orphans or requeued or stranded:
        logger.info(
            "sweep",
            extra={
                "expired_jobs": expired,
                "orphan_files": orphans,
                "requeued": len(requeued),
                "resubmitted": len(stranded),
            },
        )


async def run_periodically(
    settings: Settings, sessions: runner.Sessions, resubmit: Callable[[str], Awaitable[None]]
) -> None:
    """Sweep every `sweep_interval_s` until cancelled; a failed round is logged, not fatal."""
    while True:
        try:
            await sweep(settings, sessions, resubmit)
        except Exception:
            logger.exception("sweep failed")
        await asyncio.sleep(settings.sweep_interval_s)
