"""The single-machine executor: an asyncio queue feeding a bounded pool of worker processes.

Parsing is CPU-bound, so it runs in separate processes: the API's event loop only hands
over job ids and awaits their completion.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from service import runner, worker
from service.config import Settings

logger = logging.getLogger(__name__)


def _new_pool(size: int) -> ProcessPoolExecutor:
    # forkserver: workers fork from a small clean process with the service preloaded,
    # never from this process with its threads and open sockets.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["service.worker"])
    return ProcessPoolExecutor(
        max_workers=size, mp_context=context, initializer=worker.init_pool_process
    )


class InProcessExecutor:
    def __init__(
        self,
        settings: Settings,
        sessions: runner.Sessions,
        on_done: Callable[[str], Awaitable[None]],
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._on_done = on_done
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._waiting: set[str] = set()
        self._consumers: list[asyncio.Task[None]] = []
        self._pool: ProcessPoolExecutor | None = None
        self._busy: set[asyncio.Task[None]] = set()
        self._warm_up: list[asyncio.Future[None]] = []
        self._paused = False

    async def start(self) -> None:
        # Start the worker processes now, so the first job does not wait for them.
        pool = self._ensure_pool()
        loop = asyncio.get_running_loop()
        self._warm_up = [
            loop.run_in_executor(pool, worker.warm_up)
            for _ in range(self._settings.max_concurrent_jobs)
        ]
        self._consumers = [
            asyncio.create_task(self._consume(), name=f"ingest-consumer-{n}")
            for n in range(self._settings.max_concurrent_jobs)
        ]

    async def submit(self, job_id: str) -> None:
        """Queue a job here unless it already waits here (the sweeper resubmits stragglers)."""
        if job_id not in self._waiting:
            self._waiting.add(job_id)
            self._queue.put_nowait(job_id)

    async def ready(self) -> bool:
        return bool(self._consumers) and not any(task.done() for task in self._consumers)

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = _new_pool(self._settings.max_concurrent_jobs)
        return self._pool

    async def _consume(self) -> None:
        me = asyncio.current_task()
        assert me is not None
        while not self._paused:
            job_id = await self._queue.get()
            self._waiting.discard(job_id)
            self._busy.add(me)
            try:
                await self._run(job_id)
            except Exception:
                logger.exception("job dispatch failed", extra={"job_id": job_id})
            finally:
                self._busy.discard(me)

    async def _run(self, job_id: str) -> None:
        loop = asyncio.get_running_loop()
        pool = self._ensure_pool()
        try:
            await loop.run_in_executor(pool, worker.run_job, job_id, self._settings)
        except BrokenProcessPool:
            logger.error("worker process died; the job is queued again", extra={"job_id": job_id})
            if self._pool is pool:
                self._pool = None
                await asyncio.to_thread(pool.shutdown, wait=False, cancel_futures=True)
            await runner.release(self._sessions, job_id)
            await self.submit(job_id)
            return
        await self._on_done(job_id)

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
        for task in self._consumers:
            task.cancel()
        await asyncio.gather(*self._consumers, *self._warm_up, return_exceptions=True)
        self._consumers = []
        pool, self._pool = self._pool, None
        if pool is not None:
            # Workers ignore SIGTERM (it belongs to the API), so the ones still parsing are
            # killed; their jobs resume at the next start. The pool offers no public handle
            # on its processes.
            for process in list((pool._processes or {}).values()):
                process.kill()
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
