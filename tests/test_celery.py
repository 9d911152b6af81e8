"""The scale-out deployment: PostgreSQL, Celery workers, Redis or RabbitMQ as the broker."""

from __future__ import annotations

import uuid
from functools import partial
from pathlib import Path

import httpx
import psutil
import pytest

from tests.backing_services import reachable, service_missing
from tests.helpers import job_done, maps_library, ndjson, wait_until
from tests.server import StartedProcesses

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.broker]

BROKERS = {
    "redis": ("redis://127.0.0.1:6379/{db}", 6379),
    "rabbitmq": ("amqp://guest:guest@127.0.0.1:5672//", 5672),
}


@pytest.mark.parametrize("broker", sorted(BROKERS))
def test_celery_workers_run_jobs_accepted_by_the_api(
    broker: str, postgres_url: str, tmp_path: Path, processes: StartedProcesses
) -> None:
    template, port = BROKERS[broker]
    if not reachable(port):
        service_missing(broker)
    queue = f"ingest-test-{uuid.uuid4().hex[:8]}"
    data = tmp_path / "shared-data"
    data.mkdir()
    env = {
        "INGEST_DATABASE_URL": postgres_url,
        "INGEST_EXECUTOR": "celery",
        "INGEST_BROKER_URL": template.format(db=9),
        "INGEST_CELERY_QUEUE": queue,
        "INGEST_DATA_DIR": str(data),
        "INGEST_PROGRESS_INTERVAL_S": "0.2",
        "INGEST_MIN_FREE_BYTES": "0",
    }
    api = processes.service(data, **env)
    worker = processes.celery_worker(env, tmp_path / "worker.log")
    with httpx.Client(base_url=api.url, timeout=30) as client:
        ids = []
        for n in range(4):
            response = client.post(
                f"/jobs?filename=part{n}.csv",
                content=f"part,value\n{n},{n * 10}\n".encode(),
                headers={"Content-Type": "text/csv"},
            )
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])
        for n, job_id in enumerate(ids):
            wait_until(partial(job_done, client, job_id), 60)
            job = client.get(f"/jobs/{job_id}").json()
            assert job["status"] == "succeeded", job
            rows = ndjson(client.get(f"/jobs/{job_id}/result").content)
            assert rows == [{"part": n, "value": n * 10}]
    # pandas is installed in this environment, as in a shared one: pyarrow would import it
    # in the worker and, through it, in every process of its pool.
    assert worker.process is not None
    parent = psutil.Process(worker.process.pid)
    for process in [parent, *parent.children(recursive=True)]:
        assert maps_library(process, "pyarrow"), process.cmdline()  # it did load Arrow
        assert not maps_library(process, "pandas"), process.cmdline()
