"""Status polls are served from a snapshot of the job; renewing it never makes a poll wait."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from sqlmodel import col

from service.db import transaction
from service.jobs import queries, views
from service.models import Job, utcnow
from tests.rows import add_queued_jobs, queued_job

SLOW_READ_S = 0.5


async def _job_nobody_runs(app: FastAPI) -> str:
    runtime = app.state.runtime
    job = queued_job(runtime.settings.data_dir, b"a,b\n1,2\n")
    await add_queued_jobs(runtime.sessions, job)
    return job.id


async def _changed_elsewhere(app: FastAPI, job_id: str) -> None:
    """What another process (a worker writing progress) does: a commit this one never sees."""
    async with transaction(app.state.runtime.sessions) as session:
        await session.exec(
            update(Job)
            .where(col(Job.id) == job_id)
            .values(updated_at=utcnow() + timedelta(seconds=1))
        )


async def _etag(client: httpx.AsyncClient, job_id: str) -> str:
    response = await client.get(f"/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return response.headers["ETag"]


async def test_a_change_made_elsewhere_shows_within_two_freshness_windows(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    job_id = await _job_nobody_runs(app)
    before = await _etag(client, job_id)
    await _changed_elsewhere(app, job_id)
    changed_at = time.monotonic()
    while await _etag(client, job_id) == before:
        assert time.monotonic() - changed_at < 2 * views.FRESH_S + 0.5, "the change never showed"
        await asyncio.sleep(0.01)


async def test_polls_do_not_wait_for_the_read_that_renews_their_snapshot(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(views, "FRESH_S", 0.5)  # wide enough for a busy machine's pauses
    job_id = await _job_nobody_runs(app)
    before = await _etag(client, job_id)
    read = queries.get_job

    async def slow_read(session: object, wanted: str) -> Job | None:
        await asyncio.sleep(SLOW_READ_S)
        return await read(session, wanted)  # type: ignore[arg-type]

    monkeypatch.setattr(queries, "get_job", slow_read)
    await _changed_elsewhere(app, job_id)
    await asyncio.sleep(views.FRESH_S * 1.2)  # past fresh, still servable

    started = time.monotonic()
    assert await _etag(client, job_id) == before  # served at once, renewed meanwhile
    assert time.monotonic() - started < SLOW_READ_S / 2
    deadline = time.monotonic() + 5
    while await _etag(client, job_id) == before:
        assert time.monotonic() < deadline, "the renewed snapshot never came"
        await asyncio.sleep(0.01)

    await asyncio.sleep(views.FRESH_S * 2.5)  # too old to serve: the poll reads the job itself
    started = time.monotonic()
    await _etag(client, job_id)
    assert time.monotonic() - started >= SLOW_READ_S


async def test_a_change_heard_during_a_read_is_not_undone_by_that_read(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = await _job_nobody_runs(app)
    before = await _etag(client, job_id)
    read = queries.get_job

    async def read_then_linger(session: object, wanted: str) -> Job | None:
        row = await read(session, wanted)  # type: ignore[arg-type]
        await asyncio.sleep(SLOW_READ_S)
        return row

    monkeypatch.setattr(queries, "get_job", read_then_linger)
    await asyncio.sleep(views.FRESH_S * 2.5)  # too old to serve: the next poll reads the job
    poll = asyncio.create_task(_etag(client, job_id))
    await asyncio.sleep(SLOW_READ_S / 5)  # its read has the row as it was
    await _changed_elsewhere(app, job_id)
    app.state.runtime.views.changed(job_id)  # what PostgreSQL's notification does
    assert await poll != before


async def test_waiters_read_their_job_rarely_while_changes_are_heard(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = await _job_nobody_runs(app)
    etag = await _etag(client, job_id)
    job_views = app.state.runtime.views
    read = queries.get_job
    reads: list[float] = []

    async def counted_read(session: object, wanted: str) -> Job | None:
        reads.append(time.monotonic())
        return await read(session, wanted)  # type: ignore[arg-type]

    monkeypatch.setattr(queries, "get_job", counted_read)

    async def long_poll() -> httpx.Response:
        return await client.get(f"/jobs/{job_id}?wait=1.5", headers={"If-None-Match": etag})

    assert (await long_poll()).status_code == 304
    polling_reads = len(reads)  # the 0.25 s recheck: about six
    assert polling_reads >= 4

    job_views.listening(True)  # what the PostgreSQL listener says once it hears changes
    reads.clear()
    assert (await long_poll()).status_code == 304
    assert len(reads) <= 2

    waiter = asyncio.create_task(long_poll())
    while not job_views.watched(job_id):
        await asyncio.sleep(0.01)
    reads.clear()
    job_views.listening(False)  # the connection is lost: waiters look again at once
    deadline = time.monotonic() + 0.2
    while not reads:
        assert time.monotonic() < deadline, "the waiter did not look again"
        await asyncio.sleep(0.01)
    assert (await waiter).status_code == 304
