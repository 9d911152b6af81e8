"""The worst of the hostile corpus against a real server (`python -m service`): each job gets
its outcome, the job resource stays a few KB whatever the file holds, and the memory of the
server and its workers stays bounded."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.server import ServiceProcess, StartedProcesses

pytestmark = pytest.mark.slow

MiB = 1024 * 1024
JOB_BYTES = 4096  # the most a job resource may take, whatever its file held
TREE_GROWTH = 256 * MiB  # the most the server and its workers may grow while parsing


class TreeRss:
    """Samples the resident memory of a process and all its descendants, in a thread."""

    def __init__(self, pid: int) -> None:
        self._root = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now(self) -> int:
        total = 0
        for process in [self._root, *self._root.children(recursive=True)]:
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.now())

    def __enter__(self) -> TreeRss:
        self.peak = self.now()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    data = tmp_path_factory.mktemp("hostile") / "data"
    data.mkdir()
    with StartedProcesses() as started:
        service = started.service(data)
        with httpx.Client(base_url=service.url, timeout=60) as client:
            # Warm up: the worker processes exist, with their libraries loaded.
            for _ in range(2):
                _finished(client, _upload(client, b"a,b\n1,2\n", "warm.csv", "text/csv"))
        yield service


def _upload(client: httpx.Client, body: bytes | Path, name: str, media_type: str) -> str:
    if isinstance(body, Path):
        with body.open("rb") as handle:
            response = client.post(
                f"/jobs?filename={name}", content=handle, headers={"Content-Type": media_type}
            )
    else:
        response = client.post(
            f"/jobs?filename={name}", content=body, headers={"Content-Type": media_type}
        )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _finished(client: httpx.Client, job_id: str, timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/jobs/{job_id}", params={"wait": 5})
        assert response.status_code == 200, response.text
        assert len(response.content) < JOB_BYTES, f"job resource of {len(response.content)} B"
        job: dict[str, Any] = response.json()
        if job["done"]:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']}"


def _errors(client: httpx.Client, job_id: str) -> list[tuple[int, str]]:
    response = client.get(f"/jobs/{job_id}/errors")
    assert response.status_code == 200, response.text
    return [(item["line"], item["type"]) for item in response.json()["items"]]


def _write(path: Path, head: bytes, unit: bytes, size: int, tail: bytes = b"") -> Path:
    """`head`, then `unit` repeated up to about `size` bytes, then `tail`, written in blocks."""
    block = unit * max(MiB // len(unit), 1)
    with path.open("wb") as out:
        out.write(head)
        written = len(head)
        while written < size:
            out.write(block)
            written += len(block)
        out.write(tail)
    return path


def test_the_worst_files_get_their_outcome_in_bounded_memory(
    server: ServiceProcess, tmp_path: Path
) -> None:
    deep = b"[" * 20_000 + b"]" * 20_000
    no_newline = _write(tmp_path / "line.csv", b"", b"abc,", 50 * MiB)
    open_quote = _write(tmp_path / "quote.csv", b'a,b\n1,"x\n', b"2,y\n", 20 * MiB)
    wide = b",".join(b"c%d" % i for i in range(200_000)) + b"\n" + b"1," * 199_999 + b"1\n"
    uploads: list[tuple[bytes | Path, str, str]] = [
        (b'{"ok": 1}\n{"a": ' + deep + b'}\n{"ok": 2}\n', "deep.jsonl", "application/x-ndjson"),
        (b'[{"ok": 1},\n{"a": ' + deep + b'},\n{"ok": 2}]', "deep.json", "application/json"),
        (no_newline, "line.csv", "text/csv"),
        (open_quote, "quote.csv", "text/csv"),
        (wide, "wide.csv", "text/csv"),
    ]
    with httpx.Client(base_url=server.url, timeout=120) as client:
        with TreeRss(server.pid) as rss:
            baseline = rss.peak
            jobs = [_upload(client, body, name, media) for body, name, media in uploads]
            deep_lines, deep_array, line, quote, columns = [_finished(client, j) for j in jobs]
        growth = rss.peak - baseline
        assert growth < TREE_GROWTH, f"the server and its workers grew by {growth / MiB:.0f} MiB"
        listing = client.get("/jobs", params={"limit": 10})
        assert listing.status_code == 200
        assert len(listing.content) < len(jobs) * JOB_BYTES

        for job in (deep_lines, deep_array):
            assert job["status"] == "succeeded", job
            assert job["result"]["rows"] == 2
            assert job["result"]["rows_failed"] == 1
            assert _errors(client, job["id"]) == [(2, "too_deep")]

        assert line["status"] == "failed"
        assert line["error"]["code"] == "header_too_long"

        assert quote["status"] == "succeeded", quote
        assert quote["result"]["rows_failed"] == 1
        rows = (open_quote.stat().st_size - len(b'a,b\n1,"x\n')) // len(b"2,y\n")
        assert quote["result"]["rows"] == rows
        assert _errors(client, quote["id"]) == [(2, "unterminated_quote")]

        assert columns["status"] == "failed"
        assert columns["error"]["code"] == "too_many_columns"
