"""Thread pools shared by every parse in a process.

Starting and joining a parse's own pools cost a 1 KB file more than parsing it (measured: about
1 ms of the 4 ms of CPU and half the wall time), and a worker parses thousands of small files.
Each parse still gets the guarantee a pool of its own gave: when it ends, nothing it handed to
a thread is still running, so the files and buffers that work uses can be closed.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")

# Work on at most this many bytes is done on the event loop instead: a thread's round trip
# costs more than parsing or writing them (parsing runs only in worker processes, whose
# loops have little else to do).
ON_THE_LOOP_BYTES = 4096

_pools: dict[str, ThreadPoolExecutor] = {}
_lock = threading.Lock()


def _forget_pools_after_fork() -> None:
    # A forked child has none of its parent's threads: it makes pools of its own.
    global _lock
    _pools.clear()
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pools_after_fork)


def _shared_pool(name: str, threads: int) -> ThreadPoolExecutor:
    with _lock:
        pool = _pools.get(name)
        if pool is None:
            pool = _pools[name] = ThreadPoolExecutor(threads, thread_name_prefix=name)
        return pool


def run_here(function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """Runs `function(*args)` now, on the event loop, as a finished future: its result, or
    its exception, is taken in turn with the futures of the work handed to threads."""
    future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
    try:
        future.set_result(function(*args))
    except Exception as exc:
        future.set_exception(exc)
    return future


class ParseThreads:
    """One parse's share of the process's pool named `name` (made on first use)."""

    def __init__(self, name: str, threads: int) -> None:
        self._pool = _shared_pool(name, threads)
        self._pending: set[Future[Any]] = set()

    def run(self, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Runs `function(*args)` in a thread; the future is the event loop's."""
        work = self._pool.submit(function, *args)
        self._pending.add(work)
        work.add_done_callback(self._pending.discard)
        return asyncio.wrap_future(work)

    def __enter__(self) -> ParseThreads:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Drops the work not started yet and waits for the work running, as a pool's own
        shutdown did (that work is short: one block)."""
        for work in list(self._pending):
            work.cancel()
        wait(list(self._pending))
