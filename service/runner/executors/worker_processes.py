"""Where the single-machine pool's workers come from: a forkserver, a small clean process with
the worker side of the service imported once, from which each worker is forked.

Starting it costs about as much CPU as the API's own imports (pyarrow, numpy, the parser).
`python -m service` starts it before it imports the API, so that on a machine with a spare
core the two run side by side rather than one after the other; the pool then finds it
running. Anything else that makes a pool (an app built in a test) starts it on first use.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
from multiprocessing.context import BaseContext

from service.runner.executors.pool import POOL_PARENT_PID_ENV

# Imported by the forkserver before it forks any worker; the first ignores group signals
# there and keeps pandas out (`service.runner.executors.forkserver`).
PRELOADED = [
    "service.runner.executors.forkserver",
    "service.runner.executors.pool",
    "service.runner.worker",
]


def worker_context() -> BaseContext:
    """The forkserver start method with `PRELOADED` to import; the pool's first worker starts
    the forkserver unless `start_forkserver` has."""
    # The forkserver knows its pool's owner by this (see `forkserver.py`).
    os.environ[POOL_PARENT_PID_ENV] = str(os.getpid())
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOADED)
    return context


def start_forkserver() -> None:
    """Start the forkserver now; it imports `PRELOADED` in the background while the caller
    goes on. Spawns processes: not for an event loop's thread."""
    worker_context()
    multiprocessing.forkserver.ensure_running()
