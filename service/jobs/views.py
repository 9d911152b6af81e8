"""Reading jobs for clients, and waiting for them to change.

Status polls are the hottest path of the service, so each process keeps a short-lived
snapshot of every job it was asked about, with its JSON already rendered: a burst of polls
costs one database read per `FRESH_S`, and the read that renews a snapshot runs in the
background while the snapshot keeps being served (for as long again), so polls do not queue
behind it. Changes made in this process (a cancel, a job that
finished in the local pool) drop the snapshot and wake the waiters at once. Changes made by
other processes (pool workers writing progress, Celery workers, other API processes) are
pushed by PostgreSQL as they commit (`notifications.py`); on SQLite, the snapshots' short
life and the waiters' rechecks catch them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from typing import Any

from service.db import SessionFactory
from service.errors import NotFound
from service.jobs import queries
from service.models import Job, JobPublic

logger = logging.getLogger(__name__)
# How long a snapshot may be served: unfinished jobs change with every progress write;
# finished ones only when deleted or expired.
FRESH_S = 0.1
FRESH_DONE_S = 1.0
MAX_SNAPSHOTS = 10_000
MAX_READS = 3  # reads of one job in a row, while changes keep arriving during each
# While PostgreSQL's notifications are heard, every change is pushed: a waiter reads its job
# again only this often, in case one went astray.
LISTENING_RECHECK_S = 5.0


def etag_of(job: JobPublic) -> str:
    """Changes whenever anything in the job resource can have changed."""
    return f'"{job.status.value}-{job.updated_at.timestamp():.6f}"'


@dataclass(frozen=True)
class Snapshot:
    job: JobPublic
    owner: str
    body: bytes
    etag: str
    taken_at: float

    def fresh(self, now: float) -> bool:
        return now - self.taken_at < self._fresh_for

    def servable(self, now: float) -> bool:
        """Past fresh but served while one read refreshes it: polls never queue behind it."""
        return now - self.taken_at < 2 * self._fresh_for

    @property
    def _fresh_for(self) -> float:
        return FRESH_DONE_S if self.job.done else FRESH_S


class JobViews:
    """The job resources this process serves, and wake-ups when they change."""

    def __init__(self, sessions: SessionFactory, *, recheck_s: float = 0.25) -> None:
        self._sessions = sessions
        self._recheck_s = recheck_s
        self._snapshots: OrderedDict[str, Snapshot] = OrderedDict()
        self._loading: dict[str, asyncio.Future[Snapshot | None]] = {}
        self._waiters: defaultdict[str, set[asyncio.Event]] = defaultdict(set)
        self._refreshing: set[asyncio.Task[Snapshot | None]] = set()
        self._heard = 0
        self._heard_for: OrderedDict[str, int] = OrderedDict()
        self._closed = False
        self._listening = False

    async def get(self, job_id: str, owner: str) -> Snapshot:
        """The caller's job, at most a moment old; 404 if unknown or someone else's."""
        snapshot = self._snapshots.get(job_id)
        if snapshot is not None:
            now = time.monotonic()
            if not snapshot.fresh(now):
                if snapshot.servable(now):
                    self._refresh(job_id)
                else:
                    snapshot = None
        if snapshot is None:
            snapshot = await self._load_once(job_id)
        if snapshot is None or snapshot.owner != owner:
            raise NotFound(f"No job {job_id!r}.")
        return snapshot

    def _refresh(self, job_id: str) -> None:
        """Read the job again in the background, unless a read of it is under way."""
        if job_id in self._loading or self._closed:
            return
        refresh = asyncio.create_task(self._load_once(job_id))
        self._refreshing.add(refresh)
        refresh.add_done_callback(self._refreshed)

    async def close(self) -> None:
        """Stop the background reads (the service is stopping and its database closing)."""
        self._closed = True
        for refresh in list(self._refreshing):
            refresh.cancel()
        await asyncio.gather(*self._refreshing, return_exceptions=True)

    def _refreshed(self, refresh: asyncio.Task[Snapshot | None]) -> None:
        self._refreshing.discard(refresh)
        if not refresh.cancelled() and refresh.exception() is not None:
            # The snapshot ages out; the next request reads the job itself and meets the error.
            logger.debug("refreshing a job snapshot failed", exc_info=refresh.exception())

    async def _load_once(self, job_id: str) -> Snapshot | None:
        """Read the job; concurrent callers for the same job share one database read."""
        loading = self._loading.get(job_id)
        if loading is not None:
            return await asyncio.shield(loading)
        loading = asyncio.get_running_loop().create_future()
        self._loading[job_id] = loading
        try:
            snapshot = await self._load(job_id)
        except BaseException as exc:
            loading.set_exception(exc)
            loading.exception()  # retrieved here, so no waiter-less warning is logged
            raise
        finally:
            del self._loading[job_id]
        loading.set_result(snapshot)
        return snapshot

    async def _load(self, job_id: str) -> Snapshot | None:
        """Read the job and keep it; read again if a change was heard during the read, which
        may have begun before that change was committed."""
        for _ in range(MAX_READS):
            mark = self.mark()
            async with self._sessions() as session:
                row = await queries.get_job(session, job_id)
            if not self.changed_since(job_id, mark):
                break
        if row is None:
            self._snapshots.pop(job_id, None)
            return None
        return self._keep(row)

    def put(self, row: dict[str, Any]) -> None:
        """The job's row as this process just learnt it (a worker of its pool left it so).
        Whoever reads or waits on the job is answered from it without reading it again;
        for a job nobody asked about, rendering it would cost more than the rest of a small
        job's answer, so it only counts as changed."""
        job_id = row["id"]
        if not (self.watched(job_id) or job_id in self._snapshots):
            self.changed(job_id)  # a read under way, if any, reads again
            return
        self._heard_of(job_id)
        self._keep(queries.read_only_job(**row))
        self._wake(job_id)

    def _keep(self, row: Job) -> Snapshot:
        job = JobPublic.from_job(row)
        snapshot = Snapshot(
            job=job,
            owner=row.owner,
            body=job.model_dump_json().encode(),
            etag=etag_of(job),
            taken_at=time.monotonic(),
        )
        self._snapshots[row.id] = snapshot
        self._snapshots.move_to_end(row.id)
        while len(self._snapshots) > MAX_SNAPSHOTS:
            self._snapshots.popitem(last=False)
        return snapshot

    @staticmethod
    def unkept(job: JobPublic, owner: str) -> Snapshot:
        """A snapshot of a job as its caller holds it, kept nowhere (its body is not rendered)."""
        return Snapshot(job, owner, b"", etag_of(job), time.monotonic())

    def changed(self, job_id: str) -> None:
        """The job changed (here, or in another process that said so): forget its snapshot
        and wake everyone waiting on it."""
        self._heard_of(job_id)
        self._snapshots.pop(job_id, None)
        self._wake(job_id)

    def _heard_of(self, job_id: str) -> None:
        self._heard += 1
        self._heard_for[job_id] = self._heard
        self._heard_for.move_to_end(job_id)
        while len(self._heard_for) > MAX_SNAPSHOTS:
            self._heard_for.popitem(last=False)

    def mark(self) -> int:
        """A point in the changes heard, for `changed_since`."""
        return self._heard

    def changed_since(self, job_id: str, mark: int) -> bool:
        """A change of the job was heard after `mark` (or may have been: too long ago to tell)."""
        heard = self._heard_for.get(job_id)
        if heard is not None:
            return heard > mark
        oldest = next(iter(self._heard_for.values()), 0)
        return len(self._heard_for) >= MAX_SNAPSHOTS and oldest > mark

    async def reload(self, job_id: str) -> Snapshot | None:
        """Read the job now (it just changed here), keep it, and wake everyone waiting on it."""
        snapshot = await self._load_once(job_id)
        self._wake(job_id)
        return snapshot

    def listening(self, heard: bool) -> None:
        """Changes made elsewhere are heard as they commit (True) or no longer (False). Either
        way, changes may have gone unheard meanwhile: every job is read again, and waiters
        look once more now."""
        self._listening = heard
        self.forget_all()

    def forget_all(self) -> None:
        """Changes may have gone unheard (notifications were lost): read every job again."""
        for job_id in list(self._loading):
            self.changed(job_id)
        self._snapshots.clear()
        for job_id in list(self._waiters):
            self._wake(job_id)

    def _wake(self, job_id: str) -> None:
        for event in self._waiters.get(job_id, ()):
            event.set()

    def watched(self, job_id: str) -> bool:
        """Someone is waiting for this job to change (a long-poll or an event stream)."""
        return bool(self._waiters.get(job_id))

    async def _wait(self, job_id: str, timeout: float) -> None:
        event = asyncio.Event()
        self._waiters[job_id].add(event)
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            self._waiters[job_id].discard(event)
            if not self._waiters[job_id]:
                del self._waiters[job_id]

    async def next_version(
        self,
        job_id: str,
        owner: str,
        *,
        since: str | None,
        timeout: float,
        until_done: bool = False,
        known: Snapshot | None = None,
        known_at: int | None = None,
    ) -> Snapshot:
        """The job once its ETag differs from `since` (or it is done), or after `timeout`.

        `known`: the job as the caller made it (an upload's new row) at `known_at` (a
        `mark()`), taken as the first look instead of a read unless a change was heard since."""
        deadline = time.monotonic() + timeout
        if known is not None and known_at is not None and self.changed_since(job_id, known_at):
            known = None
        looked_at = self.mark() if known_at is None else known_at  # when `known` was taken
        while True:
            if known is not None:
                snapshot, known = known, None
            else:
                looked_at = self.mark()
                snapshot = await self.get(job_id, owner)
            changed = since is not None and snapshot.etag != since
            if snapshot.job.done or (changed and not until_done):
                return snapshot
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return snapshot
            if self.changed_since(job_id, looked_at):
                continue  # a change was heard while this look was made: look again now
            recheck = self._recheck_s
            if self._listening:
                recheck = max(recheck, LISTENING_RECHECK_S)
            await self._wait(job_id, min(recheck, remaining))
