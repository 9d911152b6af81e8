"""Operations against a real uvicorn process: SIGTERM, crashes, cancel, events, retention, logs."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import pytest

from service.storage import job_paths
from tests.helpers import maps_library, upload, wait_running, wait_until
from tests.samples import MiB, assert_succeeded_with_csv, write_csv
from tests.server import ServiceProcess, StartedProcesses, StartService, job_log, log_records

pytestmark = pytest.mark.slow

# uvicorn shuts down gracefully, then re-raises the signal it caught.
STOPPED_BY_SIGTERM = {0, -15}


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    path = tmp_path_factory.mktemp("big") / "big.csv"
    rows = write_csv(path, 150 * MiB)
    return path, rows


def status_of(client: httpx.Client, job_id: str) -> str:
    status: str = client.get(f"/jobs/{job_id}").json()["status"]
    return status


def post_small(client: httpx.Client) -> str:
    response = client.post(
        "/jobs?filename=small.csv", content=b"a\n1\n", headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def log_time(record: dict[str, object]) -> float:
    return datetime.fromisoformat(str(record["time"]).replace("Z", "+00:00")).timestamp()


def result_lines(client: httpx.Client, job_id: str) -> int:
    with client.stream("GET", f"/jobs/{job_id}/result") as response:
        assert response.status_code == 200
        return sum(chunk.count(b"\n") for chunk in response.iter_bytes(4 * MiB))


def still_alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            pass
    return alive


def describe(processes: list[psutil.Process]) -> list[str]:
    described = []
    for process in processes:
        try:
            described.append(f"{process.pid}: {' '.join(process.cmdline())[:120]}")
        except psutil.Error:
            described.append(str(process.pid))
    return described


def sse_events(
    response: httpx.Response, timeout: float = 60.0
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(event, id, data) for each Server-Sent Event until the stream ends; fails after
    `timeout` seconds (keep-alive comments are skipped, so a stream that never ends is caught)."""
    deadline = time.monotonic() + timeout
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if time.monotonic() > deadline:
            raise AssertionError(f"the event stream was still open after {timeout}s")
        if not line:
            if "data" in fields:
                data = orjson.loads(fields["data"])
                yield fields.get("event", "message"), fields.get("id", ""), data
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            fields[name] = f"{fields[name]}\n{value}" if name in fields else value


def worker_read_bytes(server: ServiceProcess) -> int:
    total = 0
    for child in psutil.Process(server.pid).children(recursive=True):
        try:
            total += child.io_counters().read_chars
        except psutil.NoSuchProcess:
            pass
    return total


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One server for the tests that only follow their own job to its end."""
    data = tmp_path_factory.mktemp("shared") / "data"
    data.mkdir()
    with StartedProcesses() as started:
        yield started.service(data)


def test_cancelling_a_queued_job_and_a_running_one(
    data_dir: Path, big_csv: tuple[Path, int], start_service: StartService
) -> None:
    server = start_service(data_dir, INGEST_MAX_CONCURRENT_JOBS="1")
    with httpx.Client(base_url=server.url, timeout=60) as client:
        running_id = upload(client, big_csv[0])
        wait_running(client, running_id)
        queued_id = post_small(client)
        assert status_of(client, queued_id) == "queued"
        for job_id in (queued_id, queued_id, running_id, running_id):
            cancelled = client.post(f"/jobs/{job_id}/cancel")
            assert cancelled.status_code == 200, cancelled.text
            assert cancelled.json()["status"] == "cancelled"
        time.sleep(1.0)
        before = worker_read_bytes(server)
        time.sleep(1.0)
        assert worker_read_bytes(server) - before < MiB, "the worker kept reading"
        job = client.get(f"/jobs/{running_id}").json()
        assert job["status"] == "cancelled"
        assert job["progress"]["percent"] < 100
        queued = client.get(f"/jobs/{queued_id}").json()
        assert queued["status"] == "cancelled"
        assert queued["started_at"] is None
        for job_id in (running_id, queued_id):
            assert client.get(f"/jobs/{job_id}/result").status_code == 409
        # Jobs are taken in order: once a job submitted now has run, the worker has
        # passed the cancelled one.
        behind_id = post_small(client)
        wait_until(lambda: client.get(f"/jobs/{behind_id}").json()["done"])
        assert status_of(client, behind_id) == "succeeded"
        assert status_of(client, queued_id) == "cancelled"
    records = log_records(server.log)
    assert len(job_log(records, running_id, "job started")) == 1
    assert job_log(records, queued_id, "job started") == []
    assert len(job_log(records, behind_id, "job started")) == 1
    for job_id in (running_id, queued_id):
        assert job_log(records, job_id, "job succeeded") == []
        assert not job_paths(data_dir, job_id).result.exists()
        assert not any(job_paths(data_dir, job_id).root.glob("result.ndjson.*.part"))


def test_sigterm_refuses_uploads_and_leaves_running_jobs_for_the_next_start(
    data_dir: Path, big_csv: tuple[Path, int], start_service: StartService
) -> None:
    path, rows = big_csv
    # No grace at all: the 150 MB job, seen running, parses in well under a second now, so
    # even half a second could let it finish.
    env = {"INGEST_SHUTDOWN_GRACE_S": "0", "INGEST_MAX_CONCURRENT_JOBS": "1"}
    server = start_service(data_dir, **env)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        job_id = upload(client, path)
        wait_running(client, job_id)
    started = time.monotonic()
    assert server.terminate(timeout=30) in STOPPED_BY_SIGTERM
    assert time.monotonic() - started < 15
    with pytest.raises(httpx.TransportError):
        httpx.post(f"{server.url}/jobs", content=b"a\n1\n", headers={"Content-Type": "text/csv"})
    assert not job_paths(data_dir, job_id).result.exists()
    first = log_records(server.log)
    assert len(job_log(first, job_id, "job started")) == 1
    assert job_log(first, job_id, "job succeeded") == [], "the job finished before SIGTERM"
    assert any(record["message"] == "service stopped" for record in first)

    server = start_service(data_dir, **env)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        wait_until(lambda: client.get(f"/jobs/{job_id}").json()["done"], timeout=120)
        job = client.get(f"/jobs/{job_id}").json()
        assert job["status"] == "succeeded", job
        assert job["result"]["rows"] == rows
        assert result_lines(client, job_id) == rows
    second = log_records(server.log)
    assert len(job_log(second, job_id, "job started")) == 1
    assert len(job_log(second, job_id, "job succeeded")) == 1


def test_sigterm_lets_a_running_job_finish_within_the_grace_period(
    data_dir: Path, big_csv: tuple[Path, int], start_service: StartService
) -> None:
    path, rows = big_csv
    env = {"INGEST_SHUTDOWN_GRACE_S": "60", "INGEST_MAX_CONCURRENT_JOBS": "1"}
    server = start_service(data_dir, **env)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        job_id = upload(client, path)
        job = wait_running(client, job_id)
    signalled = time.time()
    assert server.terminate(timeout=60) in STOPPED_BY_SIGTERM
    first = log_records(server.log)
    succeeded = job_log(first, job_id, "job succeeded")
    stopped = [n for n, record in enumerate(first) if record["message"] == "service stopped"]
    assert len(succeeded) == 1, f"the job did not finish in the grace period ({job['progress']})"
    assert log_time(first[succeeded[0]]) >= signalled - 0.001, "the job finished before SIGTERM"
    assert len(stopped) == 1 and succeeded[0] < stopped[0]

    server = start_service(data_dir, **env)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        job = client.get(f"/jobs/{job_id}").json()
        assert job["status"] == "succeeded", job
        assert job["result"]["rows"] == rows
        assert result_lines(client, job_id) == rows
    server.stop()
    started = job_log(first, job_id, "job started") + job_log(
        log_records(server.log), job_id, "job started"
    )
    assert len(started) == 1, "the job ran again after the restart"


def test_kill_9_of_the_api_alone_ends_its_workers_and_the_job_reruns_cleanly(
    data_dir: Path, big_csv: tuple[Path, int], start_service: StartService
) -> None:
    path, rows = big_csv
    first = start_service(data_dir)
    with httpx.Client(base_url=first.url, timeout=60) as client:
        job_id = upload(client, path)
        wait_running(client, job_id)
    # Noted by `first`: whichever outlives the checks below is killed at teardown.
    leftovers = first.children()
    assert leftovers, "the server has no worker processes"
    # What the OOM killer does: SIGKILL to the one process, none to its children.
    os.kill(first.pid, signal.SIGKILL)
    assert first.process is not None
    first.process.wait(timeout=10)
    killed_at = time.monotonic()

    second = start_service(data_dir)
    with httpx.Client(base_url=second.url, timeout=60) as client:
        wait_until(lambda: client.get(f"/jobs/{job_id}").json()["done"], timeout=90)
        assert_succeeded_with_csv(client, job_id, rows)

    while still_alive(leftovers) and time.monotonic() < killed_at + 10:
        time.sleep(0.05)
    survivors = still_alive(leftovers)
    assert not survivors, f"still running 10 s after the API died: {describe(survivors)}"
    killed_log = log_records(first.log)
    assert job_log(killed_log, job_id, "job succeeded") == [], "a worker outlived the API"
    assert len(job_log(log_records(second.log), job_id, "job succeeded")) == 1


def test_event_stream_follows_a_big_job_to_one_done_event(
    shared_server: ServiceProcess, big_csv: tuple[Path, int]
) -> None:
    path, rows = big_csv
    with httpx.Client(base_url=shared_server.url, timeout=30) as client:
        job_id = upload(client, path)
        with client.stream("GET", f"/jobs/{job_id}/events") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = list(sse_events(response))
    names = [name for name, _, _ in events]
    assert names[-1] == "done" and names.count("done") == 1, names
    assert set(names) == {"progress", "done"}, names
    progress = [job for name, _, job in events if name == "progress"]
    assert len(progress) >= 3, names
    assert all(job["id"] == job_id and not job["done"] for job in progress)
    percents = [job["progress"]["percent"] for job in progress]
    assert percents == sorted(percents), percents
    assert any(0 < percent < 100 for percent in percents), percents
    rows_done = [job["progress"]["rows_done"] for job in progress]
    assert rows_done == sorted(rows_done), rows_done
    event_ids = [event_id for _, event_id, _ in events]
    assert all(a != b for a, b in zip(event_ids, event_ids[1:], strict=False)), event_ids
    done = events[-1][2]
    assert done["status"] == "succeeded", done
    assert done["result"]["rows"] == rows
    assert done["progress"]["percent"] == 100


def test_clients_leaving_an_event_stream_do_not_disturb_the_server(
    shared_server: ServiceProcess, big_csv: tuple[Path, int]
) -> None:
    path, rows = big_csv
    with httpx.Client(base_url=shared_server.url, timeout=30) as client:
        job_id = upload(client, path)
        for _ in range(3):
            with httpx.Client(base_url=shared_server.url, timeout=30) as follower:
                with follower.stream("GET", f"/jobs/{job_id}/events") as response:
                    name, _, job = next(sse_events(response))
                    assert name == "progress" and not job["done"]
            # Leaving the blocks closed the connection mid-stream.
        assert client.get("/healthz", timeout=5).status_code == 200
        wait_until(lambda: client.get(f"/jobs/{job_id}").json()["done"], timeout=60)
        job = client.get(f"/jobs/{job_id}").json()
        assert job["status"] == "succeeded", job
        assert job["result"]["rows"] == rows
        with client.stream("GET", f"/jobs/{job_id}/events") as response:
            assert [name for name, _, _ in sse_events(response)] == ["done"]
    assert shared_server.process is not None and shared_server.process.poll() is None
    errors = [
        record
        for record in log_records(shared_server.log)
        if record["level"] in ("error", "critical")
    ]
    assert errors == []


def test_prefer_wait_answers_202_when_the_job_outlasts_it(
    shared_server: ServiceProcess, big_csv: tuple[Path, int]
) -> None:
    path, rows = big_csv
    with httpx.Client(base_url=shared_server.url, timeout=60) as client:
        with open(path, "rb") as handle:
            response = client.post(
                "/jobs",
                files={"file": (path.name, handle, "text/csv")},
                headers={"Prefer": "wait=0.1"},
            )
        assert response.status_code == 202, response.text
        assert response.headers["preference-applied"] == "wait=0.1"
        job = response.json()
        assert not job["done"] and job["status"] in {"queued", "running"}, job
        assert response.headers["location"] == f"/jobs/{job['id']}"
        assert "retry-after" in response.headers

        small = client.post(
            "/jobs?filename=small.csv",
            content=b"a\n1\n",
            headers={"Content-Type": "text/csv", "Prefer": "wait=20"},
        )
        assert small.status_code == 200, small.text
        assert small.headers["preference-applied"] == "wait=20"
        assert small.json()["status"] == "succeeded"

        wait_until(lambda: client.get(f"/jobs/{job['id']}").json()["done"], timeout=60)
        finished = client.get(f"/jobs/{job['id']}").json()
        assert finished["status"] == "succeeded", finished
        assert finished["result"]["rows"] == rows


def test_retention_sweep_removes_expired_jobs_and_orphans(
    data_dir: Path, start_service: StartService
) -> None:
    orphan_id = str(uuid.uuid4())
    orphan_output = data_dir / "jobs" / orphan_id
    orphan_output.mkdir(parents=True)
    orphan_upload = data_dir / "uploads" / orphan_id
    orphan_upload.parent.mkdir()
    orphan_upload.write_bytes(b"left behind by a crash")
    fresh_upload = data_dir / "uploads" / str(uuid.uuid4())
    fresh_upload.write_bytes(b"may belong to an upload being recorded right now")
    two_hours_ago = time.time() - 7200
    for orphan in (orphan_output, orphan_upload):
        os.utime(orphan, (two_hours_ago, two_hours_ago))
    server = start_service(data_dir, INGEST_RETENTION_HOURS="0.0005", INGEST_SWEEP_INTERVAL_S="0.2")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.post("/jobs", content=b"a\n1\n", headers={"Content-Type": "text/csv"})
        job_id = response.json()["id"]
        wait_until(lambda: client.get(f"/jobs/{job_id}").status_code == 404, timeout=30)
        assert not job_paths(data_dir, job_id).root.exists()
        assert not job_paths(data_dir, job_id).upload.exists()
        assert client.get("/jobs").json()["items"] == []
    assert not orphan_output.exists()
    assert not orphan_upload.exists()
    assert fresh_upload.exists()


def test_logs_are_json_lines_with_job_ids(data_dir: Path, start_service: StartService) -> None:
    server = start_service(data_dir, INGEST_LOG_LEVEL="INFO")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.post("/jobs", content=b"a\n1\n", headers={"Content-Type": "text/csv"})
        job_id = response.json()["id"]
        request_id = response.headers["x-request-id"]
        wait_until(lambda: client.get(f"/jobs/{job_id}").json()["done"])
    server.terminate()
    lines = [orjson.loads(line) for line in server.log.read_text().splitlines() if line.strip()]
    assert all({"time", "level", "message"} <= set(line) for line in lines)
    messages = {line["message"] for line in lines if line.get("job_id") == job_id}
    assert {"job started", "job succeeded"} <= messages
    requests = [line for line in lines if line.get("request_id") == request_id]
    assert any(line["message"] == "request" and line["status"] == 202 for line in requests)


def pool_workers(server: ServiceProcess, count: int) -> list[psutil.Process]:
    """The API's worker processes (the children that lowered their priority), once `count`."""
    found: list[psutil.Process] = []

    def started() -> bool:
        found[:] = [p for p in server.children() if p.nice() > 0]
        return len(found) == count

    wait_until(started, timeout=30)
    return found


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux scheduling policies")
@pytest.mark.parametrize(("priority", "policy"), [("idle", "SCHED_IDLE"), ("low", "SCHED_OTHER")])
def test_workers_parse_below_the_api_at_the_priority_asked_for(
    tmp_path: Path, start_service: StartService, priority: str, policy: str
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    server = start_service(data_dir, INGEST_WORKER_PRIORITY=priority)
    assert os.sched_getscheduler(server.pid) == os.SCHED_OTHER
    assert psutil.Process(server.pid).nice() == 0
    for process in pool_workers(server, count=2):
        assert os.sched_getscheduler(process.pid) == getattr(os, policy), process.cmdline()
        assert process.nice() == 10
    with httpx.Client(base_url=server.url, timeout=30) as client:
        job_id = post_small(client)
        wait_until(lambda: status_of(client, job_id) == "succeeded", timeout=30)


def _quiet(process: psutil.Process) -> bool:
    before = process.cpu_times()
    time.sleep(0.3)
    after = process.cpu_times()
    used: float = (after.user + after.system) - (before.user + before.system)
    return used < 0.01


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/<pid>/maps")
def test_workers_and_the_spare_converter_leave_pandas_out(
    start_service: StartService, tmp_path: Path
) -> None:
    # pandas is installed in this environment, as in a shared one: pyarrow would import it.
    pytest.importorskip("pandas")
    server = start_service(tmp_path / "data")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.post(
            "/jobs?filename=t.csv", content=b"a,b\n1,x\n", headers={"Content-Type": "text/csv"}
        )
        job_id = response.json()["id"]
        wait_until(lambda: client.get(f"/jobs/{job_id}").json()["done"])
        assert client.get(f"/jobs/{job_id}/result?format=parquet").status_code == 200
    children = server.children()
    workers = [p for p in children if p.nice() > 0]
    spares = [p for p in children if "--spare" in " ".join(p.cmdline())]
    assert workers and spares, children
    # The spare after the one that served the download: warm once Arrow's Parquet is mapped
    # and its warm-up conversion is over.
    wait_until(lambda: all(maps_library(p, "pyarrow") and _quiet(p) for p in spares), timeout=60)
    for process in workers + spares:
        assert maps_library(process, "pyarrow"), process.cmdline()  # it did load Arrow
        assert not maps_library(process, "pandas"), process.cmdline()


def test_workers_are_connected_to_the_database_before_the_first_job(
    start_service: StartService, tmp_path: Path
) -> None:
    server = start_service(tmp_path / "data")
    database = str((tmp_path / "data" / "ingest.db").resolve())

    def workers_with_the_database_open() -> int:
        connected = 0
        for child in server.children():
            try:
                if any(f.path == database for f in child.open_files()):
                    connected += 1
            except psutil.NoSuchProcess:
                pass
        return connected

    # INGEST_MAX_CONCURRENT_JOBS is 2: both workers, while no job was ever submitted.
    wait_until(lambda: workers_with_the_database_open() == 2, timeout=30)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/jobs").json()["items"] == []
