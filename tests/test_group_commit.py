"""Group commit: what callers arriving together share, and what each keeps of its own. The
new jobs' commit is tested against a real SQLite database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from service.db import SessionFactory, create_engine, session_factory
from service.group_commit import GroupCommit, Outcomes
from service.models import Job
from service.upload.recorder import JobRecorder
from tests.apps import settings_with
from tests.rows import queued_job


class _Log:
    """A commit that records its groups and waits for `release` before finishing each."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []
        self.release = asyncio.Event()

    async def commit(self, items: list[int]) -> Outcomes:
        self.groups.append(items)
        await self.release.wait()
        return [ValueError(item) if item < 0 else None for item in items]


async def test_callers_arriving_during_a_commit_share_the_next_one() -> None:
    log = _Log()
    group = GroupCommit(log.commit)
    first = asyncio.create_task(group.submit(0))
    await asyncio.sleep(0.01)
    later = [asyncio.create_task(group.submit(n)) for n in range(1, 6)]
    await asyncio.sleep(0.01)
    assert log.groups == [[0]] and not first.done()
    log.release.set()
    await asyncio.gather(first, *later)
    assert log.groups == [[0], [1, 2, 3, 4, 5]]


async def test_each_caller_gets_its_own_outcome() -> None:
    log = _Log()
    log.release.set()
    group = GroupCommit(log.commit)
    outcomes = await asyncio.gather(*(group.submit(n) for n in (1, -2, 3)), return_exceptions=True)
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], ValueError)
    assert log.groups == [[1, -2, 3]]


async def test_a_failed_commit_fails_its_group_only() -> None:
    calls: list[list[int]] = []

    async def commit(items: list[int]) -> Outcomes:
        calls.append(items)
        if len(calls) == 1:
            await asyncio.sleep(0.02)
            raise OSError(5, "Input/output error")
        return [None] * len(items)

    group = GroupCommit(commit)
    first = asyncio.create_task(group.submit(1))
    await asyncio.sleep(0.005)
    second = asyncio.create_task(group.submit(2))
    with pytest.raises(OSError):
        await first
    await second
    assert calls == [[1], [2]]


async def test_a_cancelled_caller_is_committed_all_the_same() -> None:
    log = _Log()
    group = GroupCommit(log.commit)
    caller = asyncio.create_task(group.submit(7))
    await asyncio.sleep(0.01)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    log.release.set()
    await group.submit(8)  # runs after the cancelled caller's group has finished
    assert log.groups == [[7], [8]]


@pytest.fixture
async def sessions(data_dir: Path) -> AsyncIterator[SessionFactory]:
    engine = create_engine(settings_with(data_dir).sqlalchemy_url)
    yield session_factory(engine)
    await engine.dispose()


def job_with_key(data_dir: Path, key: str) -> Job:
    job = queued_job(data_dir, b"a\n1\n")
    job.idempotency_key = key
    return job


async def test_a_job_whose_key_is_taken_fails_alone_in_its_commit(
    data_dir: Path, sessions: SessionFactory
) -> None:
    recorder = JobRecorder(sessions)
    await recorder.record(job_with_key(data_dir, "taken"))
    jobs = [job_with_key(data_dir, key) for key in ("a", "taken", "b")]
    outcomes = await asyncio.gather(*(recorder.record(job) for job in jobs), return_exceptions=True)
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], IntegrityError)
    async with sessions() as session:
        for job, recorded in zip(jobs, (True, False, True), strict=True):
            assert (await session.get(Job, job.id) is not None) is recorded
