"""Job rows written straight to the database, for tests of what happens to a queued job."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

from service.db import SessionFactory, transaction
from service.jobs.queries import new_job
from service.models import Job
from service.options import JobOptions
from service.storage import StoredFile, job_paths, make_data_dirs


def queued_job(
    data_dir: Path, content: bytes, *, name: str = "t.csv", age: timedelta = timedelta()
) -> Job:
    """A queued job whose upload (`content`) is on disk, as if accepted `age` ago and never
    handed to an executor."""
    make_data_dirs(data_dir)
    job_id = str(uuid.uuid4())
    job_paths(data_dir, job_id).upload.write_bytes(content)
    accepted = new_job(
        job_id=job_id,
        owner="",
        file_name=name,
        media_type="text/csv",
        content_encoding=None,
        options=JobOptions(),
        stored=StoredFile(len(content), "0" * 64),
        retention=timedelta(hours=1),
    )
    # An instance of the ORM's, as a session loads: the tests change it and add it to one.
    job = Job(**accepted.model_dump())
    job.created_at = job.updated_at = job.updated_at - age
    return job


async def add_queued_jobs(sessions: SessionFactory, *jobs: Job) -> None:
    async with transaction(sessions) as session:
        session.add_all(jobs)
