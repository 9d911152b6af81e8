"""1. Upload throughput and server memory, beside the seed-style app and the HTTP ceiling."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.bench.client import Mode, Service, upload
from tests.bench.datagen import Dataset
from tests.bench.profile import human_bytes
from tests.bench.report import Check, Row, mb, rate, ratio
from tests.bench.sections import Context, Section, Step
from tests.bench.servers import Server, uvicorn_command

APPS = {
    "ceiling": ("tests.bench.discard_app:app", "/", "/"),
    "seed": ("tests.bench.seed_app:app", "/upload", "/upload-raw"),
}
MODES: tuple[Mode, ...] = ("multipart", "raw")
RSS_LIMIT = 64e6


@dataclass
class Best:
    """The fastest of the repeated uploads, and the largest memory growth seen."""

    mb_per_s: float = 0.0
    growth_server: int = 0
    growth_tree: int = 0
    error: str = ""


class UploadSection(Section):
    key = "upload"
    title = "1. Upload"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.servers: dict[str, Server] = {}
        self.service: Service | None = None
        self.results: dict[tuple[str, Mode, int], Best] = {}

    def _sizes(self) -> list[Dataset]:
        return [Dataset("csv", target_bytes=size) for size in self.ctx.profile.upload_sizes]

    def datasets(self) -> list[Dataset]:
        return self._sizes()

    def steps(self) -> list[Step]:
        profile = self.ctx.profile
        steps = [Step("upload: start servers", self._start)]
        for dataset, rounds in zip(self._sizes(), profile.upload_rounds, strict=True):
            weight = max(1, dataset.approx_size // 100_000_000) * (len(APPS) + 1)
            for mode in MODES:
                for number in range(1, rounds + 1):
                    label = f"upload: {mode} {human_bytes(dataset.approx_size)} {number}/{rounds}"
                    steps.append(Step(label, self._round(mode, dataset), weight))
        steps.append(Step("upload: stop servers", self.close))
        return steps

    def _start(self) -> None:
        for name, (app, _, _) in APPS.items():
            command = uvicorn_command(app)
            self.servers[name] = self.start_server(command, f"upload-{name}", service=False)
        self.servers["service"], self.service = self.start_service()

    def _round(self, mode: Mode, dataset: Dataset) -> Callable[[], None]:
        """One upload to each app in turn, so that other load on the machine hits all alike."""

        def run() -> None:
            file = self.ctx.data(dataset)
            failed: list[str] = []
            for app in (*APPS, "service"):
                best = self.results.setdefault((app, mode, file.dataset.approx_size), Best())
                server = self.servers.get(app)
                try:
                    if server is None:
                        raise RuntimeError("server did not start")
                    self._once(server, app, mode, file.path, file.dataset.media_type, best)
                except Exception as exc:
                    best.error = str(exc).splitlines()[0][:120]
                    failed.append(f"{app}: {best.error}")
            if failed:
                raise RuntimeError("; ".join(failed))

        return run

    def _once(
        self, server: Server, app: str, mode: Mode, path: Path, media_type: str, best: Best
    ) -> None:
        target = "/jobs" if app == "service" else APPS[app][1 if mode == "multipart" else 2]
        server.sampler.wait_quiet()
        with server.sampler.phase() as memory:
            sent = upload(server.port, mode, path, media_type, target)
        if sent.response.status not in (200, 201, 202):
            raise RuntimeError(f"answered {sent.response.status}: {sent.response.body[:200]!r}")
        if self.service is not None and app == "service":
            self.service.remove(str(sent.response.json()["id"]))
        best.mb_per_s = max(best.mb_per_s, path.stat().st_size / sent.seconds / 1e6)
        best.growth_server = max(best.growth_server, memory.growth_server)
        best.growth_tree = max(best.growth_tree, memory.growth_tree)

    def rows(self) -> list[Row]:
        rows: list[Row] = []
        for dataset in self._sizes():
            for mode in MODES:
                rows += self._rows_for(mode, dataset.approx_size)
        profile = self.ctx.profile
        rounds = ", ".join(
            f"{n} at {human_bytes(size)}"
            for size, n in zip(profile.upload_sizes, profile.upload_rounds, strict=True)
        )
        self.notes.append(
            f"Best of several rounds ({rounds}), each uploading once to every app in turn. "
            "The client streams from disk with sendfile(). The service fsyncs each upload "
            "before its 202; the seed app does not. Seed: FastAPI `await file.read()` "
            "(multipart) or `await request.body()` (raw), then write; ceiling: a bare ASGI "
            "app that discards the body."
        )
        self.notes.append(
            "RSS growth: peak during the upload minus the idle server just before it; "
            "'tree' adds the server's child processes. Target checked on the tree."
        )
        return rows

    def _rows_for(self, mode: Mode, size: int) -> list[Row]:
        name = f"{mode} {human_bytes(size)}"
        service = self.results.get(("service", mode, size))
        measured = service is not None and service.mb_per_s > 0
        bases = {label: self.results.get((label, mode, size)) for label in ("ceiling", "seed")}
        baselines: list[str] = []
        ratios: list[str] = []
        checks: list[Check] = []
        for label, factor in (("ceiling", 0.5), ("seed", 2.0)):
            base = bases[label]
            target = f"≥ {factor:.2f}× {label}" if factor < 1 else f"≥ {factor:.0f}× {label}"
            if base is None or not base.mb_per_s:
                baselines.append(f"{label}: not measured")
                checks.append(Check(target, False))
                continue
            baselines.append(f"{label} {rate(base.mb_per_s)}")
            share = service.mb_per_s / base.mb_per_s if service and measured else 0.0
            if measured:
                ratios.append(ratio(share, label))
            checks.append(Check(target, share >= factor))
        memory_baselines = [
            f"{label} +{mb(base.growth_server)}"
            for label, base in bases.items()
            if base is not None and base.mb_per_s
        ]
        memory_check = Check(f"< {RSS_LIMIT / 1e6:.0f} MB", False)
        if service is None or not measured:
            reason = (service.error if service else "") or "step failed"
            value = f"not measured ({reason})"
            return [
                Row(f"upload {name}: MB/s", value, baselines, ratios, checks),
                Row(f"upload {name}: RSS growth", value, memory_baselines, [], [memory_check]),
            ]
        memory_check = Check(memory_check.target, service.growth_tree < RSS_LIMIT)
        return [
            Row(f"upload {name}: MB/s", rate(service.mb_per_s), baselines, ratios, checks),
            Row(
                f"upload {name}: RSS growth",
                f"server +{mb(service.growth_server)}, tree +{mb(service.growth_tree)}",
                memory_baselines,
                checks=[memory_check],
            ),
        ]
