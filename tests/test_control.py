"""Job control over HTTP: cancel, delete, ETag, long-poll, Prefer: wait, events, retries."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import orjson
from fastapi import FastAPI

from service.config import Settings
from service.runner import sweeper
from service.storage import job_paths
from tests.apps import app_client, running_app, settings_with
from tests.helpers import assert_problem, wait_for_job
from tests.rows import add_queued_jobs, queued_job

CSV = b"id,name\n1,ada\n2,grace\n"


async def _submit(
    client: httpx.AsyncClient, body: bytes = CSV, /, **headers: str
) -> httpx.Response:
    return await client.post(
        "/jobs?filename=t.csv", content=body, headers={"Content-Type": "text/csv", **headers}
    )


async def test_cancel_is_idempotent_and_409_once_finished(client: httpx.AsyncClient) -> None:
    done = await wait_for_job(client, (await _submit(client)).json()["id"])
    assert done["status"] == "succeeded"
    assert_problem(await client.post(f"/jobs/{done['id']}/cancel"), 409)
    assert_problem(await client.post("/jobs/1b6c4bd4-4d7f-4f44-9a57-7f1d1b5a3e10/cancel"), 404)


async def test_delete_removes_job_and_files(client: httpx.AsyncClient, settings: Settings) -> None:
    job_id = (await _submit(client)).json()["id"]
    await wait_for_job(client, job_id)
    assert job_paths(settings.data_dir, job_id).result.exists()
    response = await client.delete(f"/jobs/{job_id}")
    assert response.status_code == 204
    assert_problem(await client.get(f"/jobs/{job_id}"), 404)
    assert not job_paths(settings.data_dir, job_id).root.exists()
    assert not job_paths(settings.data_dir, job_id).upload.exists()
    assert_problem(await client.delete(f"/jobs/{job_id}"), 404)


async def test_etag_and_if_none_match(client: httpx.AsyncClient) -> None:
    job_id = (await _submit(client)).json()["id"]
    await wait_for_job(client, job_id)
    first = await client.get(f"/jobs/{job_id}")
    etag = first.headers["etag"]
    assert "retry-after" not in first.headers
    again = await client.get(f"/jobs/{job_id}", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.headers["etag"] == etag
    other = await client.get(f"/jobs/{job_id}", headers={"If-None-Match": '"stale"'})
    assert other.status_code == 200


async def test_long_poll_returns_when_the_job_changes(client: httpx.AsyncClient) -> None:
    accepted = await _submit(client)
    job_id = accepted.json()["id"]
    started = time.monotonic()
    changed = await client.get(
        f"/jobs/{job_id}?wait=20", headers={"If-None-Match": accepted.headers["etag"]}
    )
    assert changed.status_code == 200
    assert time.monotonic() - started < 10
    assert changed.headers["etag"] != accepted.headers["etag"]
    finished = await wait_for_job(client, job_id)
    etag = (await client.get(f"/jobs/{job_id}")).headers["etag"]
    started = time.monotonic()
    unchanged = await client.get(f"/jobs/{job_id}?wait=0.5", headers={"If-None-Match": etag})
    assert unchanged.status_code == 304
    assert time.monotonic() - started < 5
    assert finished["done"]
    assert_problem(await client.get(f"/jobs/{job_id}?wait=31"), 400)


async def test_prefer_wait_answers_with_the_finished_job(client: httpx.AsyncClient) -> None:
    response = await _submit(client, Prefer="wait=20")
    assert response.status_code == 200, response.text
    assert response.headers["preference-applied"] == "wait=20"
    assert response.json()["status"] == "succeeded"
    assert response.json()["result"]["rows"] == 2


async def test_events_stream_progress_then_done(client: httpx.AsyncClient) -> None:
    job_id = (await _submit(client)).json()["id"]
    events: list[tuple[str, dict[str, object]]] = []
    async with client.stream("GET", f"/jobs/{job_id}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        name = ""
        async for line in stream.aiter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, orjson.loads(line.removeprefix("data: "))))
    assert events, "no events"
    assert [name for name, _ in events[:-1]] == ["progress"] * (len(events) - 1)
    last_name, last = events[-1]
    assert last_name == "done"
    assert last["status"] == "succeeded"


async def test_idempotent_retry_returns_the_original_job(client: httpx.AsyncClient) -> None:
    first = await _submit(client, **{"Idempotency-Key": "order-42"})
    assert first.status_code == 202
    retry = await _submit(client, **{"Idempotency-Key": "order-42"})
    assert retry.status_code == 200
    assert retry.json()["id"] == first.json()["id"]
    different = await _submit(client, b"id\n9\n", **{"Idempotency-Key": "order-42"})
    assert_problem(different, 422)
    assert len((await client.get("/jobs")).json()["items"]) == 1


async def test_same_key_while_first_upload_is_in_flight_is_409(
    client: httpx.AsyncClient,
) -> None:
    release = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield b"id\n1\n"
        await release.wait()
        yield b"2\n"

    first = asyncio.create_task(
        client.post(
            "/jobs",
            content=slow_body(),
            headers={"Content-Type": "text/csv", "Idempotency-Key": "k"},
        )
    )
    await asyncio.sleep(0.2)
    second = await _submit(client, **{"Idempotency-Key": "k"})
    assert_problem(second, 409)
    release.set()
    assert (await first).status_code == 202


async def test_digest_mismatch_is_400_and_keeps_nothing(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    good = base64.b64encode(hashlib.sha256(CSV).digest()).decode()
    ok = await _submit(client, **{"Repr-Digest": f"sha-256=:{good}:"})
    assert ok.status_code == 202
    bad = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    assert_problem(await _submit(client, **{"Content-Digest": f"sha-256=:{bad}:"}), 400)
    assert_problem(await _submit(client, **{"Repr-Digest": "sha-256=abc"}), 400)
    multipart_digest = await client.post(
        "/jobs",
        files={"file": ("t.csv", CSV, "text/csv")},
        headers={"Content-Digest": f"sha-256=:{bad}:"},
    )
    assert_problem(multipart_digest, 400)
    assert len((await client.get("/jobs")).json()["items"]) == 1
    assert list((settings.data_dir / "incoming").iterdir()) == []
    assert len(list((settings.data_dir / "uploads").iterdir())) == 1


async def test_full_queue_is_503_before_the_body_is_read(data_dir: Path) -> None:
    settings = settings_with(data_dir, max_queued_jobs=2)
    async with running_app(settings) as app:
        runtime = app.state.runtime
        data = runtime.settings.data_dir
        # Two waiting jobs that no worker was given.
        waiting = [queued_job(data, b"a\n1\n") for _ in range(2)]
        await add_queued_jobs(runtime.sessions, *waiting)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await _submit(client)
            problem = assert_problem(response, 503)
            assert int(response.headers["retry-after"]) > 0
            assert "queue" in problem["detail"]
    assert not any((data_dir / "incoming").glob("*"))
    # Only the two waiting jobs' files: nothing of the refused upload.
    assert {path.name for path in (data_dir / "uploads").glob("*")} == {job.id for job in waiting}


async def test_low_disk_is_507(data_dir: Path) -> None:
    async with app_client(settings_with(data_dir, min_free_bytes=10**18)) as client:
        assert_problem(await _submit(client), 507)


async def test_if_none_match_accepts_weak_tags_lists_and_star(client: httpx.AsyncClient) -> None:
    job_id = (await _submit(client)).json()["id"]
    await wait_for_job(client, job_id)
    etag = (await client.get(f"/jobs/{job_id}")).headers["etag"]
    for header in [f"W/{etag}", f'"other", {etag}', "*"]:
        response = await client.get(f"/jobs/{job_id}", headers={"If-None-Match": header})
        assert response.status_code == 304, header


async def test_too_many_errors_keeps_the_rows_that_broke_the_job(client: httpx.AsyncClient) -> None:
    body = b"a,b\n1,2\n3\n4\n5\n6,7\n"
    response = await client.post(
        "/jobs?max_errors=1", content=body, headers={"Content-Type": "text/csv"}
    )
    job = await wait_for_job(client, response.json()["id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "too_many_errors"
    assert job["progress"]["rows_failed"] >= 2
    errors = (await client.get(f"/jobs/{job['id']}/errors")).json()
    assert [item["line"] for item in errors["items"]][:2] == [3, 4]
    assert errors["total"] >= 2


async def _queued_job_nobody_runs(app: FastAPI, updated_minutes_ago: float = 0) -> str:
    """A job row with its upload on disk that was never handed to the executor."""
    runtime = app.state.runtime
    job = queued_job(runtime.settings.data_dir, CSV, age=timedelta(minutes=updated_minutes_ago))
    await add_queued_jobs(runtime.sessions, job)
    return job.id


async def test_events_end_with_deleted_when_the_job_is_deleted(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    job_id = await _queued_job_nobody_runs(app)
    events: list[str] = []

    async def follow() -> None:
        async with client.stream("GET", f"/jobs/{job_id}/events") as stream:
            async for line in stream.aiter_lines():
                if line.startswith("event: "):
                    events.append(line.removeprefix("event: "))

    follower = asyncio.create_task(follow())
    deadline = time.monotonic() + 10
    while not app.state.runtime.views.watched(job_id):
        assert time.monotonic() < deadline, "the event stream never started waiting"
        await asyncio.sleep(0.01)
    assert (await client.delete(f"/jobs/{job_id}")).status_code == 204
    await asyncio.wait_for(follower, 10)
    assert events == ["progress", "deleted"]


async def test_recovery_resubmits_jobs_stranded_in_the_queue(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    runtime = app.state.runtime
    stranded = await _queued_job_nobody_runs(app, updated_minutes_ago=30)
    recent = await _queued_job_nobody_runs(app)
    await sweeper.recover(runtime.settings, runtime.sessions, runtime.executor)
    assert (await wait_for_job(client, stranded))["status"] == "succeeded"
    assert (await client.get(f"/jobs/{recent}")).json()["status"] == "queued"


async def test_after_a_stop_is_asked_for_uploads_get_503(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    app.state.runtime.begin_shutdown()
    response = await _submit(client)
    assert_problem(response, 503)
    assert response.headers["retry-after"]
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["accepting"].startswith("failed")
