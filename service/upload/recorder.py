"""Group commit for new jobs: every job accepted while one commit runs joins the next one.

Each commit fsyncs the database; under many concurrent uploads one fsync then covers many
jobs, and a single upload still commits at once, with no added delay.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from service.db import SessionFactory, in_one_thread_call, is_disk_full, is_transient
from service.errors import InsufficientStorage, ServiceUnavailable
from service.group_commit import GroupCommit
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
        self._group: GroupCommit[Job] = GroupCommit(self._commit_group)

    async def record(self, job: Job) -> None:
        """Return once `job` is committed; raises IntegrityError if its row conflicts,
        InsufficientStorage if the disk is full, ServiceUnavailable if the database is.

        If the caller is cancelled, the job is still committed: its upload is already stored.
        """
        await self._group.submit(job)

    async def _commit_group(self, jobs: list[Job]) -> list[Exception | None]:
        try:
            await self._commit(jobs)
        except IntegrityError:
            # One row conflicts (an idempotency key raced): find it, commit the others.
            return [await self._commit_one(job) for job in jobs]
        except Exception as exc:
            return [_refusal(exc)] * len(jobs)
        return [None] * len(jobs)

    async def _commit(self, jobs: Sequence[Job]) -> None:
        # One INSERT for the batch, stated on the table and run whole in one thread call: the
        # ORM's unit of work over the asyncio driver took about 2 ms for a single upload.
        rows = [{column.name: getattr(job, column.name) for column in _COLUMNS} for job in jobs]
        await in_one_thread_call(self._sessions, lambda db: db.execute(insert(_TABLE), rows))

    async def _commit_one(self, job: Job) -> Exception | None:
        try:
            await self._commit([job])
        except IntegrityError as exc:
            return exc
        except Exception as exc:
            return _refusal(exc)
        return None
