"""Against a real uvicorn process: streamed uploads, limits, disconnects and a kill -9."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import pytest

from tests.helpers import ndjson
from tests.server import ServiceProcess

pytestmark = pytest.mark.slow

MiB = 1024 * 1024


BLOCK_ROWS = 10_000


def csv_line(n: int) -> bytes:
    """Row `n` (0-based, after the header) of every file `write_csv` makes."""
    i = n % BLOCK_ROWS
    flag = b"true" if i % 2 else b"false"
    return b"%d,name-%d,%d.%02d,%s,2024-01-%02d\n" % (
        n,
        n % 977,
        i % 1000,
        i % 100,
        flag,
        1 + i % 28,
    )


def write_csv(path: Path, target_bytes: int) -> int:
    """A CSV of about `target_bytes` with typed columns; returns its row count."""
    header = b"id,name,amount,flag,day\n"
    rows = 0
    with open(path, "wb") as out:
        out.write(header)
        size = len(header)
        while size < target_bytes:
            block = b"".join([csv_line(rows + i) for i in range(BLOCK_ROWS)])
            out.write(block)
            size += len(block)
            rows += BLOCK_ROWS
    return rows


def csv_record(n: int) -> dict[str, Any]:
    """The result record row `n` of a `write_csv` file must become, typed per its column."""
    id_, name, amount, flag, day = csv_line(n).decode().rstrip("\n").split(",")
    return {
        "id": int(id_),
        "name": name,
        "amount": float(amount),
        "flag": flag == "true",
        "day": day,
    }


def assert_succeeded_with_csv(client: httpx.Client, job_id: str, rows: int) -> None:
    """The job succeeded and its result is exactly the `rows` rows `write_csv` wrote."""
    job = client.get(f"/jobs/{job_id}").json()
    assert job["status"] == "succeeded", job
    assert job["result"]["rows"] == rows
    with client.stream("GET", f"/jobs/{job_id}/result") as result:
        assert result.status_code == 200
        assert_result_matches_csv(result.iter_bytes(4 * MiB), rows)


def assert_result_matches_csv(chunks: Iterable[bytes], rows: int) -> None:
    """The NDJSON result of a `write_csv` file, streamed: ids 0..rows-1 in order, and the
    first, a middle and the last record equal to what `write_csv` wrote."""
    spot_checks = {0, rows // 2, rows - 1}
    done = 0
    tail = b""
    for chunk in chunks:
        lines = (tail + chunk).split(b"\n")
        tail = lines.pop()
        records = [orjson.loads(line) for line in lines]
        ids = [record["id"] for record in records]
        if ids != list(range(done, done + len(ids))):
            wrong = next(n for n, got in enumerate(ids, done) if got != n)
            raise AssertionError(f"record {wrong} has id {ids[wrong - done]}")
        for n in spot_checks:
            if done <= n < done + len(records):
                assert records[n - done] == csv_record(n), f"record {n}"
        done += len(records)
    assert tail == b"", "the result does not end with a newline"
    assert done == rows, f"{done} records, expected {rows}"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServiceProcess]:
    data = tmp_path / "data"
    data.mkdir()
    service = ServiceProcess(data).start()
    yield service
    service.stop()


def wait_until(check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


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


def test_chunked_upload_over_the_limit_is_413_and_leaves_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    service = ServiceProcess(data, INGEST_MAX_UPLOAD_BYTES=str(MiB)).start()
    try:

        def body() -> Iterator[bytes]:
            for _ in range(8):
                yield b"x" * (512 * 1024)

        with httpx.Client(base_url=service.url, timeout=30) as client:
            response = client.post("/jobs", content=body(), headers={"Content-Type": "text/csv"})
            assert response.status_code == 413
            assert response.headers["content-type"].startswith("application/problem+json")
            assert client.get("/jobs").json()["items"] == []
        assert list((data / "incoming").iterdir()) == []
    finally:
        service.stop()


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


def test_kill_9_while_running_and_queued_then_restart_finishes_every_job(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    big = tmp_path / "big.csv"
    rows = write_csv(big, 60 * MiB)
    env = {"INGEST_MAX_CONCURRENT_JOBS": "1"}
    service = ServiceProcess(data, **env).start()
    try:
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

        service = ServiceProcess(data, **env).start()
        with httpx.Client(base_url=service.url, timeout=60) as client:
            for job_id in (running_id, queued_id):
                wait_until(lambda job_id=job_id: client.get(f"/jobs/{job_id}").json()["done"], 120)
            assert_succeeded_with_csv(client, running_id, rows)
            small = client.get(f"/jobs/{queued_id}/result").content
            assert ndjson(small) == [{"a": 1}, {"a": 2}]
    finally:
        service.stop()
