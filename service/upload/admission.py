"""Admission checks before an upload's body is read: queue room (503) and free disk (507).

Both answers are cached briefly, so a burst of small uploads does not query the database
and the file system for each one; jobs accepted since the last count are added to it. When
the cache runs out, the uploads arriving meanwhile share one count and one measure.
"""

from __future__ import annotations

import asyncio
import time

from service.config import Settings
from service.db import SessionFactory
from service.errors import InsufficientStorage, ServiceUnavailable
from service.jobs import queries
from service.storage import free_bytes

RETRY_AFTER_BUSY_S = 5
REFRESH_S = 0.5


class Admission:
    def __init__(self, settings: Settings, sessions: SessionFactory) -> None:
        self._settings = settings
        self._sessions = sessions
        self._waiting = 0
        self._counted_at = float("-inf")
        self._free = 0
        self._measured_at = float("-inf")
        self._counting: asyncio.Future[None] | None = None
        self._measuring: asyncio.Future[None] | None = None
        self.accepting = True

    async def check(self, declared_bytes: int | None) -> None:
        """Raise 503 or 507 if one more upload (of `declared_bytes`, if known) cannot be taken."""
        if not self.accepting:
            raise ServiceUnavailable(
                "The service is shutting down.", headers={"Retry-After": str(RETRY_AFTER_BUSY_S)}
            )
        if time.monotonic() - self._counted_at > REFRESH_S:
            if self._counting is None:
                self._counting = asyncio.ensure_future(self._count())
            await asyncio.shield(self._counting)
        if self._waiting >= self._settings.max_queued_jobs:
            raise ServiceUnavailable(
                f"The queue is full ({self._waiting} jobs waiting); try again later.",
                headers={"Retry-After": str(RETRY_AFTER_BUSY_S)},
            )
        needed = self._settings.min_free_bytes + (declared_bytes or 0)
        if time.monotonic() - self._measured_at > REFRESH_S or self._free < needed:
            # The estimate only counts uploads down: a refusal is always measured afresh.
            if self._measuring is None:
                self._measuring = asyncio.ensure_future(self._measure())
            await asyncio.shield(self._measuring)
        if self._free < needed:
            raise InsufficientStorage(_no_room(self._free, declared_bytes, self._settings))

    async def _count(self) -> None:
        try:
            started = time.monotonic()
            async with self._sessions() as session:
                self._waiting = await queries.count_waiting(session)
            self._counted_at = started
        finally:
            self._counting = None

    async def _measure(self) -> None:
        try:
            started = time.monotonic()
            self._free = await asyncio.to_thread(free_bytes, self._settings.data_dir)
            self._measured_at = started
        finally:
            self._measuring = None

    def accepted(self, size: int) -> None:
        """Count a job accepted since the last refresh."""
        self._waiting += 1
        self._free -= size

    def queue_changed(self) -> None:
        """Jobs left the queue in this process (cancelled, deleted): count afresh next time."""
        self._counted_at = float("-inf")


def _no_room(free: int, declared: int | None, settings: Settings) -> str:
    upload = f" of {declared} bytes" if declared else ""
    return (
        f"Not enough free disk space to accept the upload{upload}: {free} bytes are free "
        f"and {settings.min_free_bytes} must stay free."
    )
