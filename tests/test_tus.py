"""Resumable uploads (tus 1.0.0) over HTTP, in process: the protocol's rules, its edge cases
and hostile headers, limits, tenants, expiry, and the job a whole upload becomes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from pathlib import Path

import httpx
import pytest

from service.config import Settings
from service.runner import sweeper
from service.upload.tus import TUS_VERSION
from tests.apps import app_client, settings_with
from tests.helpers import assert_problem, wait_for_job

CSV = b"id,name,amount\n" + b"".join(b"%d,name-%d,%d.5\n" % (n, n, n) for n in range(2000))
TUS = {"Tus-Resumable": TUS_VERSION}
OCTETS = {**TUS, "Content-Type": "application/offset+octet-stream"}


def metadata(**values: str) -> str:
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in values.items())


async def create(
    client: httpx.AsyncClient, length: int | None = len(CSV), headers: dict[str, str] | None = None
) -> str:
    sent = {**TUS, **(headers or {})}
    if length is not None:
        sent["Upload-Length"] = str(length)
    response = await client.post("/uploads", headers=sent)
    assert response.status_code == 201, response.text
    assert response.headers["tus-resumable"] == TUS_VERSION
    location: str = response.headers["location"]
    assert location.startswith("/uploads/")
    return location


async def patch(
    client: httpx.AsyncClient,
    location: str,
    offset: int,
    body: bytes,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    sent = {**OCTETS, "Upload-Offset": str(offset), **(headers or {})}
    return await client.patch(location, content=body, headers=sent)


async def head(
    client: httpx.AsyncClient, location: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.head(location, headers={**TUS, **(headers or {})})


def job_of(response: httpx.Response) -> str:
    link = response.headers["link"]
    assert link.endswith('>; rel="job"'), link
    return link.removeprefix("</jobs/").removesuffix('>; rel="job"')


def checksum(algorithm: str, body: bytes) -> str:
    return f"{algorithm} {base64.b64encode(hashlib.new(algorithm, body).digest()).decode()}"


async def test_options_announce_version_extensions_limit_and_algorithms(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    response = await client.options("/uploads")
    assert response.status_code == 204
    assert response.headers["tus-version"] == "1.0.0"
    assert response.headers["tus-resumable"] == "1.0.0"
    extensions = response.headers["tus-extension"].split(",")
    for extension in ("creation", "creation-with-upload", "termination", "checksum", "expiration"):
        assert extension in extensions
    assert response.headers["tus-max-size"] == str(settings.max_upload_bytes)
    assert set(response.headers["tus-checksum-algorithm"].split(",")) >= {"sha1", "sha256"}


async def test_chunks_become_a_job_like_post_jobs_makes(client: httpx.AsyncClient) -> None:
    location = await create(
        client,
        headers={
            "Upload-Metadata": metadata(
                filename="orders.csv", filetype="text/csv", header="true", max_errors="7"
            )
        },
    )
    first = await head(client, location)
    assert first.status_code == 200
    assert first.headers["upload-offset"] == "0"
    assert first.headers["upload-length"] == str(len(CSV))
    assert first.headers["cache-control"] == "no-store"
    assert "upload-expires" in first.headers
    assert "link" not in first.headers

    cuts = [0, 1, 10_000, 10_001, len(CSV)]
    for start, end in zip(cuts, cuts[1:], strict=False):
        answer = await patch(client, location, start, CSV[start:end])
        assert answer.status_code == 204, answer.text
        assert answer.headers["upload-offset"] == str(end)
        assert answer.headers["tus-resumable"] == TUS_VERSION
    job_id = job_of(answer)
    again = await head(client, location)
    assert again.headers["upload-offset"] == str(len(CSV))
    assert job_of(again) == job_id
    assert "upload-expires" not in again.headers

    job = await wait_for_job(client, job_id)
    assert job["status"] == "succeeded", job
    assert job["file"] == {
        "name": "orders.csv",
        "size": len(CSV),
        "sha256": hashlib.sha256(CSV).hexdigest(),
        "media_type": "text/csv",
    }
    assert job["options"]["max_errors"] == 7
    assert job["result"]["rows"] == 2000
    result = await client.get(f"/jobs/{job_id}/result")
    assert result.text.splitlines()[1] == '{"id":1,"name":"name-1","amount":1.5}'
