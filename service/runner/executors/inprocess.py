"""The single-machine executor: a queue of job ids feeding a bounded pool of worker processes.

Parsing is CPU-bound, so it runs in separate processes: the API's event loop only hands
over job ids and awaits their completion. Small jobs waiting together go to a worker as one
batch (see `execute_many`): a job that finds the queue empty goes alone, at once. A job
whose client waits for it (`Prefer: wait`), accepted while a worker is idle, is recorded
already claimed, and goes to that worker ahead of the queue (see `execute_claimed`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from service.config import Settings
from service.db import SessionFactory
from service.models import Job
from service.runner import lifecycle, worker_calls
from service.runner.executors import JobDone
from service.runner.executors.pool import ProcessPool, WorkerDied
from service.runner.executors.worker_processes import worker_context
from service.storage import job_paths

logger = logging.getLogger(__name__)

# Queued jobs whose uploads are at most SMALL_JOB_BYTES go to a worker up to BATCH_MAX at a
# time; a larger one always goes alone, so a batch stays short.
SMALL_JOB_BYTES = 1 << 20
BATCH_MAX = 32
# A job claimed when accepted that waited longer than this for a worker (every worker took
# another job meanwhile) has its claim confirmed before it runs: see `execute_claimed`.
CLAIM_UNCHECKED_S = 1.0


def _new_pool(size: int, settings: Settings) -> ProcessPool:
    # forkserver: workers fork from a small clean process with the service preloaded,
    # never from this process with its threads and open sockets. The forkserver ignores
    # group signals (`service.runner.executors.forkserver`, which this process must never import).
    return ProcessPool(
        size, worker_context(), functools.partial(worker_calls.init_pool_process, settings)
    )


class InProcessExecutor:
    def __init__(
        self,
        settings: Settings,
        sessions: SessionFactory,
        on_done: JobDone,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._on_done = on_done
        self._queue: deque[str] = deque()
        self._queued = asyncio.Event()
        self._waiting: set[str] = set()
        self._solo: set[str] = set()  # jobs whose batch killed its worker: they go alone
        # Jobs claimed when accepted: their rows as recorded then, and when they came here.
        self._claimed: dict[str, tuple[dict[str, Any], float]] = {}
        self._running: set[str] = set()
        self._consumers: list[asyncio.Task[None]] = []
        self._pool: ProcessPool | None = None
        self._busy: set[asyncio.Task[None]] = set()
        self._paused = False

    async def start(self) -> None:
        # The worker processes start now, so the first job does not wait for them.
        self._pool = _new_pool(self._settings.max_concurrent_jobs, self._settings)
        await self._pool.start()
        self._consumers = [
            asyncio.create_task(self._consume(), name=f"ingest-consumer-{n}")
            for n in range(self._settings.max_concurrent_jobs)
        ]

    async def submit(self, job_id: str) -> None:
        """Queue a job here unless it already waits or runs here."""
        if job_id not in self._waiting and job_id not in self._running:
            self._waiting.add(job_id)
            self._queue.append(job_id)
            self._queued.set()

    def can_claim_on_accept(self) -> bool:
        """A worker is idle and nothing waits for one: a job accepted now would start at once."""
        idle = len(self._consumers) - len(self._busy)
        return not self._paused and not self._queue and idle > 0

    async def submit_claimed(self, job: Job) -> None:
        """Run a job recorded already claimed (running, first attempt) next, alone."""
        if job.id in self._waiting or job.id in self._running:
            return
        self._claimed[job.id] = (job.model_dump(), time.monotonic())
        self._waiting.add(job.id)
        self._queue.appendleft(job.id)
        self._queued.set()

    async def missing(self, queued: Sequence[str], total: int) -> Sequence[str]:
        """Queued jobs this process neither waits on nor runs (a claim that failed for want
        of disk space, a job queued again by the recovery sweep)."""
        held = self._waiting | self._running
        return [job_id for job_id in queued if job_id not in held]

    async def ready(self) -> bool:
        return bool(self._consumers) and not any(task.done() for task in self._consumers)

    def _small(self, job_id: str) -> bool:
        if job_id in self._solo:
            return False
        try:
            size = job_paths(self._settings.data_dir, job_id).upload.stat().st_size
        except OSError:
            return False
        return size <= SMALL_JOB_BYTES

    def _take(self) -> list[str]:
        """The next job, with the small ones queued right behind it if it is small."""
        batch = [self._queue.popleft()]
        if batch[0] in self._claimed:
            return batch
        if self._small(batch[0]):
            while self._queue and len(batch) < BATCH_MAX and self._small(self._queue[0]):
                batch.append(self._queue.popleft())
        return batch

    async def _consume(self) -> None:
        me = asyncio.current_task()
        assert me is not None
        while not self._paused:
            while not self._queue:
                self._queued.clear()
                await self._queued.wait()
            batch = self._take()
            self._waiting.difference_update(batch)
            self._running.update(batch)
            self._busy.add(me)
            try:
                await self._run(batch)
            except Exception:
                logger.exception("job dispatch failed", extra={"job_id": batch[0]})
            finally:
                self._busy.discard(me)
                self._running.difference_update(batch)

    async def _run(self, batch: list[str]) -> None:
        assert self._pool is not None
        claimed = self._claimed.pop(batch[0], None)
        try:
            if claimed is not None:
                row, since = claimed
                check = time.monotonic() - since > CLAIM_UNCHECKED_S
                finished = await self._pool.run(
                    functools.partial(worker_calls.run_claimed, check=check), row, self._settings
                )
            elif len(batch) == 1:
                finished = await self._pool.run(worker_calls.run_job, batch[0], self._settings)
            else:
                finished = await self._pool.run(worker_calls.run_jobs, batch, self._settings)
        except WorkerDied as died:
            if self._paused:
                return  # stopped at shutdown: the job resumes at the next start
            # Only these jobs are charged (their claims counted an attempt); the others go on.
            # A batch's jobs get their attempt back and go on alone, so a file that kills its
            # worker is charged only for the times it does so by itself.
            for job_id in batch:
                logger.error(
                    "worker process died; the job is queued again",
                    extra={"job_id": job_id, "reason": str(died)},
                )
                await lifecycle.requeue(self._sessions, job_id, refund=len(batch) > 1)
                self._running.discard(job_id)
                if len(batch) > 1:
                    self._solo.add(job_id)
                await self.submit(job_id)
            return
        self._solo.difference_update(batch)
        for job_id in batch:
            await self._on_done(job_id, (finished or {}).get(job_id))

    def pause(self) -> None:
        """Start no more jobs; those running go on."""
        self._paused = True
        for task in self._consumers:
            if task not in self._busy:
                task.cancel()

    async def stop(self, grace_s: float) -> None:
        """Start no more jobs; let running ones finish for up to `grace_s`, then end them.

        A job ended here stays `running` in the database and starts again at next start-up.
        """
        self.pause()
        if self._busy:
            await asyncio.wait(set(self._busy), timeout=grace_s)
        pool, self._pool = self._pool, None
        if pool is not None:
            # Workers ignore SIGTERM (it belongs to the API): those still parsing are killed.
            pool.kill()
        for task in self._consumers:
            task.cancel()
        await asyncio.gather(*self._consumers, return_exceptions=True)
        self._consumers = []
        if pool is not None:
            await pool.close()
