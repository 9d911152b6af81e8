"""Job changes made by other processes, pushed by PostgreSQL at their commit.

On PostgreSQL a trigger on the job table (migration 337c1ba5cb2e) sends the job's id on
`CHANNEL` whenever its status or `updated_at` changes, and when it is deleted. Each API
process listens on a connection of its own and tells its `JobViews`, which drops its snapshot
of the job and wakes whoever waits on it: a long-poll or an event stream learns of a Celery
worker's change (or another API process's) at the commit, not at its next recheck.

While changes are heard, a waiter reads its job again only every few seconds, in case a
notification went astray. A lost connection is opened again after `RETRY_S`; meanwhile the
waiters recheck every `INGEST_WAIT_RECHECK_S`, and every snapshot is dropped when it is lost
and when it is back. SQLite has no notifications: there, the local pool's workers answer
through the pool, and other changes wait for a recheck.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

from sqlalchemy.engine import make_url

from service.db import PG_CONNECTION, is_sqlite

logger = logging.getLogger(__name__)

CHANNEL = "ingest_job_changed"
RETRY_S = 1.0
# A quiet connection is checked this often (TCP's keepalives, `db.PG_CONNECTION`, give up
# on a silent peer in about a minute).
PING_S = 30.0


def conninfo(database_url: str) -> str:
    """The SQLAlchemy URL as libpq connection settings (each value quoted, so that a password
    with spaces survives), named so that the connection can be told apart in
    `pg_stat_activity`, with TCP keepalives so that a connection a firewall dropped in
    silence is found out."""
    from psycopg.conninfo import make_conninfo

    url = make_url(database_url)
    settings: dict[str, str | int | None] = {
        **url.translate_connect_args(username="user", database="dbname"),
        **{key: str(value) for key, value in url.query.items()},
    }
    settings.setdefault("application_name", f"ingest-listen-{os.getpid()}")
    for key, value in PG_CONNECTION.items():
        settings.setdefault(key, value)
    return make_conninfo("", **settings)


async def listen(
    database_url: str,
    changed: Callable[[str], None],
    listening: Callable[[bool], None],
    *,
    retry_s: float = RETRY_S,
    ping_s: float = PING_S,
) -> None:
    """Call `changed(job_id)` for every job change PostgreSQL reports, until cancelled;
    `listening(True)` once changes are heard, `listening(False)` when the connection is lost.
    Returns at once on SQLite."""
    if is_sqlite(database_url):
        return
    import psycopg

    settings = conninfo(database_url)
    lost = False
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(settings, autocommit=True) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                if lost:
                    logger.info("job change notifications back")
                    lost = False
                listening(True)
                while True:
                    async for notification in conn.notifies(timeout=ping_s):
                        changed(notification.payload)
                    await conn.execute("SELECT 1")  # quiet for a while: is it still there?
        except psycopg.Error as exc:
            # The driver's text may quote the connection settings: only the kind is logged.
            reason = type(exc).__name__
            sqlstate = getattr(exc, "sqlstate", None)
            if sqlstate:
                reason += f" (SQLSTATE {sqlstate})"
        if not lost:
            listening(False)
            logger.warning(
                "job change notifications lost; waiters recheck until they are back",
                extra={"reason": reason},
            )
            lost = True
        await asyncio.sleep(retry_s)
