"""What the running application holds: settings, database, executor, watchers, metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.db import SessionFactory
from service.jobs.conversions import Conversions
from service.jobs.views import JobViews
from service.metrics import Metrics
from service.models import JobStatus
from service.runner.executors import Executor
from service.upload.admission import Admission
from service.upload.recorder import JobRecorder


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: SessionFactory
    executor: Executor
    views: JobViews
    metrics: Metrics
    admission: Admission
    recorder: JobRecorder
    uploads_in_flight: set[tuple[str, str]] = field(default_factory=set)
    conversions: Conversions = field(default_factory=Conversions)

    def begin_shutdown(self) -> None:
        """A stop was asked for: refuse uploads (503) and start no more jobs."""
        self.admission.accepting = False
        self.executor.pause()

    async def job_done(self, job_id: str, row: dict[str, Any] | None = None) -> None:
        """A job ran in this process's pool: wake its watchers, count it. `row` is the job as
        its worker left it, when it succeeded there; otherwise the job is read again."""
        if row is None:
            snapshot = await self.views.reload(job_id)
            if snapshot is not None and snapshot.job.done:
                job = snapshot.job
                self.metrics.job_finished(
                    job.status,
                    job.started_at,
                    job.finished_at,
                    job.file.size,
                    job.progress.rows_done,
                    job.progress.rows_failed,
                )
            return
        self.views.put(row)
        self.metrics.job_finished(
            JobStatus(row["status"]),
            row["started_at"],
            row["finished_at"],
            row["file_size"],
            row["rows_done"],
            row["rows_failed"],
        )
