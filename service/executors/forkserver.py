"""Loaded by the worker pool's forkserver when it starts (`set_forkserver_preload`).

The forkserver is a child of the API, and every pool worker is forked from it. A SIGTERM or
SIGINT sent to the whole process group (Ctrl-C in a terminal, systemd stopping the service)
would end it, and its workers with it (they die with their parent): the running jobs would be
cut short whatever grace period the API grants them. So the forkserver ignores both, as the
workers do, and leaves the decision to the API, which ends the pool when it stops.

The API itself must keep its own handlers, so this acts only in a process whose parent put
its own pid in `PARENT_PID_ENV` before starting the forkserver.
"""

from __future__ import annotations

import os
import signal

PARENT_PID_ENV = "INGEST_POOL_PARENT_PID"


def ignore_group_signals_if_forkserver() -> None:
    if os.environ.get(PARENT_PID_ENV) == str(os.getppid()):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


ignore_group_signals_if_forkserver()
