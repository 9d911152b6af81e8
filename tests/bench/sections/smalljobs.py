"""4. Many small jobs: a burst of 1 KB uploads until all succeed, and one tiny job's latency,
beside the seed's job pattern run in the same run, the disk's fsync floor and hello-world."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import psutil

from tests.bench import celery_stack, servers
from tests.bench.client import Service, require_succeeded
from tests.bench.datagen import Dataset
from tests.bench.report import Check, Row, not_measured, rate, ratio
from tests.bench.sections import SMALL_CSV, Context, ServiceSection, Step
from tests.bench.wire import Connection, build_request, multipart, read_response

ACCEPT_TARGET = 500.0
THROUGHPUT_TARGET = 5.0  # × the seed pattern's jobs/s, end to end
LATENCY_TARGET = 1.0  # × the seed pattern's time for one tiny job
LATENCY_JOBS = 40
LATENCY_WARMUP = 5
FSYNC_ROUNDS = 50
HELLO_SECONDS = 2.0
SEED_APP = "tests.bench.seed_jobs_app:app"
CELERY_CONCURRENCY = 2  # as INGEST_MAX_CONCURRENT_JOBS' default


@dataclass
class Burst:
    """Many uploads from concurrent keep-alive clients, then the wait until all are done."""

    ids: list[str] = field(default_factory=list)
    refused: dict[int, int] = field(default_factory=dict)
    started: float = 0.0
    accept_s: float | None = None
    done_s: float | None = None
    outcome: dict[str, int] = field(default_factory=dict)
    error: str = ""
    # CPU seconds of the server process and of its children (the workers), at the start and
    # when the last job was seen done (the confirming sweep's reads left out).
    cpu_start: tuple[float, float] | None = None
    cpu_done: tuple[float, float] | None = None

    def cpu_ms_per_job(self) -> tuple[float, float] | None:
        """The server's and its children's CPU per accepted job, in ms."""
        if self.cpu_start is None or self.cpu_done is None or not self.ids:
            return None
        server, children = (
            1000 * (done - start) / len(self.ids)
            for start, done in zip(self.cpu_start, self.cpu_done, strict=True)
        )
        return server, children

    @property
    def end_to_end(self) -> float | None:
        if self.done_s is None or self.outcome.get("succeeded", 0) != len(self.ids):
            return None
        return len(self.ids) / self.done_s


@dataclass
class Latency:
    p50_ms: float | None = None
    p90_ms: float | None = None
    error: str = ""


def _multipart_body(path: Path, media_type: str) -> tuple[str, bytes]:
    content_type, parts = multipart(path, media_type)
    return content_type, b"".join(p if isinstance(p, bytes) else p.read_bytes() for p in parts)


def fsync_floor(directory: Path, rounds: int = FSYNC_ROUNDS) -> float:
    """Median ms of one durable small write in `directory`: write 1 KB, fsync, rename,
    fsync the directory."""
    times: list[float] = []
    payload = b"x" * 1_000
    temp, final = directory / "fsync-probe.tmp", directory / "fsync-probe"
    for _ in range(rounds):
        start = time.perf_counter()
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, final)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        times.append(time.perf_counter() - start)
    final.unlink(missing_ok=True)
    return statistics.median(times) * 1000


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) of process `pid` and of all its descendants alive now."""
    process = psutil.Process(pid)
    own = sum(process.cpu_times()[:2])
    children = 0.0
    for child in process.children(recursive=True):
        try:
            children += sum(child.cpu_times()[:2])
        except psutil.Error:  # exited meanwhile
            pass
    return own, children


class SmallJobsSection(ServiceSection):
    key = "small"
    title = "4. Many small jobs"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.bursts = {app: Burst() for app in ("service", "seed", "celery")}
        self.latency = {app: Latency() for app in ("service", "seed", "celery")}
        self.seed: servers.Server | None = None
        self.celery: servers.Server | None = None
        self.fsync_ms: float | None = None
        self.hello_rps: float | None = None
        self.ready_s: float | None = None
        self.context_error = ""

    def datasets(self) -> list[Dataset]:
        return [SMALL_CSV]

    def steps(self) -> list[Step]:
        count = self.ctx.profile.small_jobs
        return [
            Step("small jobs: start service", self.start),
            Step("small jobs: fsync floor, hello-world", self._context),
            Step(f"small jobs: {count} uploads", self._burst("service"), 4),
            Step("small jobs: tiny job latency", self._latency("service")),
            Step("small jobs: stop service", self.close),
            Step("small jobs: seed pattern", self._start_seed),
            Step(f"small jobs: seed pattern, {count} uploads", self._burst("seed"), 3),
            Step("small jobs: seed pattern latency", self._latency("seed")),
            Step("small jobs: stop seed pattern", self.close),
            Step("small jobs: Celery", self._start_celery, 2),
            Step(f"small jobs: Celery, {count} uploads", self._burst("celery"), 4),
            Step("small jobs: Celery latency", self._latency("celery")),
            Step("small jobs: stop Celery", self.close),
        ]

    def _server(self, app: str) -> servers.Server:
        server = {"service": self.server, "seed": self.seed, "celery": self.celery}[app]
        if server is None:
            raise RuntimeError(f"{app} is not running")
        return server

    def _port(self, app: str) -> int:
        return self._server(app).port

    def _context(self) -> None:
        assert self.server is not None
        try:
            self.ready_s = self.server.ready_s
            self.fsync_ms = fsync_floor(self.server.run_dir)
            self.hello_rps = self._hello(self.server.port)
        except Exception as exc:
            self.context_error = str(exc).splitlines()[0][:120]
            raise

    def _hello(self, port: int) -> float:
        command = [
            sys.executable,
            "-m",
            "tests.bench.loadgen",
            f"--port={port}",
            "--path=/healthz",
            f"--connections={self.ctx.profile.small_clients}",
            f"--seconds={HELLO_SECONDS}",
            "--warmup=0.3",
        ]
        done = subprocess.run(command, capture_output=True, timeout=60, check=True)
        return float(orjson.loads(done.stdout.splitlines()[-1])["rps"])

    def _start_seed(self) -> None:
        command = servers.uvicorn_command(SEED_APP)
        self.seed = self.start_server(command, "small-seed", service=False)

    def _start_celery(self) -> None:
        """The service with Celery workers, PostgreSQL and Redis of its own, warmed up."""
        try:
            url = self._stack.enter_context(celery_stack.database())
            broker = self._stack.enter_context(celery_stack.redis(self.ctx.bench_dir))
            env = {
                "INGEST_EXECUTOR": "celery",
                "INGEST_DATABASE_URL": url,
                "INGEST_BROKER_URL": broker,
                "INGEST_CELERY_QUEUE": "bench-small",
            }
            command = servers.service_command(self.ctx.app)
            self.celery = self.start_server(command, "small-celery", service=True, extra_env=env)
            env["INGEST_DATA_DIR"] = str(self.celery.run_dir.resolve())
            log = self.celery.run_dir / "worker.log"
            self._stack.enter_context(
                celery_stack.worker(self.ctx.repo, env, log, CELERY_CONCURRENCY)
            )
            service = Service(self.celery.port)
            self._stack.callback(service.close)
            small = self.ctx.data(SMALL_CSV)
            job_id, _ = service.submit(small.path, small.dataset.media_type)
            require_succeeded(service.wait_done(job_id, timeout=60)[0])
        except Exception as exc:
            self.bursts["celery"].error = str(exc).splitlines()[0][:120]
            raise

    def _burst(self, app: str) -> Callable[[], None]:
        burst = self.bursts[app]

        def run() -> None:
            try:
                port = self._port(app)
                file = self.ctx.data(SMALL_CSV)
                content_type, body = _multipart_body(file.path, file.dataset.media_type)
                request = build_request("POST", "/jobs", port, {"Content-Type": content_type}, body)
                pid = self._server(app).process.pid
                burst.cpu_start = cpu_seconds(pid)
                burst.started = time.perf_counter()
                asyncio.run(self._clients(port, request, burst))
                burst.accept_s = time.perf_counter() - burst.started
                self._wait(port, burst, lambda: cpu_seconds(pid))
            except Exception as exc:
                burst.error = burst.error or str(exc).splitlines()[0][:120]
                raise

        return run

    async def _clients(self, port: int, request: bytes, burst: Burst) -> None:
        remaining = iter(range(self.ctx.profile.small_jobs))

        async def client() -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                for _ in remaining:
                    writer.write(request)
                    status, body, keep_alive = await read_response(reader)
                    if status == 202:
                        burst.ids.append(str(orjson.loads(body)["id"]))
                    else:
                        burst.refused[status] = burst.refused.get(status, 0) + 1
                    if not keep_alive:
                        writer.close()
                        reader, writer = await asyncio.open_connection("127.0.0.1", port)
            finally:
                writer.close()

        await asyncio.gather(*(client() for _ in range(self.ctx.profile.small_clients)))

    def _wait(self, port: int, burst: Burst, cpu: Callable[[], tuple[float, float]]) -> None:
        """Poll the last accepted job until done, then confirm all the others.

        Jobs run roughly in order, so when the last is done the others almost always are:
        the time is when the last one was seen done, or later if the sweep found any still
        going.
        """
        if not burst.ids:
            raise RuntimeError("no job was accepted")
        deadline = burst.started + self.ctx.profile.small_wait_cap_s
        with Connection(port, timeout=30) as conn:

            def job(job_id: str) -> dict[str, object]:
                found: dict[str, object] = conn.request("GET", f"/jobs/{job_id}").json()
                return found

            while not job(burst.ids[-1]).get("done") and time.perf_counter() < deadline:
                time.sleep(0.005)
            finished = time.perf_counter()
            burst.cpu_done = cpu()
            pending = list(burst.ids)
            first_sweep = True
            while pending:
                still: list[str] = []
                for job_id in pending:
                    found = job(job_id)
                    if not found.get("done"):
                        still.append(job_id)
                        continue
                    status = str(found.get("status"))
                    burst.outcome[status] = burst.outcome.get(status, 0) + 1
                    if not first_sweep:
                        finished = time.perf_counter()
                pending, first_sweep = still, False
                if pending and time.perf_counter() > deadline:
                    burst.outcome["not done"] = len(pending)
                    return
                if pending:
                    time.sleep(0.02)
        burst.done_s = finished - burst.started

    def _latency(self, app: str) -> Callable[[], None]:
        """Sequential tiny jobs, timed from the upload's first byte to `succeeded` seen: the
        service answers with the finished job (`Prefer: wait`); the seed pattern has no such
        wait, so its job is polled without pause right after the 202."""
        measured = self.latency[app]

        def run() -> None:
            try:
                port = self._port(app)
                file = self.ctx.data(SMALL_CSV)
                content_type, body = _multipart_body(file.path, file.dataset.media_type)
                headers = {"Content-Type": content_type}
                if app == "service":
                    headers["Prefer"] = "wait=10"
                times: list[float] = []
                with Connection(port, timeout=30) as conn:
                    for n in range(LATENCY_WARMUP + LATENCY_JOBS):
                        start = time.perf_counter()
                        answer = conn.request("POST", "/jobs", headers, [body])
                        if answer.status not in (200, 202):
                            raise RuntimeError(f"upload answered {answer.status}")
                        job = answer.json()
                        while not job.get("done") and job.get("status") not in (
                            "succeeded",
                            "failed",
                        ):
                            job = conn.request("GET", f"/jobs/{job['id']}").json()
                        elapsed = time.perf_counter() - start
                        if job.get("status") != "succeeded":
                            raise RuntimeError(f"a tiny job ended {job.get('status')}")
                        if n >= LATENCY_WARMUP:
                            times.append(elapsed * 1000)
                times.sort()
                measured.p50_ms = statistics.median(times)
                measured.p90_ms = times[int(0.9 * len(times))]
            except Exception as exc:
                measured.error = str(exc).splitlines()[0][:120]
                raise

        return run

    def rows(self) -> list[Row]:
        profile = self.ctx.profile
        label = f"{profile.small_jobs} uploads of 1 KB, {profile.small_clients} clients"
        rows = [*self._context_rows(), self._accept_row(label), self._throughput_row(label)]
        rows.append(self._cpu_row(label))
        rows.append(self._latency_row())
        rows.extend(self._celery_rows(label))
        self.notes.append(
            "Clients: asyncio keep-alive connections in the benchmark process, multipart "
            "uploads of the same 1 KB CSV (13 rows of 8 columns); a job counts as accepted "
            "on its 202. End to end: from the first upload until every job is seen "
            "`succeeded`. Seed pattern: FastAPI `BackgroundTasks` parsing in the API process "
            "(csv.reader, orjson) with the status in SQLite through SQLModel (default "
            "rollback journal, whose commits fsync; the files are not fsync'd), run after "
            f"the service on the same machine. Tiny job: p50 (p90) of {LATENCY_JOBS} "
            f"sequential jobs after {LATENCY_WARMUP} of warm-up. CPU per job: user and system "
            "time of the server process and of its child processes (the service's workers and "
            "their forkserver), from the first upload until the last job was seen done, over "
            "the jobs accepted. Celery: the same service "
            f"with `INGEST_EXECUTOR=celery`, one worker of {CELERY_CONCURRENCY} processes, "
            "PostgreSQL and a redis-server of its own, on the same machine."
        )
        return rows

    def _context_rows(self) -> list[Row]:
        if self.fsync_ms is None or self.hello_rps is None:
            reason = self.context_error or "step failed"
            return [not_measured("fsync floor of the data dir; hello-world", reason)]
        return [
            Row(
                "fsync floor of the data dir (write 1 KB, fsync, rename, fsync dir)",
                f"{self.fsync_ms:.2f} ms p50 ({1000 / self.fsync_ms:,.0f}/s one at a time)",
            ),
            Row(
                f"hello-world GET /healthz, {self.ctx.profile.small_clients} clients",
                rate(self.hello_rps, "req/s"),
            ),
            Row(
                "start-up: `python -m service` to its first /healthz 200 (workers started)",
                "—" if self.ready_s is None else f"{self.ready_s:.2f} s",
            ),
        ]

    def _accept_row(self, label: str) -> Row:
        burst, target = self.bursts["service"], f"≥ {ACCEPT_TARGET:.0f}/s"
        if burst.accept_s is None:
            return not_measured(f"{label}: accepted jobs/s", burst.error or "step failed", [target])
        accepted = len(burst.ids)
        per_s = accepted / burst.accept_s
        refused = ", ".join(f"{n}× {status}" for status, n in sorted(burst.refused.items()))
        value = f"{rate(per_s, 'jobs/s')} ({accepted} in {burst.accept_s:.2f} s"
        value += f"; refused: {refused})" if refused else ")"
        seed = self.bursts["seed"]
        baselines = []
        if seed.accept_s is not None:
            baselines = [f"seed {rate(len(seed.ids) / seed.accept_s, 'jobs/s')}"]
        met = per_s >= ACCEPT_TARGET and accepted == self.ctx.profile.small_jobs
        return Row(f"{label}: accepted jobs/s", value, baselines, checks=[Check(target, met)])

    def _throughput_row(self, label: str) -> Row:
        measurement = f"{label}: all succeeded, jobs/s end to end"
        target = f"≥ {THROUGHPUT_TARGET:.0f}× seed"
        burst, seed = self.bursts["service"], self.bursts["seed"]
        ours = burst.end_to_end
        if ours is None:
            outcome = ", ".join(f"{n} {status}" for status, n in sorted(burst.outcome.items()))
            reason = burst.error or f"after {self.ctx.profile.small_wait_cap_s:.0f} s: {outcome}"
            return not_measured(measurement, reason, [target])
        assert burst.done_s is not None
        value = f"{rate(ours, 'jobs/s')} ({len(burst.ids)} in {burst.done_s:.2f} s)"
        theirs = seed.end_to_end
        if theirs is None:
            baseline = f"seed not measured ({seed.error or 'not all succeeded'})"
            return Row(measurement, value, [baseline], checks=[Check(target, False)])
        share = ours / theirs
        return Row(
            measurement,
            value,
            [f"seed {rate(theirs, 'jobs/s')}"],
            [ratio(share, "seed")],
            [Check(target, share >= THROUGHPUT_TARGET)],
        )

    def _latency_row(self) -> Row:
        measurement = "tiny job, upload → succeeded (Prefer: wait)"
        target = f"≤ {LATENCY_TARGET:.0f}× seed"
        ours, seed = self.latency["service"], self.latency["seed"]
        if ours.p50_ms is None or ours.p90_ms is None:
            return not_measured(measurement, ours.error or "step failed", [target])
        value = f"p50 {ours.p50_ms:.1f} ms (p90 {ours.p90_ms:.1f} ms)"
        if seed.p50_ms is None or seed.p90_ms is None:
            baseline = f"seed not measured ({seed.error or 'step failed'})"
            return Row(measurement, value, [baseline], checks=[Check(target, False)])
        share = ours.p50_ms / seed.p50_ms
        return Row(
            measurement,
            value,
            [f"seed p50 {seed.p50_ms:.1f} ms (p90 {seed.p90_ms:.1f} ms; upload, then polls)"],
            [ratio(share, "seed")],
            [Check(target, share <= LATENCY_TARGET)],
        )

    def _cpu_row(self, label: str) -> Row:
        measurement = f"{label}: CPU per job until all succeeded"
        ours = self.bursts["service"].cpu_ms_per_job()
        if ours is None:
            return not_measured(measurement, self.bursts["service"].error or "step failed")
        api, workers = ours
        value = f"API process {api:.2f} ms, its worker processes {workers:.2f} ms"
        seed = self.bursts["seed"].cpu_ms_per_job()
        baselines = [] if seed is None else [f"seed {seed[0] + seed[1]:.2f} ms (one process)"]
        return Row(measurement, value, baselines)

    def _celery_rows(self, label: str) -> list[Row]:
        burst, latency, seed = self.bursts["celery"], self.latency["celery"], self.bursts["seed"]
        measurement = f"Celery: {label}, accepted; all succeeded"
        rows: list[Row] = []
        ours = burst.end_to_end
        if burst.accept_s is None or ours is None or burst.done_s is None:
            outcome = ", ".join(f"{n} {status}" for status, n in sorted(burst.outcome.items()))
            rows.append(not_measured(measurement, burst.error or outcome or "step failed"))
        else:
            accepted = len(burst.ids) / burst.accept_s
            theirs = seed.end_to_end
            rows.append(
                Row(
                    measurement,
                    f"{rate(accepted, 'jobs/s')} accepted; {rate(ours, 'jobs/s')} end to end "
                    f"({len(burst.ids)} in {burst.done_s:.2f} s)",
                    [f"seed {rate(theirs, 'jobs/s')}"] if theirs else [],
                    [ratio(ours / theirs, "seed")] if theirs else [],
                )
            )
        measurement = "Celery: tiny job, upload → succeeded (Prefer: wait)"
        if latency.p50_ms is None or latency.p90_ms is None:
            rows.append(not_measured(measurement, latency.error or "step failed"))
        else:
            seed_p50 = self.latency["seed"].p50_ms
            rows.append(
                Row(
                    measurement,
                    f"p50 {latency.p50_ms:.1f} ms (p90 {latency.p90_ms:.1f} ms)",
                    [f"seed p50 {seed_p50:.1f} ms"] if seed_p50 else [],
                    [ratio(latency.p50_ms / seed_p50, "seed")] if seed_p50 else [],
                )
            )
        return rows
