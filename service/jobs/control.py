"""Client control of a job: cancel and delete."""

from __future__ import annotations

from datetime import timedelta

from service.db import transaction
from service.errors import Conflict
from service.jobs import queries
from service.models import JobPublic, JobStatus
from service.runner import lifecycle
from service.runtime import Runtime
from service.storage import job_paths, remove_job_files


async def cancel(runtime: Runtime, job_id: str, owner: str) -> JobPublic:
    """Cancel a queued or running job; cancelling a cancelled job again is a no-op; 409 if done."""
    retention = timedelta(hours=runtime.settings.retention_hours)
    async with transaction(runtime.sessions) as session:
        job = await queries.find_job(session, job_id, owner)
        cancelled = await lifecycle.cancel(session, job, retention)
        if not cancelled and job.status is not JobStatus.cancelled:
            raise Conflict(f"The job has already {job.status.value}; it cannot be cancelled.")
    if cancelled:
        runtime.admission.queue_changed()
    runtime.views.changed(job_id)
    return JobPublic.from_job(job)


async def delete(runtime: Runtime, job_id: str, owner: str) -> None:
    """Cancel if needed, then forget the job and remove its files."""
    retention = timedelta(hours=runtime.settings.retention_hours)
    async with transaction(runtime.sessions) as session:
        job = await queries.find_job(session, job_id, owner)
        await lifecycle.cancel(session, job, retention)
        await session.delete(job)
    runtime.admission.queue_changed()
    runtime.views.changed(job_id)
    await remove_job_files(job_paths(runtime.settings.data_dir, job_id))
