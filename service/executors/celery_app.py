"""The Celery application that `make worker` runs: `celery -A service.executors.celery_app worker`.

Celery needs its app object at import time; it is configured from the same
`INGEST_*` settings as the API.
"""

from __future__ import annotations

from celery import Celery

from service import worker
from service.config import get_settings
from service.executors.celery import RUN_JOB_TASK

app = Celery("ingest", broker=get_settings().broker_url)
app.conf.update(
    task_default_queue=get_settings().celery_queue,
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    # A job is acknowledged only once it has run, so a worker that dies mid-job
    # leaves its message to be delivered again; claiming in the database makes that safe.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
)


@app.task(name=RUN_JOB_TASK)  # type: ignore[untyped-decorator]
def run_job(job_id: str) -> None:
    worker.run_job(job_id, get_settings())
