"""Waiting requests on PostgreSQL hear of changes made by other processes at their commit.

Each test runs `python -m service` with Celery as its executor against a fresh PostgreSQL
schema and a redis-server of its own, with the waiters' recheck set to 30 s: an answer within
a few seconds can only have come from a notification.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.backing_services import service_missing
from tests.helpers import wait_until
from tests.server import RedisServer, ServiceProcess, StartedProcesses

pytestmark = pytest.mark.slow

RECHECK_S = 30
PASSWORD = "s3cret pass"
PROMPT_S = 5  # far below the recheck


@pytest.fixture
def env(postgres_url: str, tmp_path: Path, processes: StartedProcesses) -> dict[str, str]:
    if not RedisServer.available():
        service_missing("redis-server")
    redis = processes.redis(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    # A password with a space (trust authentication ignores it) must reach libpq whole.
    with_password = make_url(postgres_url).set(password=PASSWORD)
    return {
        "INGEST_DATABASE_URL": with_password.render_as_string(hide_password=False),
        "INGEST_EXECUTOR": "celery",
        "INGEST_BROKER_URL": redis.url,
        "INGEST_CELERY_QUEUE": f"ingest-{uuid.uuid4().hex[:8]}",
        "INGEST_DATA_DIR": str(data),
        "INGEST_MIN_FREE_BYTES": "0",
        "INGEST_WAIT_RECHECK_S": str(RECHECK_S),
    }


@pytest.fixture
def api(env: dict[str, str], processes: StartedProcesses) -> ServiceProcess:
    return processes.service(Path(env["INGEST_DATA_DIR"]), **env)


@pytest.fixture
def database(env: dict[str, str]) -> Iterator[object]:
    engine = create_engine(env["INGEST_DATABASE_URL"])
    yield engine
    engine.dispose()


def queued_job(client: httpx.Client) -> tuple[str, str]:
    """A job that no worker takes (none runs): its id and ETag."""
    response = client.post(
        "/jobs?filename=tiny.csv", content=b"a,b\n1,2\n", headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id, client.get(f"/jobs/{job_id}").headers["ETag"]


def cancel_elsewhere(engine: object, job_id: str) -> None:
    """What another process does to the job: a transaction of its own, committed."""
    with engine.begin() as connection:  # type: ignore[attr-defined]
        connection.execute(
            text(
                "UPDATE job SET status = 'cancelled', finished_at = now(), updated_at = now() "
                "WHERE id = :id"
            ),
            {"id": job_id},
        )


def long_poll(base_url: str, job_id: str, etag: str, answers: list[httpx.Response]) -> None:
    with httpx.Client(base_url=base_url, timeout=60) as client:
        answers.append(
            client.get(f"/jobs/{job_id}?wait={RECHECK_S}", headers={"If-None-Match": etag})
        )


def change_while_waiting(api: ServiceProcess, engine: object, job_id: str, etag: str) -> float:
    """Seconds from another process's commit to the long-poll's answer."""
    answers: list[httpx.Response] = []
    waiter = threading.Thread(target=long_poll, args=(api.url, job_id, etag, answers))
    waiter.start()
    time.sleep(0.5)  # the request reaches its wait; had it not, its first read sees the change
    cancel_elsewhere(engine, job_id)
    changed = time.monotonic()
    waiter.join(timeout=RECHECK_S + 10)
    took = time.monotonic() - changed
    assert answers and answers[0].status_code == 200, answers
    assert answers[0].json()["status"] == "cancelled"
    return took


def test_a_long_poll_is_answered_when_another_process_commits_a_change(
    api: ServiceProcess, database: object
) -> None:
    with httpx.Client(base_url=api.url, timeout=30) as client:
        job_id, etag = queued_job(client)
        assert change_while_waiting(api, database, job_id, etag) < PROMPT_S


def test_notifications_come_back_after_their_connection_is_lost(
    api: ServiceProcess, database: object
) -> None:
    def listener_pids() -> list[int]:
        with database.connect() as connection:  # type: ignore[attr-defined]
            rows = connection.execute(
                text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
                {"name": f"ingest-listen-{api.pid}"},
            ).all()
        return [row[0] for row in rows]

    wait_until(listener_pids, timeout=10)
    terminated = set(listener_pids())
    with database.begin() as connection:  # type: ignore[attr-defined]
        for pid in terminated:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    wait_until(lambda: set(listener_pids()) - terminated, timeout=10)  # connected again
    with httpx.Client(base_url=api.url, timeout=30) as client:
        job_id, etag = queued_job(client)
        assert change_while_waiting(api, database, job_id, etag) < PROMPT_S
    log = api.log.read_text()
    assert "job change notifications lost" in log
    assert PASSWORD not in log


def test_prefer_wait_returns_when_a_celery_worker_finishes_the_job(
    env: dict[str, str], api: ServiceProcess, processes: StartedProcesses, tmp_path: Path
) -> None:
    processes.celery_worker(env, tmp_path / "worker.log")
    with httpx.Client(base_url=api.url, timeout=60) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200, timeout=30)
        client.post(  # the worker's first job warms it up
            "/jobs?filename=warm.csv",
            content=b"a\n1\n",
            headers={"Content-Type": "text/csv", "Prefer": f"wait={RECHECK_S}"},
        )
        started = time.monotonic()
        response = client.post(
            "/jobs?filename=tiny.csv",
            content=b"a,b\n1,2\n",
            headers={"Content-Type": "text/csv", "Prefer": f"wait={RECHECK_S}"},
        )
        took = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "succeeded"
    assert took < PROMPT_S
