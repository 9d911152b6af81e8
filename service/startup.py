"""Start-up checks, made before the service touches anything: the libraries the settings
call for, one instance per data dir, and a database at the schema this code expects.

One single-machine instance per data dir: the single-machine deployment re-queues every
`running` job at start-up, which is only safe if no other process is running them. The lock
is an `flock` on `<data dir>/ingest.lock`, held for as long as the process lives (the kernel
drops it when the process dies, kill -9 included), so a second instance on the same data dir
stops before touching anything.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
from pathlib import Path

from service.config import Settings

LOCK_FILE = "ingest.lock"

# Locks this process holds, by path: the lifespan and `python -m service` both ask for it.
_held: dict[Path, int] = {}


class DataDirInUse(Exception):
    """Another live process holds the data dir."""


def lock_data_dir(data_dir: Path) -> None:
    """Take the data dir for this process, or raise DataDirInUse naming the holder."""
    path = (data_dir / LOCK_FILE).resolve()
    if path in _held:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise DataDirInUse(
            f"the data dir {data_dir.resolve()} is in use by another ingest instance "
            f"(pid {holder}): stop it first, or set INGEST_DATA_DIR to another directory"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[path] = fd


def unlock_data_dir(data_dir: Path) -> None:
    """Let the data dir go (the app stopped); a no-op if this process does not hold it."""
    fd = _held.pop((data_dir / LOCK_FILE).resolve(), None)
    if fd is not None:
        os.close(fd)


ALEMBIC_INI = Path(__file__).resolve().parents[1] / "alembic.ini"


class NotMigrated(Exception):
    """The database is missing, unreachable, or behind (or ahead of) the migrations."""


def check_migrated(database_url: str) -> None:
    """Raise NotMigrated, with what to do about it, unless the schema is at the newest migration."""
    if not ALEMBIC_INI.exists():
        return  # installed without the migrations: nothing to compare with
    # Alembic and SQLAlchemy are only needed here, and not before `python -m service` has
    # started the workers' forkserver (`service.__main__`): not at import time.
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine, pool
    from sqlalchemy.exc import SQLAlchemyError

    from service.db import sync_url

    expected = set(ScriptDirectory.from_config(Config(str(ALEMBIC_INI))).get_heads())
    engine = create_engine(sync_url(database_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise NotMigrated(f"the database cannot be opened ({reason})") from None
    finally:
        engine.dispose()
    if current != expected:
        state = ", ".join(sorted(current)) or "empty"
        raise NotMigrated(
            f"the database is not migrated (it is at {state}; this code needs "
            f"{', '.join(sorted(expected))}): run `make migrate`"
        )


class MissingDependency(Exception):
    """A library the settings call for is not installed."""


def check_dependencies(settings: Settings) -> None:
    """Raise MissingDependency, saying how to install them, unless the libraries that the
    executor and the database need are there."""
    from service.db import is_sqlite  # SQLAlchemy: see `check_migrated`

    needed = []
    if settings.executor == "celery":
        needed.append("celery")
    if not is_sqlite(settings.sqlalchemy_url):
        needed.append("psycopg")
    if settings.executor == "inprocess" and importlib.util.find_spec("pyarrow") is None:
        # The API itself never imports the parser: without this, its workers would die at
        # start, one after the other, and the jobs would wait for ever.
        raise MissingDependency(
            "pyarrow not installed: the worker processes parse with it "
            "(`make serve` installs it; or pip install -e .)"
        )
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingDependency(
            f"{' and '.join(missing)} not installed: the scale-out deployment needs them "
            "(`make serve` installs them when INGEST_EXECUTOR=celery or INGEST_DATABASE_URL "
            "is PostgreSQL; or pip install -e '.[scaleout]')"
        )
