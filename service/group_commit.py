"""Group commit: work handed in while one group is being done joins the next group.

Under a burst of callers one trip to a thread, one fsync or one transaction then serves many
of them, while a caller alone goes at once, in a group of one, with no added wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")

Outcomes = Sequence[BaseException | None]
"""What became of each item of a group, in its order: None, or the exception its caller gets."""


class GroupCommit(Generic[T]):
    """Items handed to `submit` are done by `commit`, a group at a time, in arrival order."""

    def __init__(self, commit: Callable[[list[T]], Awaitable[Outcomes]]) -> None:
        self._commit = commit
        self._waiting: list[tuple[T, asyncio.Future[None]]] = []
        self._running: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> None:
        """Return once the group holding `item` is done, or raise what `commit` said of it.

        A caller that is cancelled meanwhile does not take its item back: it is done anyway.
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, done))
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._commit_all())
        await asyncio.shield(done)

    async def _commit_all(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting, []
            outcomes: Outcomes
            try:
                outcomes = await self._commit([item for item, _ in group])
            except Exception as exc:  # every caller of the group hears of it
                outcomes = [exc] * len(group)
            for (_, done), outcome in zip(group, outcomes, strict=True):
                if done.done():
                    continue
                if outcome is None:
                    done.set_result(None)
                else:
                    done.set_exception(outcome)
