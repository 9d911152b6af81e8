"""The application: `create_app()` wires settings, database, executor and routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service import maintenance, runner, web
from service.admission import Admission
from service.api import docs, events, health
from service.api import jobs as job_routes
from service.config import Settings, get_settings
from service.db import create_engine, session_factory
from service.errors import install_error_handlers
from service.executors import create_executor
from service.logs import RequestLogMiddleware, configure_logging
from service.metrics import Metrics
from service.recorder import JobRecorder
from service.runtime import Runtime
from service.storage import make_data_dirs
from service.watch import JobViews

logger = logging.getLogger(__name__)


@asynccontextmanager
async def run_service(config: Settings) -> AsyncIterator[Runtime]:
    """Open the database, start the executor and the sweeper; undo it all on exit."""
    configure_logging(config.log_level)
    make_data_dirs(config.data_dir)
    engine = create_engine(config.sqlalchemy_url)
    sessions = session_factory(engine)
    runtime: Runtime | None = None

    async def job_done(job_id: str) -> None:
        if runtime is not None:
            await runtime.job_done(job_id)

    executor = create_executor(config, sessions, job_done)
    runtime = Runtime(
        config,
        engine,
        sessions,
        executor,
        JobViews(sessions),
        Metrics(),
        Admission(config, sessions),
        JobRecorder(sessions),
    )
    await executor.start()
    if config.executor == "inprocess":
        pending = await runner.requeue_interrupted(sessions)
    else:
        pending = await runner.queued_jobs(sessions)
    for job_id in pending:
        await executor.submit(job_id)
    sweeper = asyncio.create_task(
        maintenance.run_periodically(config, sessions, executor.submit), name="ingest-sweeper"
    )
    logger.info("service started", extra={"executor": config.executor, "resumed": len(pending)})
    try:
        yield runtime
    finally:
        runtime.begin_shutdown()
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        await executor.stop(config.shutdown_grace_s)
        await engine.dispose()
        logger.info("service stopped")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; nothing is opened until the lifespan starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with run_service(settings or get_settings()) as runtime:
            app.state.runtime = runtime
            yield

    app = FastAPI(
        title="ingest",
        summary="Upload a data file; it is parsed in the background; poll, then download.",
        version="0.1.0",
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    app.add_middleware(RequestLogMiddleware)
    app.include_router(job_routes.router)
    app.include_router(events.router)
    app.include_router(health.router)
    app.include_router(docs.router)
    app.include_router(web.router)
    return app


app = create_app()
