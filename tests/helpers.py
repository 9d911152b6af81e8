"""Helpers shared by the end-to-end tests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson

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


def ndjson(body: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in body.splitlines() if line.strip()]


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["title"] and problem["detail"]
    return problem
