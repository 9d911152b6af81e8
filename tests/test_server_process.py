"""Against a real uvicorn process: streamed uploads, limits, disconnects and a kill -9."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import httpx
import psutil
import pytest

from tests.helpers import job_done, ndjson, wait_until
from tests.samples import MiB, assert_succeeded_with_csv, write_csv
from tests.server import ServiceProcess, StartService

pytestmark = pytest.mark.slow


@pytest.fixture
def server(data_dir: Path, start_service: StartService) -> ServiceProcess:
    return start_service(data_dir)


def test_large_streamed_upload_keeps_server_memory_flat(
    server: ServiceProcess, tmp_path: Path
) -> None:
    big = tmp_path / "big.csv"
    write_csv(big, 120 * MiB)
    size = big.stat().st_size
    process = psutil.Process(server.pid)
    baseline = process.memory_info().rss
    peak = baseline
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal peak, sent
        with open(big, "rb") as handle:
            while chunk := handle.read(MiB):
                sent += len(chunk)
                if sent % (8 * MiB) == 0:
                    peak = max(peak, process.memory_info().rss)
                yield chunk

    with httpx.Client(base_url=server.url, timeout=120) as client:
        response = client.post(
            "/jobs?filename=big.csv", content=body(), headers={"Content-Type": "text/csv"}
        )
        assert response.status_code == 202, response.text
        assert response.json()["file"]["size"] == size
        peak = max(peak, process.memory_info().rss)
        with open(big, "rb") as handle:
            files = {"file": ("big.csv", handle, "text/csv")}
            multipart = client.post("/jobs", files=files)
        assert multipart.status_code == 202, multipart.text
        assert multipart.json()["file"]["sha256"] == response.json()["file"]["sha256"]
        peak = max(peak, process.memory_info().rss)
    assert peak - baseline < 48 * MiB, f"server grew by {(peak - baseline) / MiB:.0f} MiB"


def test_chunked_upload_over_the_limit_is_413_and_leaves_nothing(
    data_dir: Path, start_service: StartService
) -> None:
    service = start_service(data_dir, INGEST_MAX_UPLOAD_BYTES=str(MiB))

    def body() -> Iterator[bytes]:
        for _ in range(8):
            yield b"x" * (512 * 1024)

    with httpx.Client(base_url=service.url, timeout=30) as client:
        response = client.post("/jobs", content=body(), headers={"Content-Type": "text/csv"})
        assert response.status_code == 413
        assert response.headers["content-type"].startswith("application/problem+json")
        assert client.get("/jobs").json()["items"] == []
    assert list((data_dir / "incoming").iterdir()) == []


def test_client_disconnect_mid_upload_leaves_no_file_and_no_job(server: ServiceProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            b"POST /jobs?filename=cut.csv HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
            b"Content-Length: 50000000\r\n\r\n"
        )
        for _ in range(4):
            sock.sendall(b"a,b\n" * 65536)
        incoming = server.data_dir / "incoming"
        wait_until(lambda: incoming.exists() and any(incoming.iterdir()))
    wait_until(lambda: not any(incoming.iterdir()))
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/jobs").json()["items"] == []
    assert not any((server.data_dir / "uploads").iterdir())


def test_kill_9_while_running_and_queued_then_restart_finishes_every_job(
    data_dir: Path, tmp_path: Path, start_service: StartService
) -> None:
    big = tmp_path / "big.csv"
    rows = write_csv(big, 60 * MiB)
    env = {"INGEST_MAX_CONCURRENT_JOBS": "1"}
    service = start_service(data_dir, **env)
    with httpx.Client(base_url=service.url, timeout=60) as client:
        with open(big, "rb") as handle:
            running = client.post("/jobs", files={"file": ("big.csv", handle, "text/csv")})
        queued = client.post(
            "/jobs?filename=small.csv",
            content=b"a\n1\n2\n",
            headers={"Content-Type": "text/csv"},
        )
        running_id, queued_id = running.json()["id"], queued.json()["id"]
        wait_until(lambda: client.get(f"/jobs/{running_id}").json()["status"] == "running")
        assert client.get(f"/jobs/{queued_id}").json()["status"] == "queued"
    service.kill()

    service = start_service(data_dir, **env)
    with httpx.Client(base_url=service.url, timeout=60) as client:
        for job_id in (running_id, queued_id):
            wait_until(partial(job_done, client, job_id), 120)
        assert_succeeded_with_csv(client, running_id, rows)
        small = client.get(f"/jobs/{queued_id}/result").content
        assert ndjson(small) == [{"a": 1}, {"a": 2}]
