"""Ending the work handed to threads when a parse stops early."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


async def cancel_and_wait(futures: Iterable[asyncio.Future[Any]]) -> None:
    """Cancels each future, then waits for all of them: a block already running in a thread
    still finishes, so the files it uses must stay open until then."""
    unfinished = list(futures)
    for future in unfinished:
        future.cancel()
    if unfinished:
        await asyncio.wait(unfinished)
