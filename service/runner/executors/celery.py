"""The scale-out executor: jobs go to Celery workers through the broker.

The job row in `queued` is the source of truth, the broker only a way to wake a worker.
A job whose message cannot be published (the broker is down) waits in this process's
publisher, which tries again with growing pauses (at most `dispatch_retry_max_s`) until the
broker answers, in the order the jobs came. The recovery sweep compares the queued jobs with
the messages the broker holds and publishes again those that may have none (a broker that
lost its messages, an API that died between accepting a job and publishing it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from celery import Celery

from service.config import Settings
from service.models import Job

logger = logging.getLogger(__name__)

RUN_JOB_TASK = "ingest.run_job"
BROKER_TIMEOUT_S = 2.0
FIRST_RETRY_S = 0.1


class CeleryExecutor:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client = Celery("ingest", broker=settings.broker_url)
        self._client.conf.update(
            task_serializer="json",
            task_default_queue=settings.celery_queue,
            broker_connection_retry_on_startup=True,
            broker_connection_timeout=BROKER_TIMEOUT_S,
        )
        self._pending: dict[str, None] = {}  # jobs not yet published, in order (a set)
        self._wake = asyncio.Event()
        self._publisher: asyncio.Task[None] | None = None
        self._started = False

    async def start(self) -> None:
        self._started = True
        self._publisher = asyncio.create_task(self._publish_pending(), name="ingest-publisher")

    def can_claim_on_accept(self) -> bool:
        """Never: which worker takes a job is the broker's choice, made later."""
        return False

    async def submit_claimed(self, job: Job) -> None:
        await self.submit(job.id)

    async def submit(self, job_id: str) -> None:
        """Publish the job's message; if the broker is down, the publisher keeps trying."""
        if self._pending or not await self._publish(job_id):
            self._pending[job_id] = None
            self._wake.set()

    async def _publish(self, job_id: str) -> bool:
        try:
            # Publishing talks to the broker over the network: keep it off the event loop.
            await asyncio.to_thread(
                self._client.send_task, RUN_JOB_TASK, args=[job_id], retry=False
            )
        except Exception as exc:
            logger.warning(
                "job not published yet: the broker is unreachable",
                extra={"job_id": job_id, "error": f"{type(exc).__name__}: {exc}"},
            )
            return False
        return True

    async def _publish_pending(self) -> None:
        """Publish the jobs that could not be, oldest first, pausing longer after each failure."""
        pause = FIRST_RETRY_S
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                job_id = next(iter(self._pending))
                if await self._publish(job_id):
                    self._pending.pop(job_id, None)
                    pause = FIRST_RETRY_S
                    continue
                await asyncio.sleep(pause)
                pause = min(pause * 2, self._settings.dispatch_retry_max_s)
            logger.info("publishing resumed: every job waiting for the broker was published")

    async def missing(self, queued: Sequence[str], total: int) -> Sequence[str]:
        """Of `queued` (jobs longest since their dispatch first), those that may have no
        message: as many as the broker holds fewer messages than `total` jobs are queued,
        not counting the ones waiting here to be published."""
        try:
            depth = await asyncio.to_thread(self._queue_depth)
        except Exception:
            return []  # the broker is down: the publisher holds what could not be sent
        shortfall = total - depth - len(self._pending)
        if shortfall <= 0:
            return []
        return [job_id for job_id in queued if job_id not in self._pending][:shortfall]

    def _queue_depth(self) -> int:
        """Messages waiting in the broker's queue (0 if the broker does not know the queue)."""
        with self._client.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_S)
            channel = connection.channel()
            try:
                declared = channel.queue_declare(queue=self._settings.celery_queue, passive=True)
                return int(declared.message_count)
            except connection.channel_errors:
                return 0
            finally:
                with contextlib.suppress(Exception):
                    channel.close()

    async def ready(self) -> bool:
        """The broker answers."""
        try:
            await asyncio.to_thread(self._ping_broker)
        except Exception:
            return False
        return self._started

    def _ping_broker(self) -> None:
        with self._client.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_S)

    def pause(self) -> None:
        """Nothing runs here: Celery workers keep taking jobs from the broker."""

    async def stop(self, grace_s: float) -> None:
        """Stop publishing; jobs still waiting for the broker stay queued in the database,
        and any API process's recovery sweep publishes them."""
        self._started = False
        if self._publisher is not None:
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher
        await asyncio.to_thread(self._client.close)
