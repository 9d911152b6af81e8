"""Operations against a real uvicorn process: SIGTERM, retention, cancel, logs."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import httpx
import orjson
import psutil
import pytest

from tests.server import ServiceProcess
from tests.test_server_process import MiB, wait_until, write_csv

pytestmark = pytest.mark.slow

# uvicorn shuts down gracefully, then re-raises the signal it caught.
STOPPED_BY_SIGTERM = {0, -15}


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    path = tmp_path_factory.mktemp("big") / "big.csv"
    rows = write_csv(path, 150 * MiB)
    return path, rows


def upload(client: httpx.Client, path: Path) -> str:
    with open(path, "rb") as handle:
        response = client.post("/jobs", files={"file": (path.name, handle, "text/csv")})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def status_of(client: httpx.Client, job_id: str) -> str:
    status: str = client.get(f"/jobs/{job_id}").json()["status"]
    return status


def worker_read_bytes(server: ServiceProcess) -> int:
    total = 0
    for child in psutil.Process(server.pid).children(recursive=True):
        try:
            total += child.io_counters().read_chars
        except psutil.NoSuchProcess:
            pass
    return total


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


def test_cancelling_a_large_running_job_stops_its_parse(
    data: Path, big_csv: tuple[Path, int]
) -> None:
    server = ServiceProcess(data).start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            job_id = upload(client, big_csv[0])
            wait_until(lambda: status_of(client, job_id) == "running")
            cancelled = client.post(f"/jobs/{job_id}/cancel")
            assert cancelled.status_code == 200
            assert cancelled.json()["status"] == "cancelled"
            assert client.post(f"/jobs/{job_id}/cancel").status_code == 200
            time.sleep(1.0)
            before = worker_read_bytes(server)
            time.sleep(1.0)
            assert worker_read_bytes(server) - before < MiB, "the worker kept reading"
            job = client.get(f"/jobs/{job_id}").json()
            assert job["status"] == "cancelled"
            assert job["progress"]["percent"] < 100
            assert client.get(f"/jobs/{job_id}/result").status_code == 409
        assert not (data / "jobs" / job_id / "result.ndjson").exists()
        assert not (data / "jobs" / job_id / "result.ndjson.part").exists()
    finally:
        server.stop()


def test_sigterm_refuses_uploads_and_leaves_running_jobs_for_the_next_start(
    data: Path, big_csv: tuple[Path, int]
) -> None:
    path, rows = big_csv
    env = {"INGEST_SHUTDOWN_GRACE_S": "0.5", "INGEST_MAX_CONCURRENT_JOBS": "1"}
    server = ServiceProcess(data, **env).start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            job_id = upload(client, path)
            wait_until(lambda: status_of(client, job_id) == "running")
        started = time.monotonic()
        assert server.terminate(timeout=30) in STOPPED_BY_SIGTERM
        assert time.monotonic() - started < 15
        with pytest.raises(httpx.TransportError):
            httpx.post(
                f"{server.url}/jobs", content=b"a\n1\n", headers={"Content-Type": "text/csv"}
            )
        assert not (data / "jobs" / job_id / "result.ndjson").exists()

        server = ServiceProcess(data, **env).start()
        with httpx.Client(base_url=server.url, timeout=60) as client:
            wait_until(lambda: client.get(f"/jobs/{job_id}").json()["done"], timeout=120)
            job = client.get(f"/jobs/{job_id}").json()
            assert job["status"] == "succeeded", job
            assert job["result"]["rows"] == rows
    finally:
        server.stop()


def test_sigterm_lets_a_running_job_finish_within_the_grace_period(data: Path) -> None:
    small = data.parent / "small.csv"
    rows = write_csv(small, 8 * MiB)
    server = ServiceProcess(data, INGEST_SHUTDOWN_GRACE_S="60").start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            job_id = upload(client, small)
            wait_until(lambda: status_of(client, job_id) != "queued", timeout=30)
        assert server.terminate(timeout=60) in STOPPED_BY_SIGTERM
    finally:
        server.stop()
    server = ServiceProcess(data).start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            job = client.get(f"/jobs/{job_id}").json()
            assert job["status"] == "succeeded", job
            assert job["result"]["rows"] == rows
    finally:
        server.stop()


def test_retention_sweep_removes_expired_jobs_and_orphans(data: Path) -> None:
    orphan_id = str(uuid.uuid4())
    orphan_output = data / "jobs" / orphan_id
    orphan_output.mkdir(parents=True)
    orphan_upload = data / "uploads" / orphan_id
    orphan_upload.parent.mkdir()
    orphan_upload.write_bytes(b"left behind by a crash")
    fresh_upload = data / "uploads" / str(uuid.uuid4())
    fresh_upload.write_bytes(b"may belong to an upload being recorded right now")
    two_hours_ago = time.time() - 7200
    for orphan in (orphan_output, orphan_upload):
        os.utime(orphan, (two_hours_ago, two_hours_ago))
    server = ServiceProcess(
        data, INGEST_RETENTION_HOURS="0.0005", INGEST_SWEEP_INTERVAL_S="0.2"
    ).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            response = client.post("/jobs", content=b"a\n1\n", headers={"Content-Type": "text/csv"})
            job_id = response.json()["id"]
            wait_until(lambda: client.get(f"/jobs/{job_id}").status_code == 404, timeout=30)
            assert not (data / "jobs" / job_id).exists()
            assert not (data / "uploads" / job_id).exists()
            assert client.get("/jobs").json()["items"] == []
        assert not orphan_output.exists()
        assert not orphan_upload.exists()
        assert fresh_upload.exists()
    finally:
        server.stop()


def test_logs_are_json_lines_with_job_ids(data: Path) -> None:
    server = ServiceProcess(data, INGEST_LOG_LEVEL="INFO").start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            response = client.post("/jobs", content=b"a\n1\n", headers={"Content-Type": "text/csv"})
            job_id = response.json()["id"]
            request_id = response.headers["x-request-id"]
            wait_until(lambda: client.get(f"/jobs/{job_id}").json()["done"])
    finally:
        server.terminate()
    lines = [orjson.loads(line) for line in server.log.read_text().splitlines() if line.strip()]
    assert all({"time", "level", "message"} <= set(line) for line in lines)
    messages = {line["message"] for line in lines if line.get("job_id") == job_id}
    assert {"job started", "job succeeded"} <= messages
    requests = [line for line in lines if line.get("request_id") == request_id]
    assert any(line["message"] == "request" and line["status"] == 202 for line in requests)
