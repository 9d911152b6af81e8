"""What the benchmarks do with the service: upload, wait for a job, remove it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import httpx

from tests.bench.wire import Connection, Response, multipart

Mode = Literal["multipart", "raw"]


class JobError(RuntimeError):
    """A job was refused, failed, or did not finish in time."""


@dataclass(frozen=True)
class Upload:
    response: Response
    seconds: float
    answered_at: float  # time.perf_counter() when the response had arrived


def upload(port: int, mode: Mode, path: Path, media_type: str, target: str = "/jobs") -> Upload:
    """POST the file from disk, as multipart or as a raw body, timed until the response."""
    if mode == "multipart":
        content_type, body = multipart(path, media_type)
    else:
        content_type, body = media_type, [path]
        separator = "&" if "?" in target else "?"
        target = f"{target}{separator}filename={quote(path.name)}"
    with Connection(port) as conn:
        start = time.perf_counter()
        response = conn.request("POST", target, {"Content-Type": content_type}, body)
        answered_at = time.perf_counter()
    return Upload(response, answered_at - start, answered_at)


class Service:
    """Control-plane calls to the service under test."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60.0)

    def close(self) -> None:
        self.http.close()

    def submit(self, path: Path, media_type: str, mode: Mode = "raw") -> tuple[str, Upload]:
        """Upload a file; the job id and the timed upload. Raises unless the answer is 202."""
        sent = upload(self.port, mode, path, media_type)
        if sent.response.status != 202:
            detail = sent.response.body[:300].decode(errors="replace")
            raise JobError(f"upload answered {sent.response.status}: {detail}")
        return str(sent.response.json()["id"]), sent

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.http.get(f"/jobs/{job_id}")
        response.raise_for_status()
        job: dict[str, Any] = response.json()
        return job

    def wait_done(self, job_id: str, timeout: float) -> tuple[dict[str, Any], float]:
        """Poll until the job is done; the job and the perf_counter time it was seen done.

        The interval grows with the wait (2% of it, 10 to 200 ms): the timing error stays
        near 2% while the polls themselves take little from the job being timed.
        """
        start = time.perf_counter()
        while True:
            job = self.job(job_id)
            now = time.perf_counter()
            if job.get("done"):
                return job, now
            if now - start > timeout:
                raise JobError(f"job not done after {timeout:.0f} s: {_progress(job)}")
            time.sleep(min(0.2, max(0.01, (now - start) * 0.02)))

    def remove(self, job_id: str) -> None:
        """Delete the job and its files (cancelling it if it runs); errors are ignored."""
        try:
            response = self.http.delete(f"/jobs/{job_id}")
            if response.status_code >= 400 and response.status_code != 404:
                self.http.post(f"/jobs/{job_id}/cancel")
        except httpx.HTTPError:
            pass


def _progress(job: dict[str, Any]) -> str:
    progress = job.get("progress") or {}
    return f"status={job.get('status')} progress={progress.get('percent')}%"


def require_succeeded(job: dict[str, Any]) -> dict[str, Any]:
    """The job's result, or JobError with the job's error."""
    if job.get("status") != "succeeded":
        raise JobError(f"job {job.get('status')}: {job.get('error')}")
    result: dict[str, Any] = job.get("result") or {}
    return result
