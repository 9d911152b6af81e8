"""The entry point a worker process calls to run one job.

Each worker process keeps one event loop and one database engine for its lifetime, so
many small jobs do not pay for connecting again.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from service import runner
from service.config import Settings
from service.db import create_engine, session_factory
from service.logs import configure_logging


@dataclass
class _WorkerState:
    loop: asyncio.AbstractEventLoop
    engine: AsyncEngine
    sessions: runner.Sessions


_states: dict[str, _WorkerState] = {}

# Parsing is batch work: on a busy machine the scheduler should prefer the API process.
WORKER_NICENESS = 19


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


def run_job(job_id: str, settings: Settings) -> None:
    """Run one job to completion in this process (blocking)."""
    state = _state_for(settings)
    state.loop.run_until_complete(runner.execute(job_id, settings, state.sessions))


def lower_priority() -> None:
    """Run parsing below the API's priority, so status requests are never starved of CPU."""
    os.nice(WORKER_NICENESS)


def warm_up() -> None:
    """Nothing: calling it makes the pool start this process ahead of the first job."""
