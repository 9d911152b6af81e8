"""What the API's worker pool asks its processes to run: `worker`'s entry points, by name.

A task is sent as a reference to a function, and the API only names these; each imports
`worker` where it runs. In a worker process that costs nothing (the forkserver preloads it),
while the API process never loads the parser, Arrow and their dependencies (about a second
of its start-up, and half its memory, for modules it never runs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from service.config import Settings
    from service.runner.execute import Finished


def init_pool_process(settings: Settings) -> None:
    from service.runner import worker

    worker.init_pool_process(settings)


def run_job(job_id: str, settings: Settings) -> Finished:
    from service.runner import worker

    return worker.run_job(job_id, settings)


def run_jobs(job_ids: list[str], settings: Settings) -> Finished:
    from service.runner import worker

    return worker.run_jobs(job_ids, settings)


def run_claimed(row: dict[str, Any], settings: Settings, *, check: bool) -> Finished:
    from service.runner import worker

    return worker.run_claimed(row, settings, check=check)
