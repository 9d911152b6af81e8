"""HTTP helpers for the end-to-end tests: polling a job to its end, uploading, reading NDJSON
bodies and problem details. The async ones talk to an app in this process, the others to a
real server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil

FINISHED = {"succeeded", "failed", "cancelled"}


async def wait_for_job(
    client: httpx.AsyncClient, job_id: str, *, timeout: float = 30.0, until: set[str] = FINISHED
) -> dict[str, Any]:
    """Poll a job until its status is in `until`; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        response = await client.get(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if job["status"] in until:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['status']} after {timeout}s")
        await asyncio.sleep(0.02)


def wait_until(check: Callable[[], object], timeout: float = 30.0) -> None:
    """Poll `check` until it returns something true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def job_done(client: httpx.Client, job_id: str) -> bool:
    """Whether the job has come to its end (succeeded, failed or cancelled)."""
    return bool(client.get(f"/jobs/{job_id}").json()["done"])


def upload(client: httpx.Client, path: Path) -> str:
    """Upload a CSV file as multipart; the id of the accepted job."""
    with open(path, "rb") as handle:
        response = client.post("/jobs", files={"file": (path.name, handle, "text/csv")})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def wait_running(client: httpx.Client, job_id: str) -> dict[str, Any]:
    """The job as first seen running (a 150 MB job then has well over a second to go)."""
    seen: dict[str, Any] = {}

    def running() -> bool:
        seen.update(client.get(f"/jobs/{job_id}").json())
        return bool(seen["status"] == "running")

    wait_until(running)
    return seen


def ndjson(body: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in body.splitlines() if line.strip()]


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["title"] and problem["detail"]
    return problem


def maps_library(process: psutil.Process, library: str) -> bool:
    """Whether `library`'s files are mapped into the process (imported, for a package with
    compiled modules)."""
    try:
        return f"/{library}/" in Path(f"/proc/{process.pid}/maps").read_text()
    except OSError:
        return False
