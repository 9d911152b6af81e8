"""The spare converter of a real server (`python -m service`): started with the app, warm
before the request, used for the next conversion and replaced; its output is the same bytes
as a fresh `python -m service.formats`; a spare killed before the request costs nothing but
its speed; a server that stops leaves no converter behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import psutil
import pytest

from tests.apps import ROOT
from tests.helpers import job_done, wait_until
from tests.server import ServiceProcess, StartedProcesses, StartService, log_records

pytestmark = pytest.mark.slow

ORDERS = b"".join(
    [b"order_id,customer,amount,paid,ordered_on,sent_at\n"]
    + [
        f'{n},"c{n % 7}, Ltd",{n * 1.25:.2f},{n % 2 == 0},2026-11-{1 + n % 28:02},'
        f"2026-11-01T10:{n % 60:02}:00Z\n".encode()
        for n in range(5000)
    ]
)
CONVERTED = ("json", "csv", "parquet", "arrow")


def _spares(server: ServiceProcess) -> list[psutil.Process]:
    return [p for p in server.children() if "--spare" in _cmdline(p)]


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        line: list[str] = process.cmdline()
    except psutil.NoSuchProcess:
        return []
    return line


def _ready_spare(server: ServiceProcess) -> int:
    """The pid of the server's spare once it has said it is ready (a DEBUG log line)."""
    found: list[int] = []

    def ready() -> bool:
        alive = {p.pid for p in _spares(server)}
        said = {
            r.get("pid") for r in log_records(server.log) if r["message"] == "spare converter ready"
        }
        found[:] = sorted(pid for pid in alive if pid in said)
        return len(found) == 1

    wait_until(ready)
    return found[0]


def _converted(server: ServiceProcess, job_id: str, fmt: str) -> dict[str, object]:
    records = [
        r
        for r in log_records(server.log)
        if r["message"] == "result converted" and r.get("job_id") == job_id and r["format"] == fmt
    ]
    assert len(records) == 1, records
    return records[0]


def _job(client: httpx.Client) -> tuple[str, dict[str, object]]:
    response = client.post("/jobs", files={"file": ("orders.csv", ORDERS, "text/csv")})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    wait_until(lambda: job_done(client, job_id))
    job: dict[str, object] = client.get(f"/jobs/{job_id}").json()
    assert job["status"] == "succeeded", job
    return job_id, job


def _fresh(server: ServiceProcess, job: dict[str, object], fmt: str, target: Path) -> bytes:
    """What a fresh `python -m service.formats` makes of the job's result."""
    result = server.data_dir / "jobs" / str(job["id"]) / "result.ndjson"
    columns = job["result"]["columns"]  # type: ignore[index]
    subprocess.run(
        [sys.executable, "-m", "service.formats", fmt, str(result), str(target)],
        input=orjson.dumps(columns),
        cwd=ROOT,
        check=True,
        timeout=60,
    )
    return target.read_bytes()


def test_each_conversion_runs_in_the_spare_started_before_it(
    tmp_path: Path, start_service: StartService
) -> None:
    server = start_service(tmp_path / "data", INGEST_LOG_LEVEL="DEBUG")
    api = psutil.Process(server.pid)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        job_id, job = _job(client)
        for fmt in CONVERTED:
            spare = _ready_spare(server)
            # The same priority as the API (a fresh converter inherits it too).
            assert psutil.Process(spare).nice() == api.nice()
            response = client.get(f"/jobs/{job_id}/result", params={"format": fmt})
            assert response.status_code == 200, response.text
            record = _converted(server, job_id, fmt)
            assert record["spare"] is True and record["pid"] == spare, record
            assert response.content == _fresh(server, job, fmt, tmp_path / f"fresh.{fmt}"), fmt
        wait_until(lambda: len(_spares(server)) == 1)  # the next one, for the next conversion


def test_a_spare_killed_before_the_request_leaves_it_to_a_fresh_converter(
    tmp_path: Path, start_service: StartService
) -> None:
    server = start_service(tmp_path / "data", INGEST_LOG_LEVEL="DEBUG")
    with httpx.Client(base_url=server.url, timeout=60) as client:
        job_id, job = _job(client)
        spare = psutil.Process(_ready_spare(server))
        spare.kill()
        spare.wait(timeout=10)
        response = client.get(f"/jobs/{job_id}/result", params={"format": "parquet"})
        assert response.status_code == 200, response.text
        assert _converted(server, job_id, "parquet")["spare"] is False
        assert response.content == _fresh(server, job, "parquet", tmp_path / "fresh.parquet")
        # A spare again for the next conversion.
        next_spare = _ready_spare(server)
        assert next_spare != spare.pid
        response = client.get(f"/jobs/{job_id}/result", params={"format": "csv"})
        assert response.status_code == 200, response.text
        assert _converted(server, job_id, "csv")["pid"] == next_spare


@pytest.mark.parametrize(
    "stop", ["SIGTERM to the server", "Ctrl-C to its process group", "kill -9 of the server"]
)
def test_a_stopped_server_leaves_no_converter_behind(
    tmp_path: Path, processes: StartedProcesses, stop: str
) -> None:
    server = processes.service_in_own_group(tmp_path / "data", INGEST_LOG_LEVEL="DEBUG")
    spare = psutil.Process(_ready_spare(server))
    assert server.process is not None
    if stop.startswith("SIGTERM"):
        server.terminate()
    elif stop.startswith("kill"):
        # The server alone: its spare sees its stdin end and exits by itself.
        server.process.kill()
        server.process.wait(timeout=30)
        wait_until(lambda: not _alive(spare))
        return
    else:
        os.killpg(server.pid, signal.SIGINT)
        server.process.wait(timeout=30)
    assert any(r["message"] == "service stopped" for r in log_records(server.log))
    assert not spare.is_running()


def _alive(process: psutil.Process) -> bool:
    """Running, and not a zombie that nobody reaped (an orphan waits for init to)."""
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def test_a_spare_ignores_ctrl_c_and_ends_when_its_stdin_closes_empty() -> None:
    """Ctrl-C in a terminal reaches every process of the group; the API stops its spare
    itself, by closing its stdin, so the spare neither dies first nor prints a traceback."""
    with subprocess.Popen(
        [sys.executable, "-m", "service.formats", "--spare"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as spare:
        assert spare.stdout is not None and spare.stdin is not None
        try:
            assert spare.stdout.readline() == b"ready\n"
            spare.send_signal(signal.SIGINT)
            out, err = spare.communicate(timeout=30)  # closes stdin
            assert (spare.returncode, out, err) == (0, b"", b"")
        finally:
            spare.kill()
