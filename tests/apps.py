"""The service in this process: settings for a test, a migrated database, the app with its
lifespan running and an HTTP client that talks to it without a socket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from alembic import command
from alembic.config import Config
from fastapi import FastAPI

from service.config import Settings
from service.main import create_app

ROOT = Path(__file__).resolve().parents[1]
BASE_URL = "http://ingest.test"


def migrate(database_url: str) -> None:
    """Bring a database to the newest schema, as `make serve` does."""
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url
    command.upgrade(config, "head")


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    """Settings for a test app (quick progress, no free-space floor, no spare converter
    process unless asked for: most tests convert nothing), database not migrated."""
    values: dict[str, object] = {
        "data_dir": data_dir,
        "progress_interval_s": 0.2,
        "min_free_bytes": 0,
        "log_level": "WARNING",
        "shutdown_grace_s": 5.0,
        "spare_converter": False,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def settings_with(data_dir: Path, **overrides: object) -> Settings:
    """Settings for a test app, with its database migrated."""
    config = make_settings(data_dir, **overrides)
    migrate(config.sqlalchemy_url)
    return config


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app with its lifespan started, as uvicorn would run it."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


def asgi_client(application: FastAPI) -> httpx.AsyncClient:
    """An HTTP client for an app running in this process (enter it with `async with`)."""
    transport = httpx.ASGITransport(app=application)
    return httpx.AsyncClient(transport=transport, base_url=BASE_URL)


@asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to a freshly started app in this process."""
    async with running_app(settings) as application, asgi_client(application) as http:
        yield http
