"""3. Status polling from a separate load process, idle and while large files parse."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from tests.bench.datagen import Dataset
from tests.bench.profile import human_bytes
from tests.bench.report import Check, Row, not_measured, rate, ratio
from tests.bench.sections import SMALL_CSV, Context, ServiceSection, Step

HELLO = "/healthz"
P99_LIMIT_MS = 20.0
RPS_SHARE = 0.5
# While two large files parse: against hello-world measured under the same load.
BUSY_RPS_SHARE = 0.6
BUSY_P99_FACTOR = 1.5


@dataclass(frozen=True)
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    failures: int
    busy_share: float | None  # share of the window during which two jobs were running

    @property
    def latency(self) -> str:
        return f"p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms"


class PollingSection(ServiceSection):
    key = "polling"
    title = "3. Status polling"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.idle_job = ""
        self.busy: list[str] = []
        self.loads: dict[tuple[str, str], Load] = {}
        self.window_errors: dict[tuple[str, str], str] = {}

    def _busy_dataset(self) -> Dataset:
        return Dataset("csv", target_bytes=self.ctx.profile.csv_large_bytes)

    def datasets(self) -> list[Dataset]:
        return [self._busy_dataset()]

    def steps(self) -> list[Step]:
        seconds = max(1, round(self.ctx.profile.poll_seconds))
        return [
            Step("polling: start service", self._start),
            Step("polling: idle, hello-world", self._window("idle", "hello"), seconds),
            Step("polling: idle, GET /jobs/{id}", self._window("idle", "job"), seconds),
            Step("polling: submit large jobs", self._submit_busy, 2),
            Step("polling: parsing, GET /jobs/{id}", self._window("parsing", "job"), seconds),
            Step("polling: parsing, hello-world", self._window("parsing", "hello"), seconds),
            Step("polling: stop service", self._stop),
        ]

    def _start(self) -> None:
        self.start()
        assert self.service is not None
        small = self.ctx.data(SMALL_CSV)
        self.idle_job, _ = self.service.submit(small.path, small.dataset.media_type)
        self.service.wait_done(self.idle_job, timeout=60)

    def _submit_busy(self) -> None:
        if self.service is None:
            raise RuntimeError("service is not running")
        file = self.ctx.data(self._busy_dataset())
        for _ in range(self.ctx.profile.busy_jobs):
            job_id, _ = self.service.submit(file.path, file.dataset.media_type)
            self.busy.append(job_id)
        self._wait_running(2, timeout=30)

    def _running(self) -> list[str]:
        assert self.service is not None
        return [j for j in self.busy if self.service.job(j).get("status") == "running"]

    def _wait_running(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self._running()) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"fewer than {count} jobs running after {timeout:.0f} s")
            time.sleep(0.05)

    def _window(self, phase: str, target: str) -> Callable[[], None]:
        def run() -> None:
            key = (phase, target)
            if self.server is None or self.service is None:
                self.window_errors[key] = "service did not start"
                raise RuntimeError("service is not running")
            if phase == "parsing":
                running = self._running()
                if len(running) < 2:
                    self._submit_busy()
                    running = self._running()
                path = f"/jobs/{running[0]}" if target == "job" else HELLO
            else:
                self.server.sampler.wait_quiet()
                path = f"/jobs/{self.idle_job}" if target == "job" else HELLO
            try:
                self.loads[key] = self._load(self.server.port, path, watch=phase == "parsing")
            except Exception as exc:
                self.window_errors[key] = str(exc).splitlines()[0][:120]
                raise

        return run

    def _load(self, port: int, path: str, watch: bool) -> Load:
        profile = self.ctx.profile
        command = [
            sys.executable,
            "-m",
            "tests.bench.loadgen",
            f"--port={port}",
            f"--path={path}",
            f"--connections={profile.poll_connections}",
            f"--seconds={profile.poll_seconds}",
            f"--warmup={profile.poll_warmup_s}",
        ]
        samples: list[bool] = []
        stop = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(samples, stop), daemon=True)
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
            if watch:
                watcher.start()
            out, err = proc.communicate(timeout=profile.poll_seconds + 60)
            stop.set()
            if watch:
                watcher.join()
        if proc.returncode != 0:
            raise RuntimeError(f"load generator failed: {err.decode(errors='replace')[-300:]}")
        data: dict[str, Any] = orjson.loads(out.splitlines()[-1])
        share = sum(samples) / len(samples) if samples else None
        return Load(
            data["rps"],
            data["p50_ms"],
            data["p99_ms"],
            data["requests"],
            data["non_2xx"] + data["errors"],
            share if watch else None,
        )

    def _watch(self, samples: list[bool], stop: threading.Event) -> None:
        """Twice a second: are two of the large jobs still running?"""
        while not stop.wait(0.5):
            try:
                samples.append(len(self._running()) >= 2)
            except Exception:
                samples.append(False)

    def _stop(self) -> None:
        if self.service is not None:
            for job_id in self.busy:
                self.service.remove(job_id)
        self.close()

    def rows(self) -> list[Row]:
        rows: list[Row] = []
        hello_idle = self.loads.get(("idle", "hello"))
        hello_busy = self.loads.get(("parsing", "hello"))
        for phase, hello in (("idle", hello_idle), ("parsing", hello_busy)):
            job = self.loads.get((phase, "job"))
            label = f"{phase}: GET /jobs/{{id}}"
            if job is None:
                reason = self.window_errors.get((phase, "job"), "step failed")
                targets = [f"≥ {RPS_SHARE:.2f}× hello-world"] if phase == "idle" else []
                if phase == "parsing":
                    targets.append(f"≥ {BUSY_RPS_SHARE:.1f}× hello-world")
                    targets.append(f"p99 < {P99_LIMIT_MS:.0f} ms")
                    targets.append(f"p99 ≤ {BUSY_P99_FACTOR:.1f}× hello-world p99")
                rows.append(not_measured(label, reason, targets))
                continue
            base = [f"hello-world {rate(hello.rps, 'req/s')}"] if hello else []
            share = job.rps / hello.rps if hello and hello.rps else None
            checks = []
            if phase == "idle":
                checks.append(Check(f"≥ {RPS_SHARE:.2f}× hello-world", (share or 0) >= RPS_SHARE))
            else:
                checks.append(
                    Check(f"≥ {BUSY_RPS_SHARE:.1f}× hello-world", (share or 0) >= BUSY_RPS_SHARE)
                )
            rows.append(
                Row(
                    f"{label}: requests/s",
                    rate(job.rps, "req/s"),
                    base,
                    [ratio(share, "hello-world")] if share is not None else [],
                    checks,
                )
            )
            latency_checks = []
            p99_ratios = []
            if phase == "parsing":
                latency_checks.append(
                    Check(f"p99 < {P99_LIMIT_MS:.0f} ms", job.p99_ms < P99_LIMIT_MS)
                )
                p99_share = job.p99_ms / hello.p99_ms if hello and hello.p99_ms else None
                if p99_share is not None:
                    p99_ratios.append(ratio(p99_share, "hello-world p99"))
                latency_checks.append(
                    Check(
                        f"p99 ≤ {BUSY_P99_FACTOR:.1f}× hello-world p99",
                        p99_share is not None and p99_share <= BUSY_P99_FACTOR,
                    )
                )
            rows.append(
                Row(
                    f"{label}: latency",
                    job.latency,
                    [f"hello-world {hello.latency}"] if hello else [],
                    p99_ratios,
                    checks=latency_checks,
                )
            )
        for (phase, target), load in sorted(self.loads.items()):
            if load.failures:
                self.notes.append(
                    f"{phase} {target}: {load.failures} of {load.requests} responses failed "
                    "or were not 2xx."
                )
            if load.busy_share is not None and load.busy_share < 1:
                self.notes.append(
                    f"{phase} {target}: two jobs were parsing during {load.busy_share:.0%} "
                    "of the window."
                )
        profile = self.ctx.profile
        self.notes.append(
            f"Load: a separate process, {profile.poll_connections} keep-alive connections, "
            f"closed loop, {profile.poll_seconds:.0f} s per window after "
            f"{profile.poll_warmup_s:.1f} s warm-up. Hello-world is GET {HELLO} of the same "
            "app under identical conditions. 'parsing': GET of one of "
            f"{profile.busy_jobs} large CSV jobs ({human_bytes(profile.csv_large_bytes)} each) "
            "while two of them run."
        )
        return rows
