"""Group commit for new jobs: every job accepted while one commit runs joins the next one.

Each commit fsyncs the database; under many concurrent uploads one fsync then covers many
jobs, and a single upload still commits at once, with no added delay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from service.db import SessionFactory, in_one_thread_call, is_disk_full, is_transient
from service.errors import InsufficientStorage, ServiceUnavailable
from service.models import Job

RETRY_AFTER_S = 5
_TABLE = Job.metadata.tables[Job.__tablename__]
_COLUMNS = tuple(_TABLE.columns)


def _refusal(exc: Exception) -> Exception:
    """What the client is told when its job could not be recorded (nothing was)."""
    if is_disk_full(exc):
        return InsufficientStorage("The disk is full: the upload could not be recorded.")
    if is_transient(exc):
        return ServiceUnavailable(
            "The database is unavailable; try again later.",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    return exc


class JobRecorder:
    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions
        self._waiting: list[tuple[Job, asyncio.Future[None]]] = []
        self._committing: asyncio.Task[None] | None = None

    async def record(self, job: Job) -> None:
        """Return once `job` is committed; raises IntegrityError if its row conflicts,
        InsufficientStorage if the disk is full, ServiceUnavailable if the database is.

        If the caller is cancelled, the job is still committed: its upload is already stored.
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((job, done))
        if self._committing is None or self._committing.done():
            self._committing = asyncio.create_task(self._commit_all())
        await asyncio.shield(done)

    async def _commit_all(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                await self._commit([job for job, _ in batch])
            except IntegrityError:
                # One row conflicts (an idempotency key raced): find it, commit the others.
                for job, done in batch:
                    await self._commit_one(job, done)
                continue
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(_refusal(exc))
                continue
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

    async def _commit(self, jobs: Sequence[Job]) -> None:
        # One INSERT for the batch, stated on the table and run whole in one thread call: the
        # ORM's unit of work over the asyncio driver took about 2 ms for a single upload.
        rows = [{column.name: getattr(job, column.name) for column in _COLUMNS} for job in jobs]
        await in_one_thread_call(self._sessions, lambda db: db.execute(insert(_TABLE), rows))

    async def _commit_one(self, job: Job, done: asyncio.Future[None]) -> None:
        try:
            await self._commit([job])
        except IntegrityError as exc:
            if not done.done():
                done.set_exception(exc)
            return
        except Exception as exc:
            if not done.done():
                done.set_exception(_refusal(exc))
            return
        if not done.done():
            done.set_result(None)
