"""Loaded by the worker pool's forkserver when it starts (`set_forkserver_preload`).

The forkserver is a child of the API, and every pool worker is forked from it. A SIGTERM or
SIGINT sent to the whole process group (Ctrl-C in a terminal, systemd stopping the service)
would end it, and its workers with it (they die with their parent): the running jobs would be
cut short whatever grace period the API grants them. So the forkserver ignores both, as the
workers do, and leaves the decision to the API, which ends the pool when it stops.

The API itself must keep its own handlers: nothing in the API imports this module, and it
acts only in the forkserver itself, a `python -c` process whose parent put its own pid in
`POOL_PARENT_PID_ENV` before starting it.

It also keeps pandas out of the forkserver, before the worker module (preloaded next) imports
the parser and pyarrow, so that no worker forked from it carries pandas (`service.without_pandas`).
"""

from __future__ import annotations

import os
import signal
import sys

from service.runner.executors.pool import POOL_PARENT_PID_ENV
from service.without_pandas import keep_pandas_out


def _in_forkserver() -> bool:
    started_by_pool = os.environ.get(POOL_PARENT_PID_ENV) == str(os.getppid())
    return (
        started_by_pool and sys.argv[:1] == ["-c"] and "multiprocessing.forkserver" in sys.modules
    )


def prepare_if_forkserver() -> None:
    if _in_forkserver():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        keep_pandas_out()


prepare_if_forkserver()
