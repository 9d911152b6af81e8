"""The benchmark sections and what they share: the run context, steps, servers."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tests.bench import servers
from tests.bench.client import Service, require_succeeded
from tests.bench.datagen import DataFile, Dataset, ensure
from tests.bench.profile import Profile
from tests.bench.report import Row
from tests.bench.rss import MemoryPhase

SMALL_CSV = Dataset("csv", target_bytes=1_000)


@dataclass(frozen=True)
class IngestRun:
    """One job from its 202 to succeeded."""

    file: DataFile
    upload_s: float
    ingest_s: float
    rows: int
    memory: MemoryPhase

    @property
    def mb_per_s(self) -> float:
        return self.file.size / self.ingest_s / 1e6

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.ingest_s


@dataclass
class Context:
    """What every section may use: paths, sizes, and measurements shared between sections."""

    repo: Path
    bench_dir: Path
    profile: Profile
    app: str | None  # None: the service as `make serve` runs it
    run_migrations: bool
    ingests: dict[Dataset, IngestRun] = field(default_factory=dict)

    def data(self, dataset: Dataset) -> DataFile:
        return ensure(dataset, self.bench_dir)


@dataclass(frozen=True)
class Step:
    label: str
    run: Callable[[], object]
    weight: int = 1


class Section:
    """A group of measurements with their own servers; steps fill it, rows() reports it."""

    key = ""
    title = ""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.notes: list[str] = []
        self._stack = ExitStack()

    def datasets(self) -> list[Dataset]:
        return []

    def steps(self) -> list[Step]:
        raise NotImplementedError

    def rows(self) -> list[Row]:
        raise NotImplementedError

    def close(self) -> None:
        self._stack.close()

    def start_server(
        self,
        command: list[str],
        name: str,
        *,
        service: bool,
        extra_env: dict[str, str] | None = None,
    ) -> servers.Server:
        server = servers.start(
            command,
            name,
            self.ctx.repo,
            self.ctx.bench_dir,
            service=service,
            run_migrations=self.ctx.run_migrations,
            extra_env=extra_env,
        )
        self._stack.callback(server.stop)
        return server

    def start_service(self) -> tuple[servers.Server, Service]:
        """The service on a fresh data dir, warmed up by one small job run to completion."""
        command = servers.service_command(self.ctx.app)
        server = self.start_server(command, f"{self.key}-service", service=True)
        service = Service(server.port)
        self._stack.callback(service.close)
        small = self.ctx.data(SMALL_CSV)
        job_id, _ = service.submit(small.path, small.dataset.media_type)
        job, _ = service.wait_done(job_id, timeout=60)
        require_succeeded(job)
        return server, service


class ServiceSection(Section):
    """A section with its own service; it can time ingests, shared through the context."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.server: servers.Server | None = None
        self.service: Service | None = None
        self.errors: dict[Dataset, str] = {}

    def start(self) -> None:
        self.server, self.service = self.start_service()

    def ingest(self, dataset: Dataset) -> Callable[[], None]:
        """A step that times the dataset's ingest, unless this run already has."""

        def run() -> None:
            if dataset in self.ctx.ingests:
                return
            if self.server is None or self.service is None:
                self.errors[dataset] = "service did not start"
                raise RuntimeError("service is not running")
            file = self.ctx.data(dataset)
            timeout = self.ctx.profile.ingest_timeout_s
            try:
                measured = measure_ingest(self.server, self.service, file, timeout)
            except Exception as exc:
                self.errors[dataset] = str(exc).splitlines()[0][:120]
                raise
            self.ctx.ingests[dataset] = measured

        return run


def measure_ingest(
    server: servers.Server, service: Service, file: DataFile, timeout: float
) -> IngestRun:
    """Upload as a raw body, then time from the 202 until the job is seen succeeded."""
    server.sampler.wait_quiet()
    with server.sampler.phase() as memory:
        job_id, sent = service.submit(file.path, file.dataset.media_type)
        try:
            job, done_at = service.wait_done(job_id, timeout)
        except Exception:
            service.remove(job_id)
            raise
    service.remove(job_id)
    result = require_succeeded(job)
    rows = int(result.get("rows") or 0)
    return IngestRun(file, sent.seconds, done_at - sent.answered_at, rows, memory)


def run_module(module: str, *args: str, timeout: float) -> dict[str, Any]:
    """Run `python -m MODULE ARGS` and parse the JSON object it prints."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{module} failed: {done.stderr.decode(errors='replace')[-500:]}")
    result: dict[str, Any] = orjson.loads(done.stdout.splitlines()[-1])
    return result
