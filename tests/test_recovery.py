"""Recovery in one process, against a real SQLite database: claims that meet a locked
database, messages that come back while a job still runs, queue slots freed by a cancel."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, update
from sqlmodel import col

from service.config import Settings
from service.db import SessionFactory, create_engine, session_factory, transaction
from service.models import Job, JobStatus, utcnow
from service.runner import lifecycle
from service.runner.execute import execute
from tests.apps import running_app, settings_with
from tests.helpers import assert_problem, wait_for_job
from tests.rows import add_queued_jobs, queued_job

CSV = b"id,name\n1,ada\n2,grace\n"
LOCK_TIMEOUT_MS = 100


@pytest.fixture
def quick(data_dir: Path) -> Settings:
    return settings_with(data_dir, heartbeat_interval_s=0.2, heartbeat_stale_s=1.0)


@pytest.fixture
async def sessions(quick: Settings) -> AsyncIterator[SessionFactory]:
    """SessionFactory as a worker opens them, but giving up on a locked database within 0.1 s."""
    engine = create_engine(quick.sqlalchemy_url, durable=False)

    def impatient(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={LOCK_TIMEOUT_MS}")
        cursor.close()

    event.listen(engine.sync_engine, "connect", impatient)
    yield session_factory(engine)
    await engine.dispose()


async def queued_job_id(settings: Settings, sessions: SessionFactory) -> str:
    job = queued_job(settings.data_dir, CSV)
    await add_queued_jobs(sessions, job)
    return job.id


async def job_row(sessions: SessionFactory, job_id: str) -> Job:
    async with sessions() as session:
        job = await session.get(Job, job_id)
    assert job is not None
    return job


async def test_a_claim_that_meets_a_locked_database_is_tried_again(
    quick: Settings, sessions: SessionFactory
) -> None:
    job_id = await queued_job_id(quick, sessions)
    lock = sqlite3.connect(quick.data_dir / "ingest.db", isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # another writer holds the database for a while
    try:
        running = asyncio.create_task(execute(job_id, quick, sessions))
        await asyncio.sleep(1.0)
        assert not running.done(), running
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    await asyncio.wait_for(running, 30)
    job = await job_row(sessions, job_id)
    assert (job.status, job.attempts) == (JobStatus.succeeded, 1)


async def claim_and_leave(sessions: SessionFactory, settings: Settings, job_id: str) -> int:
    """Claim the job as a worker that is about to die would: running, heartbeat fresh."""
    job = await lifecycle.claim(sessions, job_id, settings)
    assert job is not None
    return job.attempts


async def test_a_message_back_from_a_dead_worker_takes_the_job_once_its_heartbeat_is_stale(
    quick: Settings, sessions: SessionFactory
) -> None:
    job_id = await queued_job_id(quick, sessions)
    await claim_and_leave(sessions, quick, job_id)  # the owner dies now
    started = time.monotonic()
    await execute(job_id, quick, sessions, wait_for_owner=True)
    waited = time.monotonic() - started
    job = await job_row(sessions, job_id)
    assert (job.status, job.attempts) == (JobStatus.succeeded, 2)
    assert quick.heartbeat_stale_s * 0.8 <= waited < quick.heartbeat_stale_s + 5


async def test_a_message_back_while_the_owner_beats_leaves_the_job_to_it(
    quick: Settings, sessions: SessionFactory
) -> None:
    job_id = await queued_job_id(quick, sessions)
    attempt = await claim_and_leave(sessions, quick, job_id)

    async def owner_alive() -> None:
        while True:
            await asyncio.sleep(quick.heartbeat_interval_s)
            await lifecycle.beat(sessions, job_id, attempt)

    owner = asyncio.create_task(owner_alive())
    try:
        started = time.monotonic()
        await execute(job_id, quick, sessions, wait_for_owner=True)
        waited = time.monotonic() - started
    finally:
        owner.cancel()
    job = await job_row(sessions, job_id)
    assert (job.status, job.attempts) == (JobStatus.running, 1)
    assert waited < quick.heartbeat_stale_s


async def test_a_heartbeat_does_not_change_the_job_resource(
    quick: Settings, sessions: SessionFactory
) -> None:
    job_id = await queued_job_id(quick, sessions)
    attempt = await claim_and_leave(sessions, quick, job_id)
    before = (await job_row(sessions, job_id)).updated_at
    await asyncio.sleep(0.01)
    assert await lifecycle.beat(sessions, job_id, attempt)
    after = await job_row(sessions, job_id)
    assert after.updated_at == before and after.heartbeat_at is not None
    async with transaction(sessions) as session:  # the job was claimed again meanwhile
        await session.exec(update(Job).where(col(Job.id) == job_id).values(attempts=attempt + 1))
    assert not await lifecycle.beat(sessions, job_id, attempt)


async def test_the_recovery_round_requeues_a_job_whose_worker_stopped_beating(
    quick: Settings, sessions: SessionFactory
) -> None:
    job_id = await queued_job_id(quick, sessions)
    await claim_and_leave(sessions, quick, job_id)
    assert await lifecycle.requeue_orphaned(sessions, quick) == []
    async with transaction(sessions) as session:
        stale = utcnow() - timedelta(seconds=quick.heartbeat_stale_s + 1)
        await session.exec(update(Job).where(col(Job.id) == job_id).values(heartbeat_at=stale))
    assert await lifecycle.requeue_orphaned(sessions, quick) == [job_id]
    assert (await job_row(sessions, job_id)).status is JobStatus.queued


async def test_cancelling_a_queued_job_frees_its_queue_slot_at_once(data_dir: Path) -> None:
    settings = settings_with(data_dir, max_queued_jobs=1)
    async with running_app(settings) as app:
        runtime = app.state.runtime
        waiting = await queued_job_id(settings, runtime.sessions)  # a job no worker was given
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:

            async def submit() -> httpx.Response:
                return await client.post(
                    "/jobs?filename=t.csv", content=CSV, headers={"Content-Type": "text/csv"}
                )

            assert_problem(await submit(), 503)
            assert (await client.post(f"/jobs/{waiting}/cancel")).status_code == 200
            accepted = await submit()
            assert accepted.status_code == 202, accepted.text
            assert (await wait_for_job(client, accepted.json()["id"]))["status"] == "succeeded"
