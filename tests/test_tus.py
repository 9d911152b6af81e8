"""Resumable uploads (tus 1.0.0) over HTTP, in process: the protocol's rules, its edge cases
and hostile headers, limits, tenants, expiry, and the job a whole upload becomes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from service.config import Settings
from service.db import transaction
from service.models import Job
from service.runner import sweeper
from service.upload.tus import TUS_VERSION
from tests.apps import app_client, settings_with
from tests.helpers import assert_problem, wait_for_job
from tests.rows import add_queued_jobs, queued_job

CSV = b"id,name,amount\n" + b"".join(b"%d,name-%d,%d.5\n" % (n, n, n) for n in range(2000))
TUS = {"Tus-Resumable": TUS_VERSION}
OCTETS = {**TUS, "Content-Type": "application/offset+octet-stream"}


def metadata(**values: str) -> str:
    return ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in values.items()
    )


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


async def test_protocol_refusals_leave_the_upload_as_it_was(client: httpx.AsyncClient) -> None:
    location = await create(client)
    assert (await patch(client, location, 0, CSV[:100])).status_code == 204

    wrong = assert_problem(await patch(client, location, 0, CSV[:100]), 409)
    assert "100" in wrong["detail"]
    assert_problem(await patch(client, location, 101, CSV[101:200]), 409)
    text = await client.patch(
        location, content=CSV[100:200], headers={**TUS, "Upload-Offset": "100"}
    )
    assert_problem(text, 415)
    for version in ({"Tus-Resumable": "0.2.2"}, {}):
        old = await client.patch(
            location,
            content=CSV[100:200],
            headers={**version, "Content-Type": OCTETS["Content-Type"], "Upload-Offset": "100"},
        )
        assert_problem(old, 412)
        assert old.headers["tus-version"] == TUS_VERSION
        assert old.headers["tus-resumable"] == TUS_VERSION
    for missing in ("/uploads/" + "0" * 8 + "-0000-4000-8000-" + "0" * 12, "/uploads/not..an-id"):
        assert (await head(client, missing)).status_code == 404
        assert_problem(await patch(client, missing, 0, b"x"), 404)
    assert (await head(client, location)).headers["upload-offset"] == "100"


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "md5"])
async def test_a_chunk_that_fails_its_checksum_is_not_kept(
    client: httpx.AsyncClient, algorithm: str
) -> None:
    location = await create(client)
    good = await patch(
        client, location, 0, CSV[:5000], {"Upload-Checksum": checksum(algorithm, CSV[:5000])}
    )
    assert good.status_code == 204, good.text
    bad = await patch(
        client, location, 5000, CSV[5000:], {"Upload-Checksum": checksum(algorithm, b"other")}
    )
    assert_problem(bad, 460)
    assert bad.headers["upload-offset"] == "5000"
    assert (await head(client, location)).headers["upload-offset"] == "5000"
    rest = await patch(
        client, location, 5000, CSV[5000:], {"Upload-Checksum": checksum(algorithm, CSV[5000:])}
    )
    assert rest.status_code == 204
    job = await wait_for_job(client, job_of(rest))
    assert job["file"]["sha256"] == hashlib.sha256(CSV).hexdigest()
    assert job["result"]["rows"] == 2000


async def test_checksum_headers_that_cannot_be_checked_are_400(client: httpx.AsyncClient) -> None:
    location = await create(client)
    for value in ("crc32 AAAAAA==", "sha1 not*base64", "sha1 AAAA", "sha1", "SHA1 AAAA"):
        response = await patch(client, location, 0, CSV[:10], {"Upload-Checksum": value})
        assert_problem(response, 400)
    assert (await head(client, location)).headers["upload-offset"] == "0"


async def test_a_deferred_length_is_given_by_a_later_patch(client: httpx.AsyncClient) -> None:
    location = await create(client, None, {"Upload-Defer-Length": "1"})
    first = await head(client, location)
    assert first.headers["upload-defer-length"] == "1"
    assert "upload-length" not in first.headers
    assert (await patch(client, location, 0, CSV[:3000])).status_code == 204
    assert "link" not in (await head(client, location)).headers
    assert_problem(
        await patch(client, location, 3000, b"", {"Upload-Length": "2999"}), 400
    )  # less than stored
    done = await patch(client, location, 3000, CSV[3000:], {"Upload-Length": str(len(CSV))})
    assert done.status_code == 204
    assert (await head(client, location)).headers["upload-length"] == str(len(CSV))
    job = await wait_for_job(client, job_of(done))
    assert job["status"] == "succeeded"
    assert job["file"]["size"] == len(CSV)


async def test_creation_with_upload_and_an_empty_upload(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/uploads",
        content=CSV[:1000],
        headers={**OCTETS, "Upload-Length": str(len(CSV))},
    )
    assert response.status_code == 201
    assert response.headers["upload-offset"] == "1000"
    assert (await head(client, response.headers["location"])).headers["upload-offset"] == "1000"

    whole = await client.post(
        "/uploads", content=CSV, headers={**OCTETS, "Upload-Length": str(len(CSV))}
    )
    assert whole.status_code == 201
    assert (await wait_for_job(client, job_of(whole)))["status"] == "succeeded"

    empty = await client.post("/uploads", headers={**TUS, "Upload-Length": "0"})
    assert empty.status_code == 201
    job = await wait_for_job(client, job_of(empty))
    assert job["error"]["code"] == "empty_file"


async def test_termination_removes_the_upload_and_its_bytes(
    client: httpx.AsyncClient, data_dir: Path
) -> None:
    location = await create(client)
    assert (await patch(client, location, 0, CSV[:100])).status_code == 204
    assert list((data_dir / "resumable").iterdir())
    deleted = await client.delete(location, headers=TUS)
    assert deleted.status_code == 204
    assert deleted.headers["tus-resumable"] == TUS_VERSION
    assert (await head(client, location)).status_code == 404
    assert_problem(await patch(client, location, 100, CSV[100:]), 404)
    assert_problem(await client.delete(location, headers=TUS), 404)
    assert list((data_dir / "resumable").iterdir()) == []


async def test_another_api_key_cannot_see_or_touch_an_upload(data_dir: Path) -> None:
    async with app_client(settings_with(data_dir, api_keys="alpha,beta")) as client:
        alpha = {"Authorization": "Bearer alpha"}
        beta = {"Authorization": "Bearer beta"}
        location = await create(client, headers=alpha)
        assert (await patch(client, location, 0, CSV[:10], alpha)).status_code == 204
        assert (await head(client, location, beta)).status_code == 404
        assert_problem(await patch(client, location, 10, CSV[10:], beta), 404)
        assert_problem(await client.delete(location, headers={**TUS, **beta}), 404)
        anonymous = await head(client, location)
        assert anonymous.status_code == 401
        assert anonymous.headers["tus-resumable"] == TUS_VERSION
        done = await patch(client, location, 10, CSV[10:], alpha)
        job_id = job_of(done)
        assert_problem(await client.get(f"/jobs/{job_id}", headers=beta), 404)
        owned = await client.get(f"/jobs/{job_id}", headers=alpha)
        assert owned.status_code == 200


@pytest.mark.parametrize(
    ("headers", "where"),
    [
        ({"Upload-Length": "-1"}, "upload-length"),
        ({"Upload-Length": "12abc"}, "upload-length"),
        ({"Upload-Length": "1e3"}, "upload-length"),
        ({"Upload-Length": "+5"}, "upload-length"),
        ({"Upload-Length": "9" * 25}, "upload-length"),
        ({"Upload-Defer-Length": "2"}, "upload-defer-length"),
        ({"Upload-Length": "5", "Upload-Defer-Length": "1"}, "both"),
        ({}, "neither"),
        ({"Upload-Length": "5", "Upload-Metadata": "filename"}, "empty base64 is fine"),
        ({"Upload-Length": "5", "Upload-Metadata": "filename !!!"}, "base64"),
        ({"Upload-Length": "5", "Upload-Metadata": "a YQ==,a YQ=="}, "twice"),
        ({"Upload-Length": "5", "Upload-Metadata": "a YQ==,,b YQ=="}, "no key"),
        ({"Upload-Length": "5", "Upload-Metadata": metadata(format="xml")}, "format"),
        ({"Upload-Length": "5", "Upload-Metadata": metadata(max_errors="-1")}, "max_errors"),
        ({"Upload-Length": "5", "Upload-Metadata": metadata(filetype="not a type")}, "type"),
        ({"Upload-Length": "5", "Upload-Metadata": "filename /w=="}, "utf-8"),
        ({"Upload-Length": "5", "Upload-Metadata": "a " + "QUFB" * 5000}, "too long"),
    ],
)
async def test_garbage_creation_headers_get_400(
    client: httpx.AsyncClient, headers: dict[str, str], where: str
) -> None:
    response = await client.post("/uploads", headers={**TUS, **headers})
    if where == "empty base64 is fine":
        assert response.status_code == 201
        return
    problem = assert_problem(response, 400)
    assert response.headers["tus-resumable"] == TUS_VERSION
    assert problem["detail"]


@pytest.mark.parametrize("offset", ["abc", "-1", "+1", "1.0", "0x10", "9" * 20, ""])
async def test_garbage_offsets_get_400(client: httpx.AsyncClient, offset: str) -> None:
    location = await create(client)
    response = await client.patch(
        location, content=b"id\n", headers={**OCTETS, "Upload-Offset": offset}
    )
    assert_problem(response, 400)
    missing = await client.patch(location, content=b"id\n", headers=OCTETS)
    assert_problem(missing, 400)


async def test_size_limits_are_those_of_post_jobs(data_dir: Path) -> None:
    async with app_client(settings_with(data_dir, max_upload_bytes=5000)) as client:
        assert_problem(await client.post("/uploads", headers={**TUS, "Upload-Length": "5001"}), 413)
        location = await create(client, 4000)
        assert_problem(await patch(client, location, 0, CSV[:4001]), 413)

        async def chunked(body: bytes) -> AsyncIterator[bytes]:
            for start in range(0, len(body), 1000):
                yield body[start : start + 1000]

        deferred = await create(client, None, {"Upload-Defer-Length": "1"})
        over = await client.patch(
            deferred, content=chunked(CSV[:6000]), headers={**OCTETS, "Upload-Offset": "0"}
        )
        assert_problem(over, 413)
        assert (await head(client, deferred)).headers["upload-offset"] == "0"
        assert_problem(await patch(client, deferred, 0, b"", {"Upload-Length": "5001"}), 413)


async def test_a_silent_client_gets_408_and_what_arrived_is_kept(data_dir: Path) -> None:
    async with app_client(settings_with(data_dir, client_timeout_s=0.3)) as client:
        location = await create(client)

        async def stalls() -> AsyncIterator[bytes]:
            yield CSV[:3000]
            await asyncio.sleep(30)
            yield b"never"

        response = await client.patch(
            location, content=stalls(), headers={**OCTETS, "Upload-Offset": "0"}
        )
        assert_problem(response, 408)
        assert response.headers["connection"] == "close"
        assert response.headers["upload-offset"] == "3000"
        assert (await head(client, location)).headers["upload-offset"] == "3000"


async def test_racing_patches_one_wins_the_other_gets_409(client: httpx.AsyncClient) -> None:
    location = await create(client)
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield CSV[:1000]
        started.set()
        await release.wait()
        yield CSV[1000:2000]

    first = asyncio.create_task(
        client.patch(location, content=slow(), headers={**OCTETS, "Upload-Offset": "0"})
    )
    await asyncio.wait_for(started.wait(), 10)
    second = await patch(client, location, 0, b"X" * 2000)
    assert_problem(second, 409)
    release.set()
    assert (await first).status_code == 204
    rest = await patch(client, location, 2000, CSV[2000:])
    job = await wait_for_job(client, job_of(rest))
    assert job["file"]["sha256"] == hashlib.sha256(CSV).hexdigest()


async def test_the_sweep_removes_expired_uploads_and_those_whose_job_is_gone(
    data_dir: Path,
) -> None:
    settings = settings_with(data_dir, upload_expiry_hours=0.5 / 3600)
    async with app_client(settings) as client:
        stale = await create(client)
        assert (await patch(client, stale, 0, CSV[:100])).status_code == 204
        finished = await create(client)
        job_id = job_of(await patch(client, finished, 0, CSV))
        await wait_for_job(client, job_id)
        time.sleep(0.6)
        fresh = await create(client)
        sessions = client._transport.app.state.runtime.sessions  # type: ignore[attr-defined]
        assert await sweeper.remove_resumable_uploads(settings, sessions) == 1
        assert (await head(client, stale)).status_code == 404
        assert (await head(client, fresh)).status_code == 200
        assert job_of(await head(client, finished)) == job_id  # kept while its job is

        assert (await client.delete(f"/jobs/{job_id}")).status_code == 204
        await sweeper.sweep(settings, sessions)
        assert (await head(client, finished)).status_code == 404
        assert (await head(client, fresh)).status_code == 200
    remaining = [entry.name for entry in (data_dir / "resumable").iterdir()]
    assert remaining == [fresh.removeprefix("/uploads/")]


async def test_a_full_queue_refuses_creation_and_completion_without_losing_bytes(
    data_dir: Path,
) -> None:
    settings = settings_with(data_dir, max_queued_jobs=1, recovery_interval_s=60)
    async with app_client(settings) as client:
        location = await create(client)
        assert (await patch(client, location, 0, CSV[:1000])).status_code == 204
        waiting = queued_job(data_dir, b"a\n1\n")
        sessions = client._transport.app.state.runtime.sessions  # type: ignore[attr-defined]
        await add_queued_jobs(sessions, waiting)
        await asyncio.sleep(0.6)  # admission counts the queue afresh every 0.5 s

        refused = await client.post("/uploads", headers={**TUS, "Upload-Length": "10"})
        assert_problem(refused, 503)
        assert refused.headers["retry-after"]
        full = await patch(client, location, 1000, CSV[1000:])
        assert_problem(full, 503)
        assert full.headers["upload-offset"] == str(len(CSV))
        assert (await head(client, location)).status_code == 503  # HEAD retries, still full
        assert_problem(await patch(client, location, 1000, CSV[1000:]), 409)

        async with transaction(sessions) as session:
            await session.delete(await session.get(Job, waiting.id))
        await asyncio.sleep(0.6)
        retried = await patch(client, location, len(CSV), b"")
        assert retried.status_code == 204
        job = await wait_for_job(client, job_of(retried))
        assert job["file"]["sha256"] == hashlib.sha256(CSV).hexdigest()
        again = await patch(client, location, len(CSV), b"")
        assert job_of(again) == job["id"]
        assert_problem(await patch(client, location, len(CSV), b"x"), 413)


async def test_after_a_restart_the_offset_holds_and_the_hash_is_recomputed(
    data_dir: Path,
) -> None:
    settings = settings_with(data_dir)
    async with app_client(settings) as client:
        location = await create(client)
        assert (await patch(client, location, 0, CSV[:7777])).status_code == 204
    upload = data_dir / "resumable" / location.removeprefix("/uploads/")
    with open(upload / "data", "ab") as data:
        data.write(b"bytes of a request that never finished")
    async with app_client(settings) as client:
        assert (await head(client, location)).headers["upload-offset"] == "7777"
        done = await patch(client, location, 7777, CSV[7777:])
        assert done.status_code == 204
        job = await wait_for_job(client, job_of(done))
    assert job["file"]["sha256"] == hashlib.sha256(CSV).hexdigest()
    assert job["result"]["rows"] == 2000
    assert not (upload / "data").exists()  # the job's upload holds the bytes now


async def test_an_upload_held_by_another_process_gets_409(
    client: httpx.AsyncClient, data_dir: Path
) -> None:
    location = await create(client)
    lock = data_dir / "resumable" / location.removeprefix("/uploads/") / "lock"
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys, time; from service.storage import try_lock\n"
        "assert try_lock(__import__('pathlib').Path(sys.argv[1])) is not None\n"
        "print('held', flush=True); time.sleep(60)",
        str(lock),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert await asyncio.wait_for(holder.stdout.readline(), 30) == b"held\n"
        assert_problem(await patch(client, location, 0, CSV), 409)
        assert (await head(client, location)).headers["upload-offset"] == "0"
    finally:
        holder.kill()
        await holder.wait()
    assert (await patch(client, location, 0, CSV)).status_code == 204
