"""Prometheus metrics: counters kept by this process, gauges read from the database."""

from __future__ import annotations

from datetime import datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from sqlalchemy import func
from sqlmodel import col, select

from service.db import SessionFactory
from service.models import Job, JobStatus

DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class Metrics:
    """One registry per app, so tests and several apps in a process do not collide."""

    def __init__(self) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        self.jobs = Gauge("ingest_jobs", "Jobs by status", ["status"], registry=self.registry)
        self.queue_depth = Gauge(
            "ingest_queue_depth", "Jobs waiting for a worker", registry=self.registry
        )
        self.in_flight = Gauge(
            "ingest_jobs_in_flight", "Jobs being parsed now", registry=self.registry
        )
        self.uploads = Counter(
            "ingest_uploads", "Upload requests by outcome", ["outcome"], registry=self.registry
        )
        self.conversions = Counter(
            "ingest_result_conversions",
            "Results converted for download by this process, by format",
            ["format"],
            registry=self.registry,
        )
        self.upload_bytes = Counter(
            "ingest_upload_bytes", "Bytes of accepted uploads", registry=self.registry
        )
        self.ingested_bytes = Counter(
            "ingest_ingested_bytes", "Bytes of files parsed successfully", registry=self.registry
        )
        self.rows = Counter(
            "ingest_rows", "Rows parsed, by outcome", ["outcome"], registry=self.registry
        )
        self.parse_seconds = Histogram(
            "ingest_parse_duration_seconds",
            "Time from a job's start to its end",
            ["status"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )

    def job_finished(
        self,
        status: JobStatus,
        started_at: datetime | None,
        finished_at: datetime | None,
        file_size: int,
        rows_done: int,
        rows_failed: int,
    ) -> None:
        if started_at is not None and finished_at is not None:
            seconds = (finished_at - started_at).total_seconds()
            self.parse_seconds.labels(status=status.value).observe(max(seconds, 0.0))
        if status is JobStatus.succeeded:
            self.ingested_bytes.inc(file_size)
            self.rows.labels(outcome="parsed").inc(rows_done)
            self.rows.labels(outcome="failed").inc(rows_failed)

    async def render(self, sessions: SessionFactory) -> bytes:
        """The exposition text, with the job gauges read from the database now."""
        async with sessions() as session:
            counts = dict(
                (
                    await session.exec(select(Job.status, func.count()).group_by(col(Job.status)))
                ).all()
            )
        for status in JobStatus:
            self.jobs.labels(status=status.value).set(counts.get(status, 0))
        self.queue_depth.set(counts.get(JobStatus.queued, 0))
        self.in_flight.set(counts.get(JobStatus.running, 0))
        return generate_latest(self.registry)
