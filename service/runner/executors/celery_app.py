"""The Celery application that `make worker` runs:
`celery -A service.runner.executors.celery_app worker`.

Celery needs its app object at import time; it is configured from the same
`INGEST_*` settings as the API.
"""

from __future__ import annotations

import functools
import logging
import signal
import sys
from typing import Any

from celery import Celery
from celery.signals import worker_process_init
from celery.worker.consumer import Consumer

from service.config import ConfigError, Settings, get_settings
from service.without_pandas import keep_pandas_out

# Before the worker (the parser, pyarrow) is imported: only Celery's own processes load this
# module, and they never use pandas (see `service.without_pandas`). The pool's processes are
# forked from this one, which has imported the worker once for all of them.
keep_pandas_out()

from service.runner import worker  # noqa: E402
from service.runner.executors.celery import RUN_JOB_TASK  # noqa: E402

logger = logging.getLogger(__name__)

# While the broker is away the worker tries to reach it again after 1 s, 2 s, 3 s, then every
# RECONNECT_MAX_S (Celery's own pauses grow to 30 s, which would hold jobs back that long
# after the broker's return).
RECONNECT_MAX_S = 3.0


class SturdyConsumer(Consumer):  # type: ignore[misc]
    """Celery's consumer, reconnecting to a lost broker within RECONNECT_MAX_S, and
    surviving the loss of a Redis broker while it holds unacknowledged messages.

    On a lost connection Celery 5.7 collects the old connection, which detaches kombu's
    transport from it (`transport.client = None`), and then closes it. With kombu 5.7's
    Redis transport, whatever later touches a channel of that connection fails with
    AttributeError ('NoneType' object has no attribute 'hostname') instead of a connection
    error: putting back the unacknowledged messages at the close, and the late
    acknowledgement of a job that was running during the outage (`acks_late`). Celery
    expects connection errors there; an AttributeError stops the worker ("Unrecoverable
    error"). So the close is guarded and the old transport stays attached to its connection
    details: those operations then fail as connection errors (logged, harmless: the
    database decides who runs a job) or succeed against the broker once it is back.
    """

    def ensure_connected(self, conn: Any) -> Any:
        conn.ensure_connection = functools.partial(
            conn.ensure_connection, interval_start=1, interval_step=1, interval_max=RECONNECT_MAX_S
        )
        return super().ensure_connected(conn)

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        connection = self.connection
        transport = connection.transport if connection is not None else None
        if connection is not None:
            close = connection.close

            def close_detached() -> None:
                try:
                    close()
                except AttributeError:
                    logger.warning("unacknowledged messages not restored: the broker is gone")

            connection.close = close_detached
        super().on_connection_error_after_connected(exc)
        if transport is not None and transport.client is None:
            transport.client = connection


def _settings() -> Settings:
    """The INGEST_* settings, or one line naming the bad one and exit status 2 (which
    `make worker` does not retry)."""
    try:
        return get_settings()
    except ConfigError as exc:
        print(f"ingest: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


app = Celery("ingest", broker=_settings().broker_url)
app.conf.update(
    task_default_queue=_settings().celery_queue,
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    # A job is acknowledged only once it has run, so a worker that dies mid-job
    # leaves its message to be delivered again; claiming in the database makes that safe.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    # Keep trying to reach a broker that went away, however long it stays away.
    broker_connection_max_retries=None,
    worker_consumer=f"{__name__}:SturdyConsumer",
)


@worker_process_init.connect  # type: ignore[untyped-decorator]
def _leave_group_signals_to_the_worker(**_: Any) -> None:
    """A pool process ignores SIGTERM sent to the whole process group (systemd, a terminal):
    the worker's main process decides, and its warm shutdown lets running jobs finish.
    Celery resets SIGTERM to its default in pool processes, which would kill them mid-job."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


@worker_process_init.connect  # type: ignore[untyped-decorator]
def _connect_before_the_first_job(**_: Any) -> None:
    worker.warm_up(get_settings())


@app.task(name=RUN_JOB_TASK)  # type: ignore[untyped-decorator]
def run_job(job_id: str) -> None:
    # The message may come back while the job's worker still runs (RabbitMQ redelivers a
    # dead consumer's messages at once): the job's heartbeat decides who runs it.
    worker.run_job(job_id, get_settings(), wait_for_owner=True)
