"""Durable work shared between jobs. Small jobs run as one batch in a worker, against a real
SQLite database and real files: each job keeps its own fate, and a crash in the middle of a
burst loses or repeats nothing. Uploads arriving together share their directory's fsync, and
small ones their trip to a thread."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvloop
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import text

from service import storage
from service.config import Settings
from service.db import SessionFactory, create_engine, session_factory, transaction
from service.jobs.views import etag_of
from service.models import Job, JobPublic, JobStatus
from service.runner import lifecycle, outputs, worker_calls
from service.runner.execute import execute_claimed, execute_many
from service.runner.executors import inprocess
from service.runner.executors.pool import ProcessPool, WorkerDied
from service.storage import AttemptPaths, job_paths
from tests.apps import settings_with
from tests.helpers import ndjson, wait_until
from tests.rows import add_queued_jobs, queued_job
from tests.server import StartedProcesses


def small_csv(n: int) -> bytes:
    return f"n,square\n{n},{n * n}\n{n + 1},{(n + 1) ** 2}\n".encode()


def expected_rows(n: int) -> list[dict[str, int]]:
    return [{"n": n, "square": n * n}, {"n": n + 1, "square": (n + 1) ** 2}]


@pytest.fixture
def narrow(data_dir: Path) -> Settings:
    """At most 4 columns: a wider CSV fails its job with `too_many_columns`."""
    return settings_with(data_dir, max_columns=4)


@pytest.fixture
async def sessions(narrow: Settings) -> AsyncIterator[SessionFactory]:
    engine = create_engine(narrow.sqlalchemy_url, durable=False)
    yield session_factory(engine)
    await engine.dispose()


async def queue(
    settings: Settings, sessions: SessionFactory, contents: Sequence[bytes]
) -> list[str]:
    jobs = [queued_job(settings.data_dir, content) for content in contents]
    await add_queued_jobs(sessions, *jobs)
    return [job.id for job in jobs]


async def row(sessions: SessionFactory, job_id: str) -> Job:
    async with sessions() as session:
        job = await session.get(Job, job_id)
    assert job is not None
    return job


def result_of(settings: Settings, job_id: str) -> list[dict[str, Any]]:
    return ndjson(job_paths(settings.data_dir, job_id).result.read_bytes())


async def test_a_batch_runs_every_job_once_with_its_own_rows(
    narrow: Settings, sessions: SessionFactory
) -> None:
    job_ids = await queue(narrow, sessions, [small_csv(n) for n in range(10)])
    await execute_many(job_ids, narrow, sessions)
    for n, job_id in enumerate(job_ids):
        job = await row(sessions, job_id)
        assert (job.status, job.attempts, job.rows_done) == (JobStatus.succeeded, 1, 2)
        assert result_of(narrow, job_id) == expected_rows(n)
        leftovers = sorted(p.name for p in job_paths(narrow.data_dir, job_id).root.iterdir())
        # No row failed: no errors file was written, fsync'd or renamed.
        assert leftovers == ["result.ndjson"]


async def test_one_bad_file_in_a_batch_fails_only_itself(
    narrow: Settings, sessions: SessionFactory
) -> None:
    wide = b"a,b,c,d,e,f\n1,2,3,4,5,6\n"
    job_ids = await queue(narrow, sessions, [small_csv(1), wide, small_csv(3)])
    await execute_many(job_ids, narrow, sessions)
    bad = await row(sessions, job_ids[1])
    assert bad.status is JobStatus.failed and bad.error_code == "too_many_columns"
    assert not job_paths(narrow.data_dir, job_ids[1]).result.exists()
    for n in (0, 2):
        job = await row(sessions, job_ids[n])
        assert job.status is JobStatus.succeeded
        assert result_of(narrow, job_ids[n]) == expected_rows(n + 1)


async def test_jobs_another_worker_owns_or_that_were_cancelled_are_left_alone(
    narrow: Settings, sessions: SessionFactory
) -> None:
    job_ids = await queue(narrow, sessions, [small_csv(n) for n in range(3)])
    async with transaction(sessions) as session:
        job = await session.get(Job, job_ids[0])
        assert job is not None
        assert await lifecycle.cancel(session, job, timedelta(hours=1))
    assert await lifecycle.claim(sessions, job_ids[1], narrow) is not None  # someone else's
    await execute_many(job_ids, narrow, sessions)
    assert (await row(sessions, job_ids[0])).status is JobStatus.cancelled
    other = await row(sessions, job_ids[1])
    assert (other.status, other.attempts) == (JobStatus.running, 1)
    assert (await row(sessions, job_ids[2])).status is JobStatus.succeeded


async def test_a_job_cancelled_while_its_batch_runs_stays_cancelled(
    narrow: Settings, sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cancel lands after the parse, just before the batch is published and finished:
    that job keeps its cancellation, the others of the batch succeed."""
    job_ids = await queue(narrow, sessions, [small_csv(n) for n in range(3)])
    publish = outputs.publish_many
    cancelled = threading.Event()

    def cancel_then_publish(attempts: Sequence[AttemptPaths]) -> list[OSError | None]:
        engine = create_sync_engine(narrow.sqlalchemy_url)
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE job SET status = 'cancelled' WHERE id = :id"), {"id": job_ids[1]}
            )
        engine.dispose()
        cancelled.set()
        return publish(attempts)

    monkeypatch.setattr(outputs, "publish_many", cancel_then_publish)
    await execute_many(job_ids, narrow, sessions)
    assert cancelled.is_set()
    assert (await row(sessions, job_ids[1])).status is JobStatus.cancelled
    for n in (0, 2):
        assert (await row(sessions, job_ids[n])).status is JobStatus.succeeded
        assert result_of(narrow, job_ids[n]) == expected_rows(n)


async def test_a_job_whose_output_cannot_be_published_fails_alone(
    narrow: Settings, sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_ids = await queue(narrow, sessions, [small_csv(n) for n in range(3)])
    publish = outputs.publish_many

    def one_write_fails(attempts: Sequence[AttemptPaths]) -> list[OSError | None]:
        errors = publish([a for a in attempts if a.root.name != job_ids[0]])
        return [OSError(28, "No space left on device"), *errors]

    monkeypatch.setattr(outputs, "publish_many", one_write_fails)
    await execute_many(job_ids, narrow, sessions)
    failed = await row(sessions, job_ids[0])
    assert failed.status is JobStatus.failed and failed.error_code == "io_error"
    for n in (1, 2):
        assert (await row(sessions, job_ids[n])).status is JobStatus.succeeded


async def test_the_rows_a_batch_returns_answer_as_a_read_of_the_jobs_would(
    narrow: Settings, sessions: SessionFactory
) -> None:
    """The API answers a job's waiters with the row its worker returns, without reading it:
    the job must look the same, byte for byte, as when read from the database."""
    job_ids = await queue(narrow, sessions, [small_csv(n) for n in range(3)])
    finished = await execute_many(job_ids, narrow, sessions)
    assert sorted(finished) == sorted(job_ids)
    for job_id in job_ids:
        returned = JobPublic.from_job(Job(**finished[job_id]))
        read = JobPublic.from_job(await row(sessions, job_id))
        assert returned.status is JobStatus.succeeded
        assert returned.model_dump_json() == read.model_dump_json()
        assert etag_of(returned) == etag_of(read)


def _no_setup() -> None: ...


def _payload(size: int) -> bytes:
    return b"x" * size


def test_a_worker_answer_larger_than_the_pipe_arrives_whole() -> None:
    """A batch's finished rows can exceed what one write to the worker's pipe carries. Under
    uvloop, which leaves the pipe non-blocking once it has watched it, the answer must still
    be read whole, and nothing of it left to be taken for the next task's answer."""

    async def run() -> None:
        pool = ProcessPool(1, multiprocessing.get_context("forkserver"), _no_setup)
        await pool.start()
        try:
            for size in (10, 100_000, 1_000_000, 5):
                assert await pool.run(_payload, size) == b"x" * size
        finally:
            await pool.close()

    uvloop.run(run())


def claimed_job(settings: Settings, content: bytes) -> Job:
    """A job as an upload with `Prefer: wait` records it while a worker is idle."""
    job = queued_job(settings.data_dir, content)
    job.status, job.attempts = JobStatus.running, 1
    job.started_at = job.heartbeat_at = job.created_at
    return job


def claimed(job: Job) -> lifecycle.ClaimedJob:
    """The job as its row goes to the worker."""
    return lifecycle.ClaimedJob.from_row(job.model_dump())


async def test_a_job_claimed_when_accepted_runs_under_that_claim(
    narrow: Settings, sessions: SessionFactory
) -> None:
    job = claimed_job(narrow, small_csv(1))
    await add_queued_jobs(sessions, job)
    for check in (False, True):  # confirming a claim that holds changes nothing
        finished = await execute_claimed(claimed(job), narrow, sessions, check=check)
        stored = await row(sessions, job.id)
        assert (stored.status, stored.attempts) == (JobStatus.succeeded, 1)
        assert finished[job.id]["status"] is JobStatus.succeeded
        assert result_of(narrow, job.id) == expected_rows(1)
        async with transaction(sessions) as session:  # as accepted again, for the second run
            await session.merge(job)


async def test_a_claim_made_when_accepted_that_no_longer_holds_is_not_used(
    narrow: Settings, sessions: SessionFactory
) -> None:
    """A job claimed when accepted that waited too long for a worker was queued again (its
    heartbeat went stale): the worker confirms the claim, finds it gone, claims anew."""
    job = claimed_job(narrow, small_csv(2))
    await add_queued_jobs(sessions, job)
    await lifecycle.requeue(sessions, job.id)
    await execute_claimed(claimed(job), narrow, sessions, check=True)
    stored = await row(sessions, job.id)
    assert (stored.status, stored.attempts) == (JobStatus.succeeded, 2)
    assert result_of(narrow, job.id) == expected_rows(2)


async def test_a_claim_made_when_accepted_gives_way_to_a_cancel(
    narrow: Settings, sessions: SessionFactory
) -> None:
    job = claimed_job(narrow, small_csv(3))
    await add_queued_jobs(sessions, job)
    async with transaction(sessions) as session:
        stored = await session.get(Job, job.id)
        assert stored is not None
        assert await lifecycle.cancel(session, stored, timedelta(hours=1))
    assert await execute_claimed(claimed(job), narrow, sessions, check=True) == {}
    assert (await row(sessions, job.id)).status is JobStatus.cancelled


# --- a real server killed with -9 in the middle of a burst --------------------------------


def burst(url: str, count: int, accepted: dict[str, int], stop: threading.Event) -> None:
    """Upload jobs numbered from `count` down, noting each one answered 202, until stopped."""
    numbers = iter(range(count))
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            while not stop.is_set():
                with lock:
                    n = next(numbers, None)
                if n is None:
                    return
                try:
                    answer = http.post(
                        f"/jobs?filename=s{n}.csv",
                        content=small_csv(n),
                        headers={"Content-Type": "text/csv"},
                    )
                except httpx.HTTPError:
                    return  # the server is gone
                if answer.status_code == 202:
                    accepted[answer.json()["id"]] = n

    threads = [threading.Thread(target=client) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@pytest.mark.slow
def test_kill_9_during_a_burst_of_small_jobs_loses_and_repeats_nothing(
    data_dir: Path, processes: StartedProcesses
) -> None:
    server = processes.service_in_own_group(data_dir)
    accepted: dict[str, int] = {}
    stop = threading.Event()
    sender = threading.Thread(target=burst, args=(server.url, 500, accepted, stop))
    sender.start()
    with httpx.Client(base_url=server.url, timeout=30) as client:

        def some_succeeded() -> bool:
            jobs = client.get("/jobs", params={"status": "succeeded", "limit": 1}).json()
            return len(accepted) >= 150 and bool(jobs["items"])

        wait_until(some_succeeded, timeout=60)
    os.killpg(server.pid, signal.SIGKILL)  # the API, its forkserver and its workers at once
    stop.set()
    sender.join(timeout=60)
    assert server.process is not None
    server.process.wait(timeout=10)
    engine = create_sync_engine(f"sqlite:///{data_dir / 'ingest.db'}")
    with engine.connect() as connection:
        before: dict[str, int] = dict(
            connection.execute(text("SELECT status, count(*) FROM job GROUP BY status")).all()
        )
    engine.dispose()
    assert before.get("queued", 0) + before.get("running", 0) > 0, before  # killed mid-burst

    server = processes.service(data_dir)
    with httpx.Client(base_url=server.url, timeout=30) as client:

        def all_done() -> bool:
            return all(client.get(f"/jobs/{job_id}").json()["done"] for job_id in accepted)

        wait_until(all_done, timeout=120)
        for job_id, n in accepted.items():
            job = client.get(f"/jobs/{job_id}").json()
            assert job["status"] == "succeeded", job
            assert job["result"]["rows"] == 2, job
            assert ndjson(client.get(f"/jobs/{job_id}/result").content) == expected_rows(n)
    engine = create_sync_engine(f"sqlite:///{data_dir / 'ingest.db'}")
    with engine.connect() as connection:
        names = connection.execute(text("SELECT file_name, status FROM job")).all()
    engine.dispose()
    # Every job row is one upload (none twice), and every one that was recorded succeeded,
    # even those whose 202 the kill cut off.
    assert len({name for name, _ in names}) == len(names)
    assert {status for _, status in names} == {"succeeded"}
    assert set(accepted.values()) <= {int(name[1:-4]) for name, _ in names}


# --- uploads arriving together share their directory's fsync ------------------------------


async def test_renames_made_while_a_directory_fsync_runs_share_the_next_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    release = threading.Event()

    def slow_fsync_dir(path: Path) -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            release.wait(timeout=10)  # the first fsync runs while the others arrive

    monkeypatch.setattr(storage, "fsync_dir", slow_fsync_dir)
    first = asyncio.create_task(storage.sync_dir(tmp_path))
    await asyncio.sleep(0.05)
    later = [asyncio.create_task(storage.sync_dir(tmp_path)) for _ in range(9)]
    await asyncio.sleep(0.05)
    assert not first.done() and calls == [0]
    release.set()
    await asyncio.gather(first, *later)
    assert calls == [0, 1]  # the nine waited for an fsync that began after them, and shared it


async def test_a_failed_directory_fsync_fails_every_upload_waiting_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(path: Path) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(storage, "fsync_dir", failing)
    outcomes = await asyncio.gather(
        *(storage.sync_dir(tmp_path) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(outcome, OSError) for outcome in outcomes)


async def test_small_uploads_ending_while_one_is_stored_share_the_next_trip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[Path] = []
    release = threading.Event()

    def slow_fsync_dir(path: Path) -> None:
        synced.append(path)
        if len(synced) == 1:
            release.wait(timeout=10)  # the first upload's group is stored while others end

    monkeypatch.setattr(storage, "fsync_dir", slow_fsync_dir)
    stored = tmp_path / "uploads"
    stored.mkdir()

    def store(n: int) -> asyncio.Task[None]:
        data = small_csv(n)
        return asyncio.create_task(
            storage.store_whole(data, tmp_path / f"{n}.part", stored / str(n))
        )

    first = store(0)
    await asyncio.sleep(0.05)
    later = [store(n) for n in range(1, 10)]
    await asyncio.sleep(0.05)
    assert not first.done() and synced == [stored]
    release.set()
    await asyncio.gather(first, *later)
    assert synced == [stored, stored]  # nine uploads, one trip and one directory fsync
    assert {path.name: path.read_bytes() for path in stored.iterdir()} == {
        str(n): small_csv(n) for n in range(10)
    }
    assert not list(tmp_path.glob("*.part"))


async def test_a_small_upload_that_cannot_be_stored_fails_alone(tmp_path: Path) -> None:
    stored = tmp_path / "uploads"
    stored.mkdir()
    destinations = [stored / "a", tmp_path / "missing" / "b", stored / "c"]
    outcomes = await asyncio.gather(
        *(
            storage.store_whole(b"x\n1\n", tmp_path / f"{n}.part", destination)
            for n, destination in enumerate(destinations)
        ),
        return_exceptions=True,
    )
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], FileNotFoundError)
    assert sorted(path.name for path in stored.iterdir()) == ["a", "c"]


class _PoolWhoseBatchesDie:
    """A worker pool run in this process whose worker dies after claiming any batch of more
    than one job (as a file that crashes the parser would make it); single jobs run."""

    def __init__(self, settings: Settings, sessions: SessionFactory) -> None:
        self._settings, self._sessions = settings, sessions

    async def start(self) -> None: ...

    async def run(self, function: Any, *args: Any) -> None:
        if function is worker_calls.run_jobs:
            await lifecycle.claim_many(self._sessions, args[0], self._settings)
            raise WorkerDied("killed mid-batch")
        await execute_many([args[0]], self._settings, self._sessions)

    def kill(self) -> None: ...

    async def close(self) -> None: ...


async def test_jobs_of_a_batch_whose_worker_died_are_not_charged_for_it(
    narrow: Settings, sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        inprocess, "_new_pool", lambda size, settings: _PoolWhoseBatchesDie(narrow, sessions)
    )
    job_ids = await queue(narrow, sessions, [small_csv(n) for n in range(6)])
    finished: list[str] = []

    async def on_done(job_id: str, row: object = None) -> None:
        finished.append(job_id)

    executor = inprocess.InProcessExecutor(narrow, sessions, on_done)
    for job_id in job_ids:
        await executor.submit(job_id)
    await executor.start()
    try:
        async with asyncio.timeout(30):
            while len(finished) < len(job_ids):
                await asyncio.sleep(0.01)
    finally:
        await executor.stop(grace_s=1)
    for n, job_id in enumerate(job_ids):
        job = await row(sessions, job_id)
        assert (job.status, job.attempts) == (JobStatus.succeeded, 1), job_id
        assert result_of(narrow, job_id) == expected_rows(n)


async def test_an_output_is_written_back_only_once_it_has_grown(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A small job's output is left to the final fsync, however long its parse takes; an
    output that grows past `WRITEBACK_MIN_BYTES` is written back as it grows, whatever the
    size of the upload (a small gzip upload can expand to gigabytes)."""
    synced: list[int] = []
    monkeypatch.setattr(outputs, "WRITEBACK_INTERVAL_S", 0.01)
    monkeypatch.setattr(outputs, "datasync", lambda path: synced.append(path.stat().st_size))
    path = tmp_path / "result.ndjson.partial"
    writing_back = asyncio.create_task(outputs.write_back(path))
    try:
        path.write_bytes(b"{}\n" * 1000)
        await asyncio.sleep(20 * outputs.WRITEBACK_INTERVAL_S)
        assert synced == []
        with path.open("ab") as output:
            output.write(b"{}\n" * outputs.WRITEBACK_MIN_BYTES)
        deadline = asyncio.get_running_loop().time() + 10
        while not synced and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        assert synced and synced[0] > outputs.WRITEBACK_MIN_BYTES
    finally:
        writing_back.cancel()
        with pytest.raises(asyncio.CancelledError):
            await writing_back


async def test_the_jobs_directory_is_synced_after_the_outputs_it_holds(
    narrow: Settings, sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each job's directory is made when its attempt starts; the directory holding them is
    fsync'd once its outputs are, so a succeeded job's result is reachable after a power cut
    on any file system, not only on one whose journal commits the new entry anyway."""
    job_ids = await queue(narrow, sessions, [small_csv(n) for n in range(3)])
    synced: list[Path] = []
    sync = storage.fsync_dir

    def recording(path: Path) -> None:
        sync(path)
        synced.append(path)

    monkeypatch.setattr(outputs, "fsync_dir", recording)
    await execute_many(job_ids, narrow, sessions)
    jobs_dir = narrow.data_dir / "jobs"
    roots = {job_paths(narrow.data_dir, job_id).root for job_id in job_ids}
    assert roots <= set(synced) and synced[-1] == jobs_dir
    assert synced.count(jobs_dir) == 1
