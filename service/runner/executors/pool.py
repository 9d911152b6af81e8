"""A fixed set of worker processes, each running one task at a time.

Unlike `concurrent.futures.ProcessPoolExecutor`, where one worker that dies breaks the whole
pool and fails every task in flight, a worker that dies here fails only the task it was
running (`WorkerDied`) and is replaced; the other workers go on with theirs. Each worker is
reached through a pipe of its own, so the pool always knows which task a dead worker held.
The event loop waits on the pipes and the processes' sentinels directly, without threads.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import struct
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import Any

logger = logging.getLogger(__name__)

# The pool's owner puts its pid here before the forkserver starts (see `forkserver.py`).
POOL_PARENT_PID_ENV = "INGEST_POOL_PARENT_PID"


class WorkerDied(Exception):
    """The worker process running the task exited before it answered."""


def _serve(connection: Connection, initializer: Callable[[], None]) -> None:
    """A worker's life: run each task sent over `connection`, send back its outcome."""
    initializer()
    while True:
        try:
            function, args = connection.recv()
        except EOFError:
            return
        try:
            outcome: tuple[bool, Any] = (True, function(*args))
        except Exception as exc:
            outcome = (False, exc)
        try:
            connection.send(outcome)
        except Exception as exc:  # the exception itself would not pickle
            connection.send((False, RuntimeError(f"{type(exc).__name__}: {exc}")))


class _Worker:
    def __init__(self, context: BaseContext, initializer: Callable[[], None]) -> None:
        self.connection, child_end = context.Pipe()
        self.process: BaseProcess = context.Process(  # type: ignore[attr-defined]
            target=_serve, args=(child_end, initializer), daemon=True
        )
        self.process.start()
        child_end.close()

    def alive(self) -> bool:
        return self.process.is_alive()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()

    def close(self) -> None:
        self.process.join(timeout=5)
        self.connection.close()


async def _readable(*fds: int) -> None:
    """Wait until one of `fds` can be read (data, end of file, or a process's exit)."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    for fd in fds:
        loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        for fd in fds:
            loop.remove_reader(fd)


async def _read_exactly(fd: int, size: int, sentinel: int) -> bytes:
    """`size` bytes from the non-blocking `fd`, waiting on the loop while they arrive."""
    data = bytearray()
    while len(data) < size:
        try:
            chunk = os.read(fd, size - len(data))
        except BlockingIOError:
            if wait([sentinel], 0):
                raise EOFError from None  # the worker exited mid-message
            await _readable(fd, sentinel)
            continue
        if not chunk:
            raise EOFError  # the worker's end is closed: it died
        data += chunk
    return bytes(data)


async def _receive(connection: Connection, sentinel: int) -> Any:
    """The next message a worker sent (`Connection.send`'s framing), read on the loop.

    A message larger than 16 KiB (a batch's finished rows) is written in two parts, and a
    blocking `recv` on the loop would wait for the second, while a non-blocking one (uvloop
    leaves the pipe non-blocking once it has watched it) fails between them."""
    fd = connection.fileno()
    os.set_blocking(fd, False)
    (size,) = struct.unpack("!i", await _read_exactly(fd, 4, sentinel))
    if size == -1:
        (size,) = struct.unpack("!Q", await _read_exactly(fd, 8, sentinel))
    return pickle.loads(await _read_exactly(fd, size, sentinel))


class ProcessPool:
    """`size` worker processes from `context`, each set up by `initializer` when it starts."""

    def __init__(self, size: int, context: BaseContext, initializer: Callable[[], None]) -> None:
        self._size = size
        self._context = context
        self._initializer = initializer
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._workers: set[_Worker] = set()
        self._closed = False

    async def start(self) -> None:
        """Start every worker now, so the first tasks do not wait for them."""
        for _ in range(self._size):
            self._idle.put_nowait(await self._new_worker())

    async def _new_worker(self) -> _Worker:
        # The first start may start the forkserver, or wait for it to have imported the
        # service: not on the loop.
        worker = await asyncio.to_thread(_Worker, self._context, self._initializer)
        self._workers.add(worker)
        return worker

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """`function(*args)` in a worker; raises what it raised, or WorkerDied."""
        worker = await self._idle.get()
        try:
            if not worker.alive():
                self._retire(worker)
                worker = await self._new_worker()
            return await self._run_on(worker, function, args)
        finally:
            await self._give_back(worker)

    async def _run_on(self, worker: _Worker, function: Callable[..., Any], args: Any) -> Any:
        outcome: tuple[bool, Any] | None = None
        try:
            os.set_blocking(worker.connection.fileno(), True)  # a task is sent whole
            worker.connection.send((function, args))
            outcome = await _receive(worker.connection, worker.process.sentinel)
        except (EOFError, OSError):  # the pipe broke: the worker is gone
            pass
        except asyncio.CancelledError:
            worker.kill()  # abandoned mid-task: the worker's state is unknown
            raise
        if outcome is None:
            await asyncio.to_thread(worker.process.join, 5)
            raise WorkerDied(f"the worker process exited with code {worker.process.exitcode}")
        ok, value = outcome
        if not ok:
            raise value
        return value

    async def _give_back(self, worker: _Worker) -> None:
        if self._closed:
            return
        if worker.alive():
            self._idle.put_nowait(worker)
            return
        self._retire(worker)
        try:
            self._idle.put_nowait(await self._new_worker())
        except Exception:
            logger.exception("could not start a worker process")

    def _retire(self, worker: _Worker) -> None:
        self._workers.discard(worker)
        worker.connection.close()
        worker.process.join(timeout=0)

    def kill(self) -> None:
        """End every worker at once (they ignore SIGTERM: it belongs to the API)."""
        self._closed = True
        for worker in self._workers:
            worker.kill()

    async def close(self) -> None:
        """Kill the workers and wait for them to be gone."""
        self.kill()
        workers, self._workers = list(self._workers), set()
        await asyncio.gather(*(asyncio.to_thread(worker.close) for worker in workers))
