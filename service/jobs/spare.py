"""One converter process kept ready, so that a conversion does not wait for Python to start,
pyarrow to load and Arrow's kernels to warm up (`python -m service.formats --spare`).

The spare is started with the app and again each time a conversion ends (not as soon as one
is taken: on two cores the next spare's start-up, about 0.7 s of CPU, slowed the conversion
that took the spare by more than the spare saved it). It still does exactly one conversion
and exits, so Arrow's memory and threads go with it. A spare that is still
warming up is left for the next conversion; one that died, or dies before it acknowledges
the request, is replaced by a fresh process: the conversion never fails for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from dataclasses import dataclass

from service.formats.spare import READY, TAKEN

logger = logging.getLogger(__name__)

SPARE_COMMAND = (sys.executable, "-m", "service.formats", "--spare")
STOP_WAIT_S = 5.0  # a ready spare whose stdin is closed exits at once

Process = asyncio.subprocess.Process


@dataclass
class _Spare:
    process: Process
    ready: asyncio.Task[bool]  # the spare said `ready` (False: it ended before that)


class SpareConverter:
    """At most one converter process started ahead of need, for this event loop."""

    def __init__(self) -> None:
        self._next: asyncio.Task[_Spare | None] | None = None
        self._stopped = False

    def prepare(self) -> None:
        """Starts a spare unless one is there (or the keeper was stopped)."""
        if self._next is None and not self._stopped:
            self._next = asyncio.create_task(_spawn(), name="ingest-spare-converter")

    async def take(self, request: bytes) -> Process | None:
        """The spare converter, `request` handed over and acknowledged, or None when no spare
        is ready (then start a fresh converter). Call `prepare` once the conversion ends."""
        task = self._next
        if task is None or not task.done():
            return None
        self._next = None
        try:
            spare = task.result()
        except Exception:
            logger.exception("spare converter not started")
            return None
        if spare is not None and not spare.ready.done():
            self._next = task
            return None  # warming up: it will serve the next conversion
        if spare is None:
            return None
        try:
            ready = spare.ready.result()
        except Exception:
            ready = False
        if not ready or spare.process.returncode is not None:
            await _end(spare)
            logger.warning(
                "spare converter died before it was used",
                extra={"pid": spare.process.pid, "returncode": spare.process.returncode},
            )
            return None
        return spare.process if await _hand_over(spare, request) else None

    async def stop(self) -> None:
        """Ends the spare, if any, and starts no other: nothing is left behind."""
        self._stopped = True
        task, self._next = self._next, None
        if task is None:
            return
        if not task.done():
            task.cancel()  # cancelled while starting: asyncio kills what it started
        try:
            spare = await task
        except asyncio.CancelledError:
            return
        if spare is None:
            return
        if spare.ready.done() and spare.process.stdin is not None:
            spare.process.stdin.close()  # it reads an empty request and exits 0
            try:
                await asyncio.wait_for(spare.process.wait(), STOP_WAIT_S)
            except TimeoutError:
                logger.warning("spare converter did not stop; killing it")
        await _end(spare)  # one still warming up is killed: it holds nothing yet


async def _spawn() -> _Spare | None:
    try:
        process = await asyncio.create_subprocess_exec(
            *SPARE_COMMAND,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        logger.warning("spare converter not started", extra={"error": str(exc)})
        return None
    return _Spare(process, asyncio.create_task(_said(process, READY)))


async def _said(process: Process, line: bytes) -> bool:
    assert process.stdout is not None
    said = await process.stdout.readline() == line
    if said:
        logger.debug("spare converter %s", line.decode().strip(), extra={"pid": process.pid})
    return said


async def _hand_over(spare: _Spare, request: bytes) -> bool:
    """Whether the spare took the request; a spare that did not is ended."""
    stdin = spare.process.stdin
    assert stdin is not None
    try:
        stdin.write(request)
        await stdin.drain()
        stdin.close()
        taken = await _said(spare.process, TAKEN)
    except (BrokenPipeError, ConnectionResetError):
        taken = False
    except BaseException:
        await _end(spare)
        raise
    if not taken:
        logger.info("spare converter gone; converting in a fresh process")
        await _end(spare)
    return taken


async def _end(spare: _Spare) -> None:
    """Kills the spare (if it still runs) and reaps it."""
    with contextlib.suppress(ProcessLookupError):
        if spare.process.returncode is None:
            spare.process.kill()
    await spare.process.wait()
    with contextlib.suppress(asyncio.CancelledError):
        await spare.ready
