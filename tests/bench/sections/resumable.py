"""Resumable uploads: a large file through tus in 50 MB chunks, beside a plain POST /jobs of
the same file to the same server in the same run."""

from __future__ import annotations

import time
from pathlib import Path

from tests.bench.client import Service, upload
from tests.bench.datagen import Dataset
from tests.bench.profile import MB, human_bytes
from tests.bench.report import Check, Row, not_measured, rate, ratio
from tests.bench.sections import Context, Section, Step
from tests.bench.wire import Connection, FileRange

CHUNK_BYTES = 50 * MB
TARGET = 0.8
TUS = {"Tus-Resumable": "1.0.0"}


def tus_upload(port: int, path: Path, chunk: int = CHUNK_BYTES) -> tuple[float, str]:
    """Create an upload and PATCH the file in chunks on one keep-alive connection; the
    seconds from the creation to the last answer, and the job's id from its Link."""
    size = path.stat().st_size
    with Connection(port) as conn:
        start = time.perf_counter()
        created = conn.request("POST", "/uploads", {**TUS, "Upload-Length": str(size)})
        if created.status != 201:
            raise RuntimeError(f"creation answered {created.status}: {created.body[:200]!r}")
        location = created.headers["location"]
        offset = 0
        link = ""
        while offset < size:
            count = min(chunk, size - offset)
            headers = {
                **TUS,
                "Content-Type": "application/offset+octet-stream",
                "Upload-Offset": str(offset),
            }
            answer = conn.request("PATCH", location, headers, [FileRange(path, offset, count)])
            if answer.status != 204:
                raise RuntimeError(f"PATCH answered {answer.status}: {answer.body[:200]!r}")
            offset = int(answer.headers["upload-offset"])
            link = answer.headers.get("link", "")
        seconds = time.perf_counter() - start
    return seconds, link.removeprefix("</jobs/").removesuffix('>; rel="job"')


class ResumableSection(Section):
    key = "tus"
    title = "7. Resumable uploads (tus)"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.service: Service | None = None
        self.port = 0
        self.best: dict[str, float] = {}
        self.error = ""

    def _dataset(self) -> Dataset:
        return Dataset("csv", target_bytes=self.ctx.profile.upload_sizes[-1])

    def datasets(self) -> list[Dataset]:
        return [self._dataset()]

    def steps(self) -> list[Step]:
        dataset = self._dataset()
        weight = max(1, dataset.approx_size // 100_000_000) * 2
        steps = [Step("tus: start the service", self._start)]
        steps += [Step(f"tus: round {n}/2", self._round, weight) for n in (1, 2)]
        steps.append(Step("tus: stop the service", self.close))
        return steps

    def _start(self) -> None:
        server, self.service = self.start_service()
        self.port = server.port

    def _round(self) -> None:
        """One plain upload and one through tus, the same file; the faster of each is kept."""
        file = self.ctx.data(self._dataset())
        if self.service is None:
            self.error = "service did not start"
            raise RuntimeError(self.error)
        try:
            sent = upload(self.port, "raw", file.path, file.dataset.media_type)
            if sent.response.status != 202:
                raise RuntimeError(f"POST /jobs answered {sent.response.status}")
            self.service.remove(str(sent.response.json()["id"]))
            seconds, job_id = tus_upload(self.port, file.path)
            self.service.remove(job_id)
        except Exception as exc:
            self.error = str(exc).splitlines()[0][:120]
            raise
        size = file.path.stat().st_size
        for name, taken in (("post", sent.seconds), ("tus", seconds)):
            self.best[name] = max(self.best.get(name, 0.0), size / taken / 1e6)

    def rows(self) -> list[Row]:
        size = human_bytes(self._dataset().approx_size)
        measurement = f"tus {size} in {human_bytes(CHUNK_BYTES)} chunks: MB/s"
        target = f"≥ {TARGET:.2f}× POST /jobs"
        if "tus" not in self.best or "post" not in self.best:
            return [not_measured(measurement, self.error or "step failed", [target])]
        share = self.best["tus"] / self.best["post"]
        self.notes.append(
            "Best of 2 rounds, each a raw-body POST /jobs then the same file through tus "
            "(POST /uploads, then PATCHes of 50 MB sent with sendfile() on one keep-alive "
            "connection, timed to the last PATCH's answer, whose job is then made). Each PATCH "
            "is fsync'd with the upload's record before its 204."
        )
        return [
            Row(
                measurement,
                rate(self.best["tus"]),
                [f"POST /jobs (raw) {rate(self.best['post'])}"],
                [ratio(share, "POST /jobs")],
                [Check(target, share >= TARGET)],
            )
        ]
