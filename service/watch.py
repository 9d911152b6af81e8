"""Waiting for a job to change: long-polls, `Prefer: wait`, and the event stream.

Changes made in this process (a cancel, a job that finished in the local pool) wake the
waiters at once; a database re-check every `RECHECK_S` catches changes made by other
processes (pool workers writing progress, Celery workers, other API processes).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

from service import jobs
from service.models import JobPublic
from service.runner import Sessions

RECHECK_S = 0.25


class JobChanges:
    """In-process wake-ups, one set of events per job id."""

    def __init__(self) -> None:
        self._waiters: defaultdict[str, set[asyncio.Event]] = defaultdict(set)

    def notify(self, job_id: str) -> None:
        for event in self._waiters.get(job_id, ()):
            event.set()

    async def wait(self, job_id: str, timeout: float) -> None:
        event = asyncio.Event()
        self._waiters[job_id].add(event)
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            self._waiters[job_id].discard(event)
            if not self._waiters[job_id]:
                del self._waiters[job_id]


def etag_of(job: JobPublic) -> str:
    """Changes whenever anything in the job resource can have changed."""
    return f'"{job.status.value}-{job.updated_at.timestamp():.6f}"'


async def load(sessions: Sessions, job_id: str, owner: str) -> JobPublic:
    async with sessions() as session:
        return JobPublic.from_job(await jobs.find_job(session, job_id, owner))


async def next_version(
    sessions: Sessions,
    changes: JobChanges,
    job_id: str,
    owner: str,
    *,
    since: str | None,
    timeout: float,
    until_done: bool = False,
) -> JobPublic:
    """The job as soon as its ETag differs from `since` (or it is done), or after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        job = await load(sessions, job_id, owner)
        changed = since is not None and etag_of(job) != since
        if job.done or (changed and not until_done):
            return job
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return job
        await changes.wait(job_id, min(RECHECK_S, remaining))
