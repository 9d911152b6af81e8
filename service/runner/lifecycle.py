"""A job's states and the only statements that move it between them.

queued → running (claim) → succeeded | failed (finish); queued | running → cancelled
(cancel); running → queued (requeue, when its worker died). Every claim counts an attempt,
and a worker writes only while the job is still `running` under the attempt it claimed
(`owned`): a worker that was presumed dead, and whose job was claimed again, can no longer
change the job.

A running job's worker writes a heartbeat every `heartbeat_interval_s`; a job whose heartbeat
is older than `heartbeat_stale_s` is taken to have lost its worker, and whoever holds its
message (a redelivered Celery message, the local pool, the recovery sweep) may claim it again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    CursorResult,
    Update,
    bindparam,
    func,
    or_,
    update,
)
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service.config import Settings
from service.db import SessionFactory, in_one_thread_call, is_transient, transaction
from service.models import Job, JobStatus, utcnow

logger = logging.getLogger(__name__)

# Database writes that fail for a passing reason (a full disk, a lock, a lost connection) are
# tried again with growing pauses up to RETRY_MAX_S, for RETRY_FOR_S in all.
RETRY_FIRST_S = 0.05
RETRY_MAX_S = 2.0
RETRY_FOR_S = 60.0


T = TypeVar("T")


class JobCancelled(Exception):
    """The job stopped running under this worker (cancelled, deleted, or claimed again)."""


def rowcount(result: object) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


def owned(job_id: str, attempt: int) -> ColumnElement[bool]:
    """The job is still running under this attempt."""
    return (
        (col(Job.id) == job_id)
        & (col(Job.status) == JobStatus.running)
        & (col(Job.attempts) == attempt)
    )


def _stale(settings: Settings, now: datetime) -> ColumnElement[bool]:
    """The job is running, but its worker has not reported for `heartbeat_stale_s`."""
    cutoff = now - timedelta(seconds=settings.heartbeat_stale_s)
    return (col(Job.status) == JobStatus.running) & (
        func.coalesce(col(Job.heartbeat_at), col(Job.updated_at)) < cutoff
    )


@dataclass(frozen=True)
class ClaimedJob:
    """What a worker needs of a job it holds, as the claim left its row. Lighter than the
    ORM's `Job`, whose construction cost about 0.1 ms a job: a tenth of a tiny job's parse."""

    id: str
    attempts: int
    file_name: str
    file_size: int
    media_type: str
    options: dict[str, Any]

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> ClaimedJob:
        return cls(**{field.name: row[field.name] for field in fields(cls)})


async def claim(sessions: SessionFactory, job_id: str, settings: Settings) -> ClaimedJob | None:
    """Move a queued (or orphaned running) job to running; None if someone else has it."""
    claimed = await claim_many(sessions, [job_id], settings)
    return claimed[0] if claimed else None


async def claim_many(
    sessions: SessionFactory, job_ids: Sequence[str], settings: Settings
) -> list[ClaimedJob]:
    """Claim every job of `job_ids` that is queued (or orphaned running), in one transaction;
    returns those claimed, in the order given (the others belong to someone else).

    The claimed rows come back with the update itself (RETURNING), from one statement built
    once and run whole in one thread call on the blocking driver (`in_one_thread_call`):
    through the ORM and the asyncio driver, an update and a read of the rows cost a batch
    of one tiny job more CPU than its parse."""
    now = utcnow()
    parameters = {
        "job_ids": list(job_ids),
        "now": now,
        "stale_before": now - timedelta(seconds=settings.heartbeat_stale_s),
    }

    def claim_all(connection: Connection) -> list[ClaimedJob]:
        rows = connection.execute(_claim_statement(), parameters)
        return [ClaimedJob.from_row(row._mapping) for row in rows]

    claimed = {job.id: job for job in await in_one_thread_call(sessions, claim_all)}
    return [claimed[job_id] for job_id in job_ids if job_id in claimed]


@functools.cache
def _claim_statement() -> Update:
    table = Job.metadata.tables[Job.__tablename__]
    now: BindParameter[datetime] = bindparam("now")
    stale = (col(Job.status) == JobStatus.running) & (
        func.coalesce(col(Job.heartbeat_at), col(Job.updated_at)) < bindparam("stale_before")
    )
    return (
        update(table)
        .where(col(Job.id).in_(bindparam("job_ids", expanding=True)))
        .where(or_(col(Job.status) == JobStatus.queued, stale))
        .values(
            status=JobStatus.running,
            started_at=now,
            updated_at=now,
            heartbeat_at=now,
            attempts=col(Job.attempts) + 1,
            phase=None,
            bytes_done=0,
            percent=0.0,
            rows_done=0,
            rows_failed=0,
            rate_bytes_per_s=None,
            eta_seconds=None,
        )
        .returning(*(table.columns[field.name] for field in fields(ClaimedJob)))
    )


async def retrying(what: str, job_id: str, write: Callable[[], Awaitable[T]]) -> T:
    """`write()`, tried again while it fails for a passing reason, for up to RETRY_FOR_S."""
    pause = RETRY_FIRST_S
    deadline = time.monotonic() + RETRY_FOR_S
    while True:
        try:
            return await write()
        except Exception as exc:
            if not is_transient(exc) or time.monotonic() + pause > deadline:
                raise
            logger.warning(
                f"{what} failed; trying again",
                extra={"job_id": job_id, "error": first_line(exc), "pause_s": pause},
            )
        await asyncio.sleep(pause)
        pause = min(pause * 2, RETRY_MAX_S)


@dataclass(frozen=True)
class _Owner:
    status: JobStatus
    attempts: int
    heartbeat_at: datetime | None


async def _owner(sessions: SessionFactory, job_id: str) -> _Owner | None:
    async with sessions() as session:
        row = (
            await session.exec(
                select(Job.status, Job.attempts, Job.heartbeat_at).where(col(Job.id) == job_id)
            )
        ).first()
    return None if row is None else _Owner(JobStatus(row[0]), row[1], row[2])


async def claim_from_owner(
    sessions: SessionFactory, job_id: str, settings: Settings
) -> ClaimedJob | None:
    """Claim a job whose message came back while its worker may still be alive.

    A message redelivered at once (RabbitMQ, a Celery pool process that died) finds the job
    still running with a fresh heartbeat. The heartbeat decides: if it moves, the owner is
    alive and keeps the job (None); if it goes stale, the owner is dead and the job is claimed.
    Waits at most about `heartbeat_stale_s`.
    """
    deadline = time.monotonic() + settings.heartbeat_stale_s + 2 * settings.heartbeat_interval_s
    first: _Owner | None = None
    while time.monotonic() < deadline:
        owner = await _owner(sessions, job_id)
        if owner is None or owner.status.done:
            return None
        if first is None:
            first = owner
        elif owner.status is JobStatus.running and owner != first:
            return None  # the owner beat (alive), or someone else claimed the job meanwhile
        job = await claim(sessions, job_id, settings)
        if job is not None:
            return job
        await asyncio.sleep(settings.heartbeat_interval_s / 2)
    return None


async def finish(
    sessions: SessionFactory,
    job_id: str,
    attempt: int,
    status: JobStatus,
    *,
    retention: timedelta,
    **values: Any,
) -> bool:
    """Move a running job to its final state; False if this attempt no longer owns it."""
    ending = Ending(job_id, attempt, status, values)
    return (await finish_many(sessions, [ending], retention=retention))[0] is not None


@dataclass(frozen=True)
class Ending:
    """One job's final state, as `finish` takes it."""

    job_id: str
    attempt: int
    status: JobStatus
    values: dict[str, Any]


async def finish_many(
    sessions: SessionFactory, endings: Sequence[Ending], *, retention: timedelta
) -> list[dict[str, Any] | None]:
    """`finish` for several jobs in one transaction (one commit); for each, the job's row as
    it now stands (column values), or None if its attempt no longer owned the job (a job
    cancelled meanwhile keeps its cancellation). The rows come back with the update itself
    (RETURNING), so whoever waits for the job can be answered without reading it again; the
    update is stated on the table rather than through the ORM, which costs a third more, and
    run whole in one thread call on the blocking driver (`in_one_thread_call`)."""
    now = utcnow()

    def update_all(connection: Connection) -> list[dict[str, Any] | None]:
        applied: list[dict[str, Any] | None] = []
        for ending in endings:
            values = {
                "status": ending.status,
                "finished_at": now,
                "updated_at": now,
                "expires_at": now + retention,
                "eta_seconds": 0.0 if ending.status is JobStatus.succeeded else None,
                **ending.values,
            }
            bound = {f"{_VALUE}{name}": value for name, value in values.items()}
            done = connection.execute(
                _finish_statement(tuple(values)),
                {"job_id": ending.job_id, "attempt": ending.attempt, **bound},
            )
            row = done.one_or_none()
            applied.append(None if row is None else dict(row._mapping))
        return applied

    return await in_one_thread_call(sessions, update_all)


# Bound parameters may not share a column's name in an UPDATE's SET clause.
_VALUE = "value_"


@functools.cache
def _finish_statement(columns: tuple[str, ...]) -> Update:
    """The final update setting `columns`, its values bound: built and compiled once rather
    than for every job (building it cost more than SQLite's work)."""
    table = Job.metadata.tables[Job.__tablename__]
    return (
        update(table)
        .where(
            col(Job.id) == bindparam("job_id"),
            col(Job.status) == JobStatus.running,
            col(Job.attempts) == bindparam("attempt"),
        )
        .values({name: bindparam(f"{_VALUE}{name}") for name in columns})
        .returning(*table.columns)
    )


async def cancel(session: AsyncSession, job: Job, retention: timedelta) -> bool:
    """Cancel a queued or running job; False if it had already finished."""
    now = utcnow()
    cancelled = await session.exec(
        update(Job)
        .where(
            col(Job.id) == job.id,
            col(Job.status).in_([JobStatus.queued, JobStatus.running]),
        )
        .values(
            status=JobStatus.cancelled,
            finished_at=now,
            updated_at=now,
            expires_at=now + retention,
            eta_seconds=None,
        )
    )
    await session.refresh(job)
    return rowcount(cancelled) == 1


def first_line(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0]


async def beat(sessions: SessionFactory, job_id: str, attempt: int) -> bool:
    """Note that this attempt's worker is alive; False if the attempt no longer owns the job."""
    return any(await beat_many(sessions, [(job_id, attempt)]))


async def beat_many(sessions: SessionFactory, attempts: Sequence[tuple[str, int]]) -> list[bool]:
    """`beat` for several (job id, attempt) pairs in one transaction."""
    now = utcnow()
    beaten: list[bool] = []
    async with transaction(sessions) as session:
        for job_id, attempt in attempts:
            done = await session.exec(
                update(Job).where(owned(job_id, attempt)).values(heartbeat_at=now)
            )
            beaten.append(rowcount(done) == 1)
    return beaten


async def requeue(sessions: SessionFactory, job_id: str, *, refund: bool = False) -> None:
    """A running job whose worker died: back to the queue. With `refund`, the attempt its
    claim counted is given back (the job shared the worker with the one that killed it)."""
    values: dict[str, Any] = {"status": JobStatus.queued, "updated_at": utcnow()}
    if refund:
        values["attempts"] = col(Job.attempts) - 1  # running: claimed, so at least 1
    async with transaction(sessions) as session:
        await session.exec(
            update(Job)
            .where(col(Job.id) == job_id, col(Job.status) == JobStatus.running)
            .values(**values)
        )


def _last_dispatch() -> ColumnElement[datetime]:
    return func.coalesce(col(Job.dispatched_at), col(Job.created_at))


async def queued_jobs(
    sessions: SessionFactory, *, older_than: datetime | None = None
) -> Sequence[str]:
    """Ids of queued jobs, longest since dispatch first; with `older_than`, only those
    handed to an executor before then."""
    query = select(Job.id).where(col(Job.status) == JobStatus.queued)
    if older_than is not None:
        query = query.where(_last_dispatch() < older_than)
    async with sessions() as session:
        rows = await session.exec(query.order_by(_last_dispatch(), col(Job.created_at)))
        return list(rows.all())


async def requeue_interrupted(sessions: SessionFactory) -> Sequence[str]:
    """At start-up of the single-process deployment: every running job lost its worker.

    Returns the ids of all queued jobs, oldest first, to be submitted again.
    """
    async with transaction(sessions) as session:
        await session.exec(
            update(Job)
            .where(col(Job.status) == JobStatus.running)
            .values(status=JobStatus.queued, updated_at=utcnow())
        )
    return await queued_jobs(sessions)


async def mark_dispatched(
    sessions: SessionFactory, job_ids: Sequence[str], *, older_than: datetime
) -> Sequence[str]:
    """Note that these queued jobs are being handed to the executor again; returns those this
    call marked (another API process may have just done it for some)."""
    async with transaction(sessions) as session:
        rows = await session.exec(
            update(Job)
            .where(col(Job.id).in_(job_ids), col(Job.status) == JobStatus.queued)
            .where(_last_dispatch() < older_than)
            .values(dispatched_at=utcnow())
            .returning(col(Job.id))
        )
        return list(rows.scalars().all())


async def requeue_orphaned(sessions: SessionFactory, settings: Settings) -> Sequence[str]:
    """Running jobs whose worker stopped beating: queue them again, return their ids."""
    now = utcnow()
    async with transaction(sessions) as session:
        rows = await session.exec(
            update(Job)
            .where(_stale(settings, now))
            .values(status=JobStatus.queued, updated_at=now)
            .returning(col(Job.id))
        )
        return list(rows.scalars().all())
