"""Where jobs run: in this process's worker pool (`inprocess`), or on Celery workers
(`celery`, with `celery_app` the workers' side). This module only says what an executor
offers; `service.main` chooses one, so nothing that merely holds an executor loads either."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from service.models import Job


class Executor(Protocol):
    """Runs submitted jobs somewhere; submitting never waits for the job itself."""

    async def start(self) -> None: ...

    async def submit(self, job_id: str) -> None:
        """Hand the job over; never fails: what cannot be handed over now is kept and retried."""
        ...

    def can_claim_on_accept(self) -> bool:
        """Whether a job accepted now may be recorded already claimed (running, first
        attempt) and handed over with `submit_claimed`: a worker of this process would start
        it at once, so its claim's own transaction can be saved."""
        ...

    async def submit_claimed(self, job: Job) -> None:
        """Hand over a job recorded already claimed; it runs next, under that claim."""
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


JobDone = Callable[[str, dict[str, Any] | None], Awaitable[None]]
"""Hears of a job run in this process's pool: its id, and its row as the worker left it when
it succeeded (None otherwise: the row is to be read)."""
