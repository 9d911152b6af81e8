"""The application: `create_app()` wires settings, database, executor and routes."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from service import web
from service.api import docs, events, health, uploads
from service.api import jobs as job_routes
from service.api.access_log import RequestLogMiddleware
from service.api.problems import install_error_handlers
from service.api.slashes import TrailingSlashes
from service.config import Settings, get_settings
from service.db import SessionFactory, create_engine, dispose, in_one_thread_call, session_factory
from service.jobs import notifications
from service.jobs.conversions import Conversions
from service.jobs.spare import SpareConverter
from service.jobs.views import JobViews
from service.logs import configure_logging
from service.metrics import Metrics
from service.runner import lifecycle, sweeper
from service.runner.executors import Executor, JobDone
from service.runtime import Runtime
from service.startup import lock_data_dir, unlock_data_dir
from service.storage import make_data_dirs
from service.upload.admission import Admission
from service.upload.recorder import JobRecorder

logger = logging.getLogger(__name__)


def create_executor(settings: Settings, sessions: SessionFactory, on_done: JobDone) -> Executor:
    """The executor that `INGEST_EXECUTOR` names; `on_done` hears of jobs run locally."""
    if settings.executor == "celery":
        from service.runner.executors.celery import CeleryExecutor

        return CeleryExecutor(settings)
    from service.runner.executors.inprocess import InProcessExecutor

    return InProcessExecutor(settings, sessions, on_done)


@asynccontextmanager
async def run_service(config: Settings) -> AsyncIterator[Runtime]:
    """Open the database, start the executor and the sweeper; undo it all on exit."""
    configure_logging(config.log_level)
    single_machine = config.executor == "inprocess"
    if single_machine:
        # Before any recovery: re-queueing `running` jobs is only safe with no other instance.
        lock_data_dir(config.data_dir)
    make_data_dirs(config.data_dir)
    engine = create_engine(config.sqlalchemy_url)
    sessions = session_factory(engine)
    runtime: Runtime | None = None

    async def job_done(job_id: str, row: dict[str, Any] | None) -> None:
        if runtime is not None:
            await runtime.job_done(job_id, row)

    executor = create_executor(config, sessions, job_done)
    spare = SpareConverter() if config.spare_converter else None
    runtime = Runtime(
        config,
        engine,
        sessions,
        executor,
        JobViews(sessions, recheck_s=config.wait_recheck_s),
        Metrics(),
        Admission(config, sessions),
        JobRecorder(sessions),
        conversions=Conversions(spare),
    )
    await executor.start()
    # The group commit's connection, opened now rather than by the first upload.
    await in_one_thread_call(sessions, lambda connection: None)
    if config.executor == "inprocess":
        pending = await lifecycle.requeue_interrupted(sessions)
        for job_id in pending:
            await executor.submit(job_id)
    else:
        pending = []  # the first recovery round publishes what the broker may not hold
    retention = asyncio.create_task(
        sweeper.run_periodically(config, sessions), name="ingest-retention"
    )
    recovery = asyncio.create_task(
        sweeper.recover_periodically(config, sessions, executor), name="ingest-recovery"
    )
    listener = asyncio.create_task(
        notifications.listen(config.sqlalchemy_url, runtime.views.changed, runtime.views.listening),
        name="ingest-notifications",
    )
    # What start-up made (modules, models, mappers) lives as long as the process: kept out of
    # the collector's full passes, which a busy API otherwise runs every few hundred requests.
    gc.collect()
    gc.freeze()
    if spare is not None:
        spare.prepare()  # last: the workers' start-up comes first
    logger.info("service started", extra={"executor": config.executor, "resumed": len(pending)})
    try:
        yield runtime
    finally:
        runtime.begin_shutdown()
        if spare is not None:
            await _logging_errors(spare.stop(), "stopping the spare converter")
        for task in (retention, recovery, listener):
            task.cancel()
            await _logging_errors(task, f"{task.get_name()} had stopped")
        await executor.stop(config.shutdown_grace_s)
        await runtime.views.close()
        await dispose(engine)
        if single_machine:
            unlock_data_dir(config.data_dir)
        gc.unfreeze()
        logger.info("service stopped")


async def _logging_errors(step: Awaitable[object], what: str) -> None:
    """Await a step of the shutdown; whatever it raises is logged, and the shutdown goes on."""
    try:
        await step
    except asyncio.CancelledError:
        pass
    except Exception:
        logger.exception(what)


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
        # FastAPI's own OpenTelemetry hooks looked for configured providers on every request
        # (9.4 us each against 0.2 switched off); the service's metrics are Prometheus's.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    app.add_middleware(TrailingSlashes)
    app.add_middleware(RequestLogMiddleware)
    app.include_router(job_routes.router)
    app.include_router(uploads.router)
    app.include_router(events.router)
    app.include_router(health.router)
    app.include_router(docs.router)
    app.include_router(web.router)
    return app


app = create_app()
