"""Admission checks before an upload's body is read: queue room (503) and free disk (507).

Both answers are cached briefly, so a burst of small uploads does not query the database
and the file system for each one; jobs accepted since the last count are added to it.
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
        self.accepting = True

    async def check(self, declared_bytes: int | None) -> None:
        """Raise 503 or 507 if one more upload (of `declared_bytes`, if known) cannot be taken."""
        if not self.accepting:
            raise ServiceUnavailable(
                "The service is shutting down.", headers={"Retry-After": str(RETRY_AFTER_BUSY_S)}
            )
        now = time.monotonic()
        if now - self._counted_at > REFRESH_S:
            async with self._sessions() as session:
                self._waiting = await queries.count_waiting(session)
            self._counted_at = now
        if self._waiting >= self._settings.max_queued_jobs:
            raise ServiceUnavailable(
                f"The queue is full ({self._waiting} jobs waiting); try again later.",
                headers={"Retry-After": str(RETRY_AFTER_BUSY_S)},
            )
        needed = self._settings.min_free_bytes + (declared_bytes or 0)
        if now - self._measured_at > REFRESH_S or self._free < needed:
            # The estimate only counts uploads down: a refusal is always measured afresh.
            self._free = await asyncio.to_thread(free_bytes, self._settings.data_dir)
            self._measured_at = now
        if self._free < needed:
            raise InsufficientStorage(_no_room(self._free, declared_bytes, self._settings))

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
