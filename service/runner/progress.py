"""While a job runs: its progress written to the job row, and its worker's heartbeat."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import update
from sqlmodel import select

from service import parsing
from service.db import SessionFactory, is_transient, transaction
from service.models import Job, utcnow
from service.runner import lifecycle

logger = logging.getLogger(__name__)

CANCEL_CHECK_INTERVAL_S = 0.25
PROGRESS_LOG_INTERVAL_S = 5.0


@dataclass
class ProgressWriter:
    """Receives the parser's progress; stores it at most every `interval_s`, stops on cancel."""

    sessions: SessionFactory
    job_id: str
    attempt: int
    interval_s: float
    started: float = field(default_factory=time.monotonic)
    # The first write and check come an interval after the start: a small job that is over
    # before then costs no transaction here (its claim and its end say it all).
    last_write: float = field(default_factory=time.monotonic)
    last_check: float = field(default_factory=time.monotonic)
    last_log: float = field(default_factory=time.monotonic)
    percent: float = 0.0
    rows_done: int = 0
    rows_failed: int = 0

    async def __call__(self, progress: parsing.ParseProgress) -> None:
        now = time.monotonic()
        self.percent = max(self.percent, min(progress.percent, 100.0))
        self.rows_done = max(self.rows_done, progress.rows_done)
        self.rows_failed = max(self.rows_failed, progress.rows_failed)
        try:
            if now - self.last_write >= self.interval_s:
                self.last_write = self.last_check = now
                await self._store(progress, now)
            elif now - self.last_check >= CANCEL_CHECK_INTERVAL_S:
                self.last_check = now
                await self._check_owned()
        except Exception as exc:
            if not is_transient(exc):
                raise
            # Progress is advisory: a full disk or a busy database must not stop the parse.
            logger.warning(
                "progress write failed",
                extra={"job_id": self.job_id, "error": lifecycle.first_line(exc)},
            )
        if now - self.last_log >= PROGRESS_LOG_INTERVAL_S:
            self.last_log = now
            logger.info(
                "job progress",
                extra={
                    "job_id": self.job_id,
                    "percent": round(self.percent, 1),
                    "rows_done": self.rows_done,
                    "phase": progress.phase,
                },
            )

    async def _store(self, progress: parsing.ParseProgress, now: float) -> None:
        elapsed = max(now - self.started, 1e-6)
        rate = progress.bytes_done / elapsed
        eta = elapsed * (100.0 - self.percent) / self.percent if self.percent > 0 else None
        async with transaction(self.sessions) as session:
            stored = await session.exec(
                update(Job)
                .where(lifecycle.owned(self.job_id, self.attempt))
                .values(
                    phase=progress.phase,
                    bytes_done=progress.bytes_done,
                    percent=round(self.percent, 2),
                    rows_done=self.rows_done,
                    rows_failed=self.rows_failed,
                    rate_bytes_per_s=round(rate, 1),
                    eta_seconds=round(eta, 2) if eta is not None else None,
                    updated_at=utcnow(),
                    heartbeat_at=utcnow(),
                )
            )
            if lifecycle.rowcount(stored) == 0:
                raise lifecycle.JobCancelled(self.job_id)

    async def _check_owned(self) -> None:
        async with self.sessions() as session:
            owned = await session.scalar(
                select(Job.id).where(lifecycle.owned(self.job_id, self.attempt))
            )
        if owned is None:
            raise lifecycle.JobCancelled(self.job_id)


async def keep_beating(
    sessions: SessionFactory, attempts: Sequence[tuple[str, int]], interval_s: float
) -> None:
    """Beat every `interval_s` for each (job id, attempt) of a batch, in one transaction,
    until cancelled (the batch's end) or no job of it is ours any more."""
    beating = list(attempts)
    while beating:
        await asyncio.sleep(interval_s)
        try:
            alive = await lifecycle.beat_many(sessions, beating)
        except Exception as exc:  # a missed beat is tried again at the next one
            logger.warning(
                "heartbeat failed",
                extra={"job_id": beating[0][0], "error": lifecycle.first_line(exc)},
            )
            continue
        beating = [pair for pair, ours in zip(beating, alive, strict=True) if ours]
