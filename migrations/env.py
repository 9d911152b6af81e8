"""Alembic environment: the URL comes from the service settings, the schema from its models."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from service.config import ConfigError, load_settings
from service.db import is_sqlite, sync_url
from service.models import SQLModel

config = context.config
target_metadata = SQLModel.metadata


def _database_url() -> str:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if url:
        return str(url)
    try:
        settings = load_settings()
    except ConfigError as exc:
        raise SystemExit(f"ingest: {exc}") from None
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings.sqlalchemy_url


def run_migrations_offline() -> None:
    url = _database_url()
    context.configure(
        url=sync_url(url),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=is_sqlite(url),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = _database_url()
    engine = create_engine(sync_url(url), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=is_sqlite(url),
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
