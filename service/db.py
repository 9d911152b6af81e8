"""The database engine, sessions, and the one place that commits."""

from __future__ import annotations

import asyncio
import errno
import os
import weakref
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import sqlalchemy
from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

# What code below the API is handed to open sessions with (one per transaction or read).
SessionFactory = async_sessionmaker[AsyncSession]

ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+psycopg"}
SYNC_DRIVERS = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg"}


def _with_driver(url: str, drivers: dict[str, str]) -> str:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in drivers:
        raise ValueError(f"unsupported database: {backend}")
    return parsed.set(drivername=drivers[backend]).render_as_string(hide_password=False)


def async_url(url: str) -> str:
    """The same database, reached through its asyncio driver."""
    return _with_driver(url, ASYNC_DRIVERS)


def sync_url(url: str) -> str:
    """The same database, reached through its blocking driver (Alembic)."""
    return _with_driver(url, SYNC_DRIVERS)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


# Every connection to PostgreSQL: a bounded connect, and TCP keepalives, so that a connection
# a firewall dropped in silence is found out (TCP gives up after about keepalives_idle +
# interval × count seconds) rather than holding its caller for minutes.
PG_CONNECTION: dict[str, int] = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "connect_timeout": 10,
}


def _sqlite_pragmas(synchronous: str) -> Callable[[Any, Any], None]:
    def apply(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets readers (status polls) run while a worker writes progress.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return apply


def create_engine(url: str, *, durable: bool = True) -> AsyncEngine:
    """An asyncio engine for `url`, with SQLite tuned for concurrent readers and writers.

    `durable` commits are on disk when they return (SQLite `synchronous=FULL`): the API uses
    them, since a 202 promises the job survives a power cut. Workers use `durable=False`
    (`synchronous=NORMAL`, still safe against a crash of the process): losing their last
    progress or state change to a power cut only makes a job run again.
    """
    if is_sqlite(url):
        engine = create_async_engine(async_url(url), pool_size=8, max_overflow=8)
    else:
        engine = create_async_engine(
            async_url(url),
            pool_pre_ping=True,
            pool_size=10,
            max_overflow=20,
            connect_args=dict(PG_CONNECTION),
        )
    _tune(engine.sync_engine, url, durable=durable)
    _blocking_twins[engine] = _BlockingTwin(url, durable)
    return engine


def _tune(engine: Engine, url: str, *, durable: bool) -> None:
    if is_sqlite(url):
        synchronous = "FULL" if durable else "NORMAL"
        event.listen(engine, "connect", _sqlite_pragmas(synchronous))
    elif not durable:
        event.listen(engine, "connect", _postgres_relaxed_commits)


class _BlockingTwin:
    """The same database through its blocking driver, tuned alike, made on first use."""

    def __init__(self, url: str, durable: bool) -> None:
        self._url = url
        self._durable = durable
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            options: dict[str, Any] = {"pool_size": 2, "max_overflow": 4}
            if not is_sqlite(self._url):
                options.update(pool_pre_ping=True, connect_args=dict(PG_CONNECTION))
            self._engine = sqlalchemy.create_engine(sync_url(self._url), **options)
            _tune(self._engine, self._url, durable=self._durable)
        return self._engine

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


_blocking_twins: weakref.WeakKeyDictionary[AsyncEngine, _BlockingTwin] = weakref.WeakKeyDictionary()
T = TypeVar("T")


async def in_one_thread_call(sessions: SessionFactory, work: Callable[[Connection], T]) -> T:
    """`work` in one transaction on the blocking driver, run whole in one thread call.

    Through the asyncio driver each statement, fetch and commit is a trip to the driver's
    thread and back to the event loop: a worker's final update of a tiny job took about 2
    ms that way, against a fraction of a millisecond of SQLite's own work. For short
    transactions on a path someone waits on. Commits as `transaction` does.
    """
    engine = sessions.kw["bind"]
    assert isinstance(engine, AsyncEngine)
    twin = _blocking_twins[engine].engine

    def run() -> T:
        with twin.begin() as connection:
            return work(connection)

    return await asyncio.get_running_loop().run_in_executor(_database_threads(), run)


# Threads of their own, as the asyncio driver has: behind the default executor's threads a
# commit would wait for the file writes and fsyncs of large uploads.
DATABASE_THREADS = 2
_threads: ThreadPoolExecutor | None = None


def _database_threads() -> ThreadPoolExecutor:
    global _threads
    if _threads is None:
        _threads = ThreadPoolExecutor(DATABASE_THREADS, thread_name_prefix="ingest-db")
    return _threads


def _forget_threads_after_fork() -> None:
    global _threads
    _threads = None  # a forked child has none of its parent's threads


os.register_at_fork(after_in_child=_forget_threads_after_fork)


async def dispose(engine: AsyncEngine) -> None:
    """Close every pooled connection of `engine` and of its blocking twin."""
    await engine.dispose()
    twin = _blocking_twins.get(engine)
    if twin is not None:
        twin.dispose()


def _postgres_relaxed_commits(dbapi_connection: Any, _record: Any) -> None:
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO off")
    dbapi_connection.commit()


def session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


@asynccontextmanager
async def transaction(sessions: SessionFactory) -> AsyncIterator[AsyncSession]:
    """A session that commits when the block ends cleanly and rolls back otherwise.

    This and `in_one_thread_call` are the only places that commit: code below them only
    flushes.
    """
    async with sessions() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


# PostgreSQL's SQLSTATE for "disk full".
PG_DISK_FULL = "53100"


def is_disk_full(exc: BaseException) -> bool:
    """The disk (or quota) is full: a file write got ENOSPC, or the database could not grow."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(exc, DBAPIError):
        if getattr(exc.orig, "sqlstate", None) == PG_DISK_FULL:
            return True
        return "database or disk is full" in str(exc.orig)
    return False


def is_transient(exc: BaseException) -> bool:
    """A database error that may well pass if the same statement is tried again later:
    a full disk, a lock held too long, a lost connection, a database restarting."""
    if is_disk_full(exc):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError)
