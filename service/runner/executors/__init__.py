"""Where jobs run: in this process's worker pool (`inprocess`), or on Celery workers
(`celery`, with `celery_app` the workers' side). This module only says what an executor
offers; `service.main` chooses one, so nothing that merely holds an executor loads either."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol


class Executor(Protocol):
    """Runs submitted jobs somewhere; submitting never waits for the job itself."""

    async def start(self) -> None: ...

    async def submit(self, job_id: str) -> None:
        """Hand the job over; never fails: what cannot be handed over now is kept and retried."""
        ...

    async def missing(self, queued: Sequence[str], total: int) -> Sequence[str]:
        """Of `queued` (jobs longest since their dispatch first, out of `total` queued jobs),
        those this executor may not hold: they are to be submitted again."""
        ...

    def pause(self) -> None:
        """Start no more jobs (shutdown has begun)."""

    async def stop(self, grace_s: float) -> None: ...

    async def ready(self) -> bool:
        """Able to run jobs: the pool is up, or the broker answers."""
        ...


JobDone = Callable[[str], Awaitable[None]]
