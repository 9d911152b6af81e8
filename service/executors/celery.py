"""The scale-out executor: jobs go to Celery workers through the broker."""

from __future__ import annotations

import asyncio

from celery import Celery

from service.config import Settings

RUN_JOB_TASK = "ingest.run_job"
BROKER_TIMEOUT_S = 2.0


class CeleryExecutor:
    def __init__(self, settings: Settings) -> None:
        self._client = Celery("ingest", broker=settings.broker_url)
        self._client.conf.update(
            task_serializer="json",
            task_default_queue=settings.celery_queue,
            broker_connection_retry_on_startup=True,
        )
        self._started = False

    async def start(self) -> None:
        self._started = True

    async def submit(self, job_id: str) -> None:
        # Publishing talks to the broker over the network: keep it off the event loop.
        await asyncio.to_thread(self._client.send_task, RUN_JOB_TASK, args=[job_id])

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
        self._started = False
        await asyncio.to_thread(self._client.close)
