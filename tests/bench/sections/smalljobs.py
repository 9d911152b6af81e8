"""4. Many small jobs: concurrent uploads of 1 KB files, then the wait until all succeed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import orjson

from tests.bench.datagen import Dataset
from tests.bench.report import Check, Row, not_measured, rate
from tests.bench.sections import SMALL_CSV, Context, ServiceSection, Step
from tests.bench.wire import build_request, multipart, read_response

ACCEPT_TARGET = 500.0


class SmallJobsSection(ServiceSection):
    key = "small"
    title = "4. Many small jobs"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.ids: list[str] = []
        self.refused: dict[int, int] = {}
        self.started = 0.0
        self.accept_s: float | None = None
        self.done_s: float | None = None
        self.outcome: dict[str, int] = {}
        self.error = ""

    def datasets(self) -> list[Dataset]:
        return [SMALL_CSV]

    def steps(self) -> list[Step]:
        count = self.ctx.profile.small_jobs
        return [
            Step("small jobs: start service", self.start),
            Step(f"small jobs: {count} uploads", self._guard(self._upload), 2),
            Step("small jobs: wait until all succeed", self._guard(self._wait), 5),
            Step("small jobs: stop service", self.close),
        ]

    def _guard(self, step: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            if self.server is None or self.service is None:
                self.error = self.error or "service did not start"
                raise RuntimeError("service is not running")
            try:
                step()
            except Exception as exc:
                self.error = self.error or str(exc).splitlines()[0][:120]
                raise

        return run

    def _upload(self) -> None:
        assert self.server is not None
        self.server.sampler.wait_quiet()
        file = self.ctx.data(SMALL_CSV)
        content_type, parts = multipart(file.path, file.dataset.media_type)
        body = b"".join(p if isinstance(p, bytes) else p.read_bytes() for p in parts)
        request = build_request(
            "POST", "/jobs", self.server.port, {"Content-Type": content_type}, body
        )
        self.started = time.perf_counter()
        asyncio.run(self._clients(self.server.port, request))
        self.accept_s = time.perf_counter() - self.started

    async def _clients(self, port: int, request: bytes) -> None:
        remaining = iter(range(self.ctx.profile.small_jobs))

        async def client() -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                for _ in remaining:
                    writer.write(request)
                    status, body, keep_alive = await read_response(reader)
                    if status == 202:
                        self.ids.append(str(orjson.loads(body)["id"]))
                    else:
                        self.refused[status] = self.refused.get(status, 0) + 1
                    if not keep_alive:
                        writer.close()
                        reader, writer = await asyncio.open_connection("127.0.0.1", port)
            finally:
                writer.close()

        await asyncio.gather(*(client() for _ in range(self.ctx.profile.small_clients)))

    def _wait(self) -> None:
        """Poll the last accepted job until done, then confirm all the others.

        The jobs run in order, so when the last is done the others almost always are: the
        time is when the last one was seen done, or later if the sweep found any still going.
        """
        assert self.service is not None
        if not self.ids:
            raise RuntimeError("no job was accepted")
        deadline = self.started + self.ctx.profile.small_wait_cap_s
        while not self.service.job(self.ids[-1]).get("done") and time.perf_counter() < deadline:
            time.sleep(0.02)
        finished = time.perf_counter()
        pending = list(self.ids)
        first_sweep = True
        while pending:
            still: list[str] = []
            for job_id in pending:
                job = self.service.job(job_id)
                if not job.get("done"):
                    still.append(job_id)
                    continue
                status = str(job.get("status"))
                self.outcome[status] = self.outcome.get(status, 0) + 1
                if not first_sweep:
                    finished = time.perf_counter()
            pending, first_sweep = still, False
            if pending and time.perf_counter() > deadline:
                self.outcome["not done"] = len(pending)
                return
            if pending:
                time.sleep(0.05)
        self.done_s = finished - self.started

    def rows(self) -> list[Row]:
        profile = self.ctx.profile
        count = profile.small_jobs
        label = f"{count} uploads of 1 KB, {profile.small_clients} clients"
        target = f"≥ {ACCEPT_TARGET:.0f}/s"
        if self.accept_s is None:
            return [
                not_measured(f"{label}: accepted jobs/s", self.error or "step failed", [target])
            ]
        accepted = len(self.ids)
        per_s = accepted / self.accept_s
        refused = ", ".join(f"{n}× {status}" for status, n in sorted(self.refused.items()))
        value = f"{rate(per_s, 'jobs/s')} ({accepted} in {self.accept_s:.2f} s"
        value += f"; refused: {refused})" if refused else ")"
        rows = [
            Row(
                f"{label}: accepted jobs/s",
                value,
                checks=[Check(target, per_s >= ACCEPT_TARGET and accepted == count)],
            )
        ]
        outcome = ", ".join(f"{n} {status}" for status, n in sorted(self.outcome.items()))
        if self.done_s is None:
            reason = self.error or f"after {profile.small_wait_cap_s:.0f} s: {outcome}"
            rows.append(not_measured("time until all succeed", reason))
        else:
            all_ok = self.outcome.get("succeeded", 0) == accepted
            rows.append(
                Row(
                    "time until all succeed",
                    f"{self.done_s:.2f} s from the first upload "
                    f"({accepted / self.done_s:,.0f} jobs/s end to end; {outcome})",
                    checks=[] if all_ok else [Check("all succeed", False)],
                )
            )
        self.notes.append(
            "Clients: asyncio keep-alive connections in the benchmark process, multipart "
            "uploads of the same 1 KB CSV; a job counts as accepted on its 202."
        )
        return rows
