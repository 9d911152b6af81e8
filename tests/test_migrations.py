"""`alembic upgrade head` on an empty database gives exactly the schema of the models."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from service.config import Settings
from service.db import sync_url
from service.models import Job
from tests.apps import migrate


def schema_differences(url: str) -> list[object]:
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            # Job.metadata is every table's: the models share one MetaData.
            return list(compare_metadata(context, Job.metadata))
    finally:
        engine.dispose()


def test_sqlite_upgrade_matches_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    migrate(url)
    assert schema_differences(url) == []
    engine = create_engine(url)
    with engine.connect() as connection:
        assert "job" in inspect(connection).get_table_names()
    engine.dispose()


@pytest.mark.usefixtures("app")
async def test_the_service_runs_sqlite_in_wal_mode(settings: Settings) -> None:
    engine = create_engine(settings.sqlalchemy_url)
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    engine.dispose()


@pytest.mark.postgres
def test_postgres_upgrade_matches_models(postgres_url: str) -> None:
    migrate(postgres_url)
    assert schema_differences(postgres_url) == []
