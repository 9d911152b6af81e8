"""Converting a result once per job and format, in a process of its own, kept on disk.

Requests in this process for the same file await one task; API processes sharing the data
dir take turns through a file lock beside the result; whoever comes second finds the file
made. `python -m service.formats` does the work (Arrow's threads and memory live and die
there), so neither the event loop nor the API process's memory carries it: the spare one
started ahead of need when there is one (`spare.py`), else a fresh one.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from service.errors import InsufficientStorage, NotFound
from service.formats.registry import Format
from service.formats.spare import request_bytes
from service.jobs.spare import SpareConverter

logger = logging.getLogger(__name__)

LOCK_POLL_S = 0.1
EXIT_DISK_FULL = 5  # service/formats/__main__.py


class ConversionFailed(Exception):
    """The converter process failed for another reason than a full disk: a bug, or a result
    that is not NDJSON. Nothing was kept; the next request tries again."""


class Conversions:
    """This process's conversions in flight, one task per destination file; `spare`, when
    given, keeps a converter process ready for them."""

    def __init__(self, spare: SpareConverter | None = None) -> None:
        self._tasks: dict[Path, asyncio.Task[bool]] = {}
        self._spare = spare

    async def ensure(
        self,
        result: Path,
        columns: list[dict[str, object]],
        fmt: Format,
        destination: Path,
        made: Callable[[], None],
    ) -> None:
        """Returns once `destination` exists; converts `result` to it unless it does. `made`
        is called once for each conversion this process ran. A request that goes away leaves
        the conversion running for the others (and for the next request)."""
        task = self._tasks.get(destination)
        if task is None:
            task = asyncio.create_task(
                _convert_once(result, columns, fmt, destination, self._spare)
            )
            self._tasks[destination] = task

            def finished(done: asyncio.Task[bool]) -> None:
                self._tasks.pop(destination, None)
                if not done.cancelled() and done.exception() is None and done.result():
                    made()

            task.add_done_callback(finished)
        await asyncio.shield(task)


async def _convert_once(
    result: Path,
    columns: list[dict[str, object]],
    fmt: Format,
    destination: Path,
    spare: SpareConverter | None,
) -> bool:
    if await asyncio.to_thread(destination.exists):
        return False
    try:
        lock = await asyncio.to_thread(_open_lock, destination)
    except FileNotFoundError:
        raise NotFound("The job is being deleted; its result is gone.") from None
    try:
        while not _try_lock(lock):
            await asyncio.sleep(LOCK_POLL_S)
        if await asyncio.to_thread(destination.exists):
            return False
        # Holding the lock, any temporary file of this destination is from a converter that
        # died (kill -9, power cut): nobody else can be writing it.
        await asyncio.to_thread(_remove_temporaries, destination)
        await _run_converter(result, columns, fmt, destination, spare)
        return True
    finally:
        os.close(lock)  # closing drops the lock


def _open_lock(destination: Path) -> int:
    return os.open(destination.parent / f".{destination.name}.lock", os.O_RDWR | os.O_CREAT, 0o600)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _remove_temporaries(destination: Path) -> None:
    for stale in destination.parent.glob(f".{destination.name}.*.tmp"):
        stale.unlink(missing_ok=True)


async def _run_converter(
    result: Path,
    columns: list[dict[str, object]],
    fmt: Format,
    destination: Path,
    spare: SpareConverter | None,
) -> None:
    started = time.monotonic()
    process = None
    if spare is not None:
        process = await spare.take(request_bytes(fmt.name, result, destination, columns))
    from_spare = process is not None
    if process is None:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "service.formats",
            fmt.name,
            str(result),
            str(destination),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
    try:
        # A spare has its request already; a fresh converter gets the columns on stdin.
        _, stderr = await process.communicate(None if from_spare else orjson.dumps(columns))
    except BaseException:
        # Cancelled (the service is stopping): the converter removes its temporary file.
        process.kill()
        await process.wait()
        raise
    finally:
        if spare is not None:
            spare.prepare()  # the next spare, now that this conversion has the cores no more
    reason = stderr.decode(errors="replace").strip()[-500:]
    if process.returncode == EXIT_DISK_FULL:
        raise InsufficientStorage(
            f"The disk is full: the result could not be converted ({reason})."
        )
    if process.returncode != 0:
        if not await asyncio.to_thread(result.parent.exists):
            raise NotFound("The job is being deleted; its result is gone.")
        raise ConversionFailed(f"converting to {fmt.name} failed ({process.returncode}): {reason}")
    size = (await asyncio.to_thread(os.stat, destination)).st_size
    logger.info(
        "result converted",
        extra={
            "job_id": result.parent.name,
            "format": fmt.name,
            "bytes": size,
            "seconds": round(time.monotonic() - started, 3),
            "spare": from_spare,
            "pid": process.pid,
        },
    )
