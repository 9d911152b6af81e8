"""Fault injection against real processes: workers killed with -9, a broker that goes away
(and comes back empty), signals sent to a whole process group, and a disk that fills up.

The scale-out tests run the API and Celery workers against a fresh PostgreSQL schema and a
redis-server of their own (never the shared one), with short heartbeat and recovery
intervals so that they stay quick; the defaults give the figures the README states.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import psutil
import pytest
from sqlalchemy import create_engine, text

from service.runner.executors.pool import POOL_PARENT_PID_ENV
from tests.backing_services import IN_CI, service_missing
from tests.helpers import ndjson, upload, wait_running, wait_until
from tests.samples import MiB, assert_succeeded_with_csv, write_csv
from tests.server import (
    CeleryWorker,
    RedisServer,
    ServiceProcess,
    StartedProcesses,
    StartService,
    job_log,
    log_records,
)

pytestmark = pytest.mark.slow

QUICK_RECOVERY = {
    "INGEST_HEARTBEAT_INTERVAL_S": "0.5",
    "INGEST_HEARTBEAT_STALE_S": "3",
    "INGEST_RECOVERY_INTERVAL_S": "1",
    "INGEST_DISPATCH_RETRY_MAX_S": "1",
}


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    path = tmp_path_factory.mktemp("faults") / "big.csv"
    rows = write_csv(path, 150 * MiB)
    return path, rows


def post_small(client: httpx.Client, n: int) -> str:
    response = client.post(
        f"/jobs?filename=small{n}.csv",
        content=f"n,square\n{n},{n * n}\n".encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def assert_small_succeeded(client: httpx.Client, job_id: str, n: int) -> None:
    job = client.get(f"/jobs/{job_id}").json()
    assert job["status"] == "succeeded", job
    assert ndjson(client.get(f"/jobs/{job_id}/result").content) == [{"n": n, "square": n * n}]


def all_done(client: httpx.Client, job_ids: list[str]) -> bool:
    return all(client.get(f"/jobs/{job_id}").json()["done"] for job_id in job_ids)


def attempts_in(database_url: str, job_ids: list[str]) -> dict[str, int]:
    engine = create_engine(database_url.replace("+psycopg", "+psycopg"))
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT id, attempts FROM job")).all()
    finally:
        engine.dispose()
    found = {row[0]: int(row[1]) for row in rows}
    return {job_id: found[job_id] for job_id in job_ids}


# --- the scale-out deployment: Celery workers, PostgreSQL, a Redis of the test's own ---------


@dataclass
class Deployment:
    api: ServiceProcess
    redis: RedisServer
    env: dict[str, str]
    tmp: Path
    processes: StartedProcesses
    workers_started: int = 0

    def start_worker(self) -> CeleryWorker:
        log = self.tmp / f"worker-{self.workers_started}.log"
        self.workers_started += 1
        return self.processes.celery_worker(self.env, log)


@pytest.fixture
def deployment(postgres_url: str, tmp_path: Path, processes: StartedProcesses) -> Deployment:
    if not RedisServer.available():
        service_missing("redis-server")
    redis = processes.redis(tmp_path)
    data = tmp_path / "shared-data"
    data.mkdir()
    env = {
        "INGEST_DATABASE_URL": postgres_url,
        "INGEST_EXECUTOR": "celery",
        "INGEST_BROKER_URL": redis.url,
        "INGEST_CELERY_QUEUE": f"ingest-{uuid.uuid4().hex[:8]}",
        "INGEST_DATA_DIR": str(data),
        "INGEST_PROGRESS_INTERVAL_S": "0.2",
        "INGEST_MIN_FREE_BYTES": "0",
        **QUICK_RECOVERY,
    }
    api = processes.service(data, **env)
    return Deployment(api, redis, env, tmp_path, processes)


def test_a_celery_worker_killed_mid_job_is_taken_over_within_30_s(
    deployment: Deployment, big_csv: tuple[Path, int]
) -> None:
    path, rows = big_csv
    worker = deployment.start_worker()
    with httpx.Client(base_url=deployment.api.url, timeout=60) as client:
        job_id = upload(client, path)
        wait_running(client, job_id)
        worker.kill_group()
        killed = time.monotonic()
        assert not client.get(f"/jobs/{job_id}").json()["done"], "the job finished first"
        deployment.start_worker()  # what the restart policy does
        wait_until(lambda: client.get(f"/jobs/{job_id}").json()["done"], timeout=30)
        assert time.monotonic() - killed < 30
        assert_succeeded_with_csv(client, job_id, rows)
    assert attempts_in(deployment.env["INGEST_DATABASE_URL"], [job_id]) == {job_id: 2}


def test_jobs_accepted_while_the_broker_is_down_start_when_it_returns(
    deployment: Deployment, big_csv: tuple[Path, int]
) -> None:
    path, rows = big_csv
    worker = deployment.start_worker()
    with httpx.Client(base_url=deployment.api.url, timeout=30) as client:
        running = upload(client, path)
        wait_running(client, running)
        deployment.redis.stop()  # while the worker holds the running job's message
        job_ids = [post_small(client, n) for n in range(1, 11)]
        time.sleep(2)  # the outage goes on for a while after the uploads
        assert not any(client.get(f"/jobs/{job_id}").json()["done"] for job_id in job_ids)
        deployment.redis.start()
        returned = time.monotonic()
        wait_until(lambda: all_done(client, job_ids), timeout=10)
        took = time.monotonic() - returned
        for n, job_id in enumerate(job_ids, 1):
            assert_small_succeeded(client, job_id, n)
        wait_until(lambda: all_done(client, [running]), timeout=30)
        assert_succeeded_with_csv(client, running, rows)
    assert took < 10
    assert worker.process is not None and worker.process.poll() is None, "the worker died"
    log = worker.log.read_text()
    assert "Unrecoverable error" not in log


def test_jobs_whose_messages_the_broker_lost_are_published_again(
    deployment: Deployment,
) -> None:
    with httpx.Client(base_url=deployment.api.url, timeout=30) as client:
        job_ids = [post_small(client, n) for n in range(10)]  # published; no worker yet
        time.sleep(1)
        deployment.redis.stop()  # without persistence: every message is gone
        deployment.redis.start()
        returned = time.monotonic()
        deployment.start_worker()
        wait_until(lambda: all_done(client, job_ids), timeout=10)
        took = time.monotonic() - returned
        for n, job_id in enumerate(job_ids):
            assert_small_succeeded(client, job_id, n)
    assert took < 10


def test_a_group_sigterm_lets_celery_workers_finish_their_jobs(
    deployment: Deployment, big_csv: tuple[Path, int]
) -> None:
    path, rows = big_csv
    worker = deployment.start_worker()
    with httpx.Client(base_url=deployment.api.url, timeout=60) as client:
        job_id = upload(client, path)
        wait_running(client, job_id)
        assert worker.process is not None
        os.killpg(worker.process.pid, signal.SIGTERM)
        worker.process.wait(timeout=60)
        assert client.get(f"/jobs/{job_id}").json()["status"] == "succeeded"
        assert_succeeded_with_csv(client, job_id, rows)
    assert attempts_in(deployment.env["INGEST_DATABASE_URL"], [job_id]) == {job_id: 1}


# --- the single-machine deployment: the API's own worker pool -----------------------------


def sqlite_attempts(data: Path, job_ids: list[str]) -> dict[str, int]:
    return attempts_in(f"sqlite:///{data / 'ingest.db'}", job_ids)


def test_a_group_sigterm_lets_a_running_job_finish_within_the_grace(
    data_dir: Path, big_csv: tuple[Path, int], processes: StartedProcesses
) -> None:
    path, rows = big_csv
    env = {"INGEST_SHUTDOWN_GRACE_S": "60", "INGEST_MAX_CONCURRENT_JOBS": "1"}
    server = processes.service_in_own_group(data_dir, **env)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        job_id = upload(client, path)
        wait_running(client, job_id)
    os.killpg(server.pid, signal.SIGTERM)  # Ctrl-C's SIGINT or systemd's SIGTERM: all
    assert server.process is not None
    assert server.process.wait(timeout=60) in {0, -15}
    records = log_records(server.log)
    succeeded = job_log(records, job_id, "job succeeded")
    stopped = [n for n, record in enumerate(records) if record["message"] == "service stopped"]
    assert len(succeeded) == 1 and len(stopped) == 1 and succeeded[0] < stopped[0]
    assert sqlite_attempts(data_dir, [job_id]) == {job_id: 1}
    server = processes.service(data_dir, **env)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert_succeeded_with_csv(client, job_id, rows)


def test_the_api_itself_still_stops_on_sigterm(
    data_dir: Path, start_service: StartService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the forkserver ignores group signals, even when the API's own parent runs a pool
    (as this test process does) and the API inherits its environment."""
    monkeypatch.setenv(POOL_PARENT_PID_ENV, str(os.getpid()))
    server = start_service(data_dir)
    assert server.terminate(timeout=20) in {0, -15}


def pool_workers(server: ServiceProcess) -> list[psutil.Process]:
    """The pool's worker processes: the forkserver's children."""
    api = psutil.Process(server.pid)
    return [worker for child in api.children() for worker in child.children()]


def test_killing_one_pool_worker_charges_only_its_own_job(
    data_dir: Path, big_csv: tuple[Path, int], start_service: StartService
) -> None:
    path, rows = big_csv
    server = start_service(data_dir, INGEST_MAX_CONCURRENT_JOBS="2")
    with httpx.Client(base_url=server.url, timeout=60) as client:
        job_ids = [upload(client, path), upload(client, path)]
        for job_id in job_ids:
            wait_running(client, job_id)
        workers = pool_workers(server)
        assert len(workers) == 2, workers
        workers[0].kill()
        wait_until(lambda: all_done(client, job_ids), timeout=120)
        for job_id in job_ids:
            assert_succeeded_with_csv(client, job_id, rows)
    server.stop()
    assert sorted(sqlite_attempts(data_dir, job_ids).values()) == [1, 2]


def test_a_job_that_kills_its_worker_five_times_fails_with_internal_error(
    data_dir: Path, big_csv: tuple[Path, int], start_service: StartService
) -> None:
    server = start_service(data_dir, INGEST_MAX_CONCURRENT_JOBS="1")
    with httpx.Client(base_url=server.url, timeout=60) as client:
        job_id = upload(client, big_csv[0])

        def attempts_reached(attempt: int) -> bool:
            return sqlite_attempts(data_dir, [job_id])[job_id] == attempt

        for attempt in range(1, 6):  # as a file that crashes the parser would
            wait_until(partial(attempts_reached, attempt))
            wait_until(lambda: len(pool_workers(server)) == 1)
            pool_workers(server)[0].kill()
        wait_until(lambda: client.get(f"/jobs/{job_id}").json()["done"])
        job = client.get(f"/jobs/{job_id}").json()
        assert job["status"] == "failed" and job["error"]["code"] == "internal_error", job
        after = post_small(client, 3)
        wait_until(lambda: all_done(client, [after]))
        assert_small_succeeded(client, after, 3)
    server.stop()
    assert sqlite_attempts(data_dir, [job_id]) == {job_id: 6}


# --- a disk that fills up ---------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs (needs the right to mount, as root has here)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        reason = f"cannot mount a small tmpfs here: {mounted.stderr.strip()}"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def chunked(total: int, piece: int = 256 * 1024) -> Iterator[bytes]:
    """A CSV body of about `total` bytes, sent in chunks (no Content-Length)."""
    line = b"1,name,2.50,true,2024-01-01\n"
    yield b"id,name,amount,flag,day\n"
    sent = 0
    while sent < total:
        yield line * (piece // len(line))
        sent += piece


def test_a_full_disk_gives_507_never_500_and_nothing_half_recorded(
    small_disk: Path, start_service: StartService
) -> None:
    data = small_disk / "data"
    data.mkdir()
    server = start_service(data, INGEST_MAX_CONCURRENT_JOBS="1", **QUICK_RECOVERY)
    statuses: list[int] = []
    accepted: list[str] = []
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for _ in range(12):
            response = client.post(
                "/jobs", content=chunked(3 * MiB), headers={"Content-Type": "text/csv"}
            )
            statuses.append(response.status_code)
            if response.status_code == 202:
                accepted.append(response.json()["id"])
            else:
                assert response.headers["content-type"].startswith("application/problem+json")
        assert set(statuses) <= {202, 507}, statuses
        assert 507 in statuses and accepted, statuses

        def settled() -> bool:
            jobs = [client.get(f"/jobs/{job_id}").json() for job_id in accepted]
            return all(job["done"] for job in jobs)

        wait_until(settled, timeout=60)
        jobs = [client.get(f"/jobs/{job_id}").json() for job_id in accepted]
        for job in jobs:
            assert job["status"] == "succeeded" or job["error"]["code"] == "io_error", job
        # Room again: a new upload is taken and runs.
        for job in jobs:
            assert client.delete(f"/jobs/{job['id']}").status_code == 204
        after = client.post("/jobs", content=chunked(MiB), headers={"Content-Type": "text/csv"})
        assert after.status_code == 202, after.text
        wait_until(lambda: client.get(f"/jobs/{after.json()['id']}").json()["done"], 30)
        assert client.get(f"/jobs/{after.json()['id']}").json()["status"] == "succeeded"
        rows = {job["id"] for job in client.get("/jobs").json()["items"]}
    server.stop()
    assert rows == {after.json()["id"]}
    assert {path.name for path in (data / "uploads").iterdir()} == rows
    assert list((data / "incoming").iterdir()) == []
    errors = [record for record in log_records(server.log) if record["level"] == "error"]
    assert not [record for record in errors if record["message"] == "unhandled error"]


def fill(path: Path) -> None:
    """Write to `path` until the disk is full to the last byte."""
    try:
        handle = open(path, "wb", buffering=0)
    except OSError:
        return  # full already
    with handle:
        for block in (64 * 1024, 1):
            try:
                while True:
                    handle.write(b"\0" * block)
            except OSError:
                pass


def test_an_upload_whose_job_cannot_be_recorded_is_507_and_leaves_nothing(
    small_disk: Path, start_service: StartService
) -> None:
    data = small_disk / "data"
    data.mkdir()
    server = start_service(data, **QUICK_RECOVERY)
    filler = small_disk / "filler"
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            done = [post_small(client, n) for n in range(20)]  # the database's log grows
            wait_until(lambda: all_done(client, done), timeout=30)
            fill(filler)
            # One page left: room for the upload's file, none for the database to grow.
            os.truncate(filler, filler.stat().st_size - 4096)
            response = client.post(
                "/jobs?filename=t.csv", content=b"n\n1\n", headers={"Content-Type": "text/csv"}
            )
            assert response.status_code == 507, response.text
            assert response.headers["content-type"].startswith("application/problem+json")
            filler.unlink()
            assert {job["id"] for job in client.get("/jobs?limit=100").json()["items"]} == set(done)
            after = post_small(client, 21)
            wait_until(lambda: all_done(client, [after]), timeout=15)
            assert_small_succeeded(client, after, 21)
    finally:
        filler.unlink(missing_ok=True)
    server.stop()
    assert {path.name for path in (data / "uploads").iterdir()} == {*done, after}
    assert list((data / "incoming").iterdir()) == []


def test_jobs_caught_by_a_full_disk_fail_cleanly_or_resume_once_there_is_room(
    small_disk: Path, start_service: StartService
) -> None:
    data = small_disk / "data"
    data.mkdir()
    env = {"INGEST_MAX_CONCURRENT_JOBS": "1", **QUICK_RECOVERY}
    server = start_service(data, **env)
    filler = small_disk / "filler"
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            big = client.post(
                "/jobs", content=chunked(5 * MiB), headers={"Content-Type": "text/csv"}
            )
            assert big.status_code == 202, big.text
            job_ids = [big.json()["id"], *(post_small(client, n) for n in range(3))]
            fill(filler)  # while the big job writes its result and the others wait
            more = client.post("/jobs", content=b"n\n1\n", headers={"Content-Type": "text/csv"})
            assert more.status_code in {202, 507}, more.text
            if more.status_code == 202:
                job_ids.append(more.json()["id"])
            time.sleep(2)
            filler.unlink()
            wait_until(lambda: all_done(client, job_ids), timeout=30)
            for job_id in job_ids:
                job = client.get(f"/jobs/{job_id}").json()
                assert job["status"] == "succeeded" or job["error"]["code"] == "io_error", job
            after = post_small(client, 9)
            wait_until(lambda: all_done(client, [after]), timeout=15)
            assert_small_succeeded(client, after, 9)
    finally:
        filler.unlink(missing_ok=True)
    server.stop()
    crashes = [
        r for r in log_records(server.log) if r["message"] in ("unhandled error", "job crashed")
    ]
    assert crashes == []
