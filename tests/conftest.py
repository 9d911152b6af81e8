"""Fixtures: every test gets its own data dir, database and app; real processes a test
starts are stopped when it ends."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from service.config import Settings
from tests.apps import asgi_client, running_app, settings_with
from tests.backing_services import POSTGRES_URL, service_missing
from tests.server import StartedProcesses, StartService


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return settings_with(data_dir)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    async with running_app(settings) as application:
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(app) as http:
        yield http


@pytest.fixture
def processes() -> Iterator[StartedProcesses]:
    """Real processes (servers, Celery workers, redis-servers) that the test starts with
    `processes.service(...)`, `.celery_worker(...)`, `.redis(...)`: all stopped at teardown,
    the last started first, kill -9 included."""
    with StartedProcesses() as started:
        yield started


@pytest.fixture
def start_service(processes: StartedProcesses) -> StartService:
    """`start_service(data_dir, **env)` starts `python -m service` on that data dir and
    returns it answering; every server it started is killed at teardown. Call it again on the
    same data dir to restart after a kill or a stop."""
    return processes.service


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty schema in the local PostgreSQL, dropped afterwards. Ask for it before
    `processes` or `start_service`, so that the servers using it are stopped first."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    try:
        with admin.begin() as connection:
            connection.execute(text(f"CREATE SCHEMA {schema}"))
    except OperationalError:
        admin.dispose()
        service_missing("PostgreSQL")
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
