"""Is the database at the schema this code expects? Checked before the service starts."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool
from sqlalchemy.exc import SQLAlchemyError

from service.db import sync_url

ALEMBIC_INI = Path(__file__).resolve().parents[1] / "alembic.ini"


class NotMigrated(Exception):
    """The database is missing, unreachable, or behind (or ahead of) the migrations."""


def check_migrated(database_url: str) -> None:
    """Raise NotMigrated, with what to do about it, unless the schema is at the newest migration."""
    if not ALEMBIC_INI.exists():
        return  # installed without the migrations: nothing to compare with
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
