"""Job changes made by other processes, pushed by PostgreSQL at their commit.

On PostgreSQL a trigger on the job table (migration 337c1ba5cb2e) sends the job's id on
`CHANNEL` whenever its status or `updated_at` changes, and when it is deleted. Each API
process listens on a connection of its own and tells its `JobViews`, which drops its snapshot
of the job and wakes whoever waits on it: a long-poll or an event stream learns of a Celery
worker's change (or another API process's) at the commit, not at its next recheck.

A lost connection is opened again after `RETRY_S`; whatever changed meanwhile reaches the
waiters through their rechecks (`INGEST_WAIT_RECHECK_S`), and every snapshot is dropped once
the connection is back. SQLite has no notifications: there, the local pool's workers answer
through the pool, and other changes wait for a recheck.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

from sqlalchemy.engine import make_url

from service.db import is_sqlite

logger = logging.getLogger(__name__)

CHANNEL = "ingest_job_changed"
RETRY_S = 1.0


def libpq_url(database_url: str) -> str:
    """The SQLAlchemy URL as libpq reads it (no `+driver`), named so that the connection can
    be told apart in `pg_stat_activity`."""
    url = make_url(database_url).set(drivername="postgresql")
    query = dict(url.query)
    query.setdefault("application_name", f"ingest-listen-{os.getpid()}")
    return url.set(query=query).render_as_string(hide_password=False)


async def listen(
    database_url: str,
    changed: Callable[[str], None],
    reconnected: Callable[[], None],
    *,
    retry_s: float = RETRY_S,
) -> None:
    """Call `changed(job_id)` for every job change PostgreSQL reports, until cancelled;
    `reconnected()` after a lost connection is back. Returns at once on SQLite."""
    if is_sqlite(database_url):
        return
    import psycopg

    conninfo = libpq_url(database_url)
    lost = False
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                if lost:
                    logger.info("job change notifications back")
                    reconnected()
                    lost = False
                async for notification in conn.notifies():
                    changed(notification.payload)
            reason = "the connection was closed"
        except psycopg.Error as exc:
            reason = (str(exc) or type(exc).__name__).splitlines()[0]
        if not lost:
            logger.warning(
                "job change notifications lost; waiters recheck until they are back",
                extra={"reason": reason},
            )
            lost = True
        await asyncio.sleep(retry_s)
