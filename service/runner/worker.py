"""The entry points a worker process calls to run one job, or a batch of small ones.

Each worker process keeps one event loop and one database engine for its lifetime, so
many small jobs do not pay for connecting again.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import signal
import sys
from dataclasses import dataclass
from multiprocessing import forkserver
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.db import SessionFactory, create_engine, session_factory
from service.logs import configure_logging
from service.runner.execute import Finished, execute, execute_claimed, execute_many
from service.runner.lifecycle import ClaimedJob, claim_many

logger = logging.getLogger(__name__)


@dataclass
class _WorkerState:
    loop: asyncio.AbstractEventLoop
    engine: AsyncEngine
    sessions: SessionFactory


_states: dict[str, _WorkerState] = {}

# Parsing is batch work: on a busy machine the scheduler should prefer the API process.
# "idle" (SCHED_IDLE) parses only on CPU time nothing else wants, and any other process
# that wakes takes the CPU at once; "low" is a nice level, which still shares the CPU.
WORKER_NICENESS = 10
PR_SET_PDEATHSIG = 1


def _state_for(settings: Settings) -> _WorkerState:
    url = settings.sqlalchemy_url
    state = _states.get(url)
    if state is None:
        configure_logging(settings.log_level)
        loop = asyncio.new_event_loop()
        engine = create_engine(url, durable=False)
        state = _WorkerState(loop, engine, session_factory(engine))
        _states[url] = state
    return state


def run_job(job_id: str, settings: Settings, *, wait_for_owner: bool = False) -> Finished:
    """Run one job to completion in this process (blocking); see `execute`."""
    state = _state_for(settings)
    finished = state.loop.run_until_complete(
        execute(job_id, settings, state.sessions, wait_for_owner=wait_for_owner)
    )
    return finished


def run_claimed(row: dict[str, Any], settings: Settings, *, check: bool) -> Finished:
    """Run a job claimed when it was accepted (its row as recorded then); see
    `execute_claimed`."""
    state = _state_for(settings)
    job = ClaimedJob.from_row(row)
    return state.loop.run_until_complete(
        execute_claimed(job, settings, state.sessions, check=check)
    )


def run_jobs(job_ids: list[str], settings: Settings) -> Finished:
    """Run a batch of jobs in this process (blocking); see `execute_many`."""
    state = _state_for(settings)
    return state.loop.run_until_complete(execute_many(job_ids, settings, state.sessions))


def init_pool_process(settings: Settings) -> None:
    """Set up a worker process of the API's pool, and warm it up.

    - Parsing runs below the API's priority (`INGEST_WORKER_PRIORITY`), so status requests
      are never starved of CPU.
    - SIGINT and SIGTERM sent to the whole process group (Ctrl-C, systemd) are left to the
      API, which decides how long running jobs may go on.
    - The process dies with its parent (the pool's forkserver, which exits with the API), so
      a killed API leaves no worker parsing a job that the next start will run again.
    """
    os.nice(WORKER_NICENESS)
    if settings.worker_priority == "idle" and hasattr(os, "SCHED_IDLE"):
        # Inherited by the threads the parser starts; the nice level stays as the fallback.
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _release_forkserver()
    _die_with_parent()
    warm_up(settings)


# No job has this id (ids are UUIDs): claiming it changes nothing.
WARM_UP_JOB_ID = "warm-up"
WARM_UP_TIMEOUT_S = 2.0


def warm_up(settings: Settings) -> None:
    """Open the database connection and prepare the claim's statement before the first job:
    a fresh worker's first job waited about 40 ms for them (the engine, the connection and
    its pragmas, SQLAlchemy compiling the claim)."""
    state = _state_for(settings)

    async def connect() -> None:
        await claim_many(state.sessions, [WARM_UP_JOB_ID], settings)

    try:
        # Bounded: Celery kills a pool process that is not up within 4 s.
        state.loop.run_until_complete(asyncio.wait_for(connect(), WARM_UP_TIMEOUT_S))
    except Exception as exc:  # the database is locked or unreachable: the first job meets it
        logger.warning("worker warm-up failed", extra={"error": type(exc).__name__})
        _states.pop(settings.sqlalchemy_url, None)  # the first job starts from a clean state


def _release_forkserver() -> None:
    """Let the forkserver exit with the API.

    The forkserver stops once every copy of its "alive" pipe's write end is closed, and each
    process it forks inherits one (CPython 3.11-3.13). A worker holding it would keep the
    forkserver alive, while the worker itself waits for the forkserver to die.
    """
    server = forkserver._forkserver
    alive_fd = getattr(server, "_forkserver_alive_fd", None)
    if alive_fd is not None:
        os.close(alive_fd)
        server._forkserver_alive_fd = None  # type: ignore[attr-defined]


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)
