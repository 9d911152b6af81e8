"""6. Result formats: converting a job's NDJSON result, beside polars doing the same."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.bench.client import Service, require_succeeded
from tests.bench.datagen import Dataset
from tests.bench.profile import human_bytes
from tests.bench.report import Check, Row, mb, not_measured, rate, ratio
from tests.bench.sections import Context, Section, Step, run_module

FORMATS = ("parquet", "csv", "arrow", "json")
ROUNDS = (3, 2)  # Parquet rounds: up to 100 MB of CSV, and above
RSS_LIMIT = 128 * 2**20
TARGET_RATIO = 1.0


@dataclass(frozen=True)
class Conversion:
    """One conversion in a fresh process, as `tests.bench.conversions` reports it."""

    seconds: float
    cpu_seconds: float
    rss_growth: int
    bytes_in: int
    bytes_out: int

    @property
    def mb_per_s(self) -> float:
        return self.bytes_in / self.seconds / 1e6


def convert(name: str, source: Path, target: Path) -> Conversion:
    """Run one conversion in its own process; `name` is `parse`, `polars-parquet` or
    `service-<format>`."""
    try:
        figures = run_module("tests.bench.conversions", name, str(source), str(target), timeout=900)
    finally:
        if name != "parse":
            target.unlink(missing_ok=True)
    return Conversion(**figures)


class FormatsSection(Section):
    key = "formats"
    title = "6. Result formats"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        # (dataset, converter) -> the best round (least seconds), and the largest RSS growth
        self.best: dict[tuple[Dataset, str], Conversion] = {}
        self.growth: dict[tuple[Dataset, str], int] = {}
        self.errors: dict[Dataset, str] = {}
        self.results: dict[Dataset, Path] = {}
        # dataset -> seconds from the first request of ?format=parquet to the download's end
        self.http_seconds: dict[Dataset, float] = {}
        self.service: Service | None = None

    def datasets(self) -> list[Dataset]:
        profile = self.ctx.profile
        return [
            Dataset("csv", rows=profile.csv_rows),
            Dataset("csv", target_bytes=profile.csv_large_bytes),
        ]

    def steps(self) -> list[Step]:
        steps = []
        for dataset in self.datasets():
            size = human_bytes(dataset.approx_size)
            weight = max(1, dataset.approx_size // 100_000_000)
            steps.append(Step(f"formats: parse {size}", self._parse(dataset), weight))
            rounds = ROUNDS[0] if dataset.approx_size <= 100_000_000 else ROUNDS[1]
            for number in range(1, rounds + 1):
                label = f"formats: parquet {size} {number}/{rounds}"
                steps.append(
                    Step(
                        label,
                        self._round(dataset, ["polars-parquet", "service-parquet"]),
                        weight * 2,
                    )
                )
            steps.append(
                Step(f"formats: parquet over HTTP {size}", self._over_http(dataset), weight * 3)
            )
            others = [f"service-{f}" for f in FORMATS if f != "parquet"]
            steps.append(
                Step(f"formats: csv, arrow, json {size}", self._round(dataset, others), weight * 2)
            )
        return steps

    def _parse(self, dataset: Dataset) -> Callable[[], None]:
        """The NDJSON result of the dataset, written by the parser of this run (about 2 MB
        for each MB of CSV), kept until the section closes."""

        def run() -> None:
            file = self.ctx.data(dataset)
            result = file.path.with_name(file.path.name + ".result.ndjson")
            try:
                convert("parse", file.path, result)
            except Exception as exc:
                self.errors[dataset] = str(exc).splitlines()[0][:120]
                raise
            self.results[dataset] = result

        return run

    def _over_http(self, dataset: Dataset) -> Callable[[], None]:
        """The dataset ingested by `python -m service`, then its Parquet downloaded: timed from
        the first request (which converts) to the last byte received."""

        def run() -> None:
            if self.service is None:
                _, self.service = self.start_service()
            service = self.service
            file = self.ctx.data(dataset)
            job_id, _ = service.submit(file.path, dataset.media_type)
            try:
                job, _ = service.wait_done(job_id, self.ctx.profile.ingest_timeout_s)
                require_succeeded(job)
                started = time.perf_counter()
                url = f"/jobs/{job_id}/result?format=parquet"
                with service.http.stream("GET", url, timeout=900) as response:
                    response.raise_for_status()
                    for _ in response.iter_raw(1024 * 1024):
                        pass
                self.http_seconds[dataset] = time.perf_counter() - started
            finally:
                service.remove(job_id)

        return run

    def close(self) -> None:
        for result in self.results.values():
            result.unlink(missing_ok=True)
            result.with_name(result.name + ".columns.json").unlink(missing_ok=True)
        super().close()

    def _round(self, dataset: Dataset, converters: list[str]) -> Callable[[], None]:
        """Each converter once, one after the other, so that other load hits all alike."""

        def run() -> None:
            result = self.results.get(dataset)
            if result is None:
                raise RuntimeError(self.errors.get(dataset, "no result to convert"))
            for name in converters:
                target = result.with_name(f"{result.name}.{name}.tmp")
                measured = convert(name, result, target)
                key = (dataset, name)
                if key not in self.best or measured.seconds < self.best[key].seconds:
                    self.best[key] = measured
                self.growth[key] = max(self.growth.get(key, 0), measured.rss_growth)

        return run

    def rows(self) -> list[Row]:
        rows: list[Row] = []
        for dataset in self.datasets():
            rows += self._rows_for(dataset)
        self.notes.append(
            "Each conversion runs in a fresh process on the NDJSON result that parse_file wrote "
            "for the benchmark CSV (sizes are the CSV's; MB/s count the NDJSON read). Parquet: "
            f"best of {ROUNDS[0]} rounds up to 100 MB, of {ROUNDS[1]} above, polars and the "
            "service in turn. Baseline: polars `pl.read_ndjson(result).write_parquet(out)` (types "
            "inferred, all cores, the whole result in memory). The service: "
            "`service.formats.convert` with the job's result.columns (zstd, row groups of "
            "128k rows)."
        )
        self.notes.append(
            "Parquet over HTTP: the CSV ingested by `python -m service`, then "
            "`GET /jobs/{id}/result?format=parquet` timed from the request, which hands the "
            "conversion to the service's spare converter (`python -m service.formats --spare`, "
            "started and warmed up ahead of need) and waits for it, to the last byte of the "
            "download."
        )
        self.notes.append(
            "RSS growth: peak RSS of the converting process over its peak after imports and a "
            "warm-up conversion of the result's first 64 KiB (the first use of Arrow's compute "
            "kernels loads their library, about 30 MB, once per process)."
        )
        return rows

    def _rows_for(self, dataset: Dataset) -> list[Row]:
        size = human_bytes(dataset.approx_size)
        ours = self.best.get((dataset, "service-parquet"))
        polars = self.best.get((dataset, "polars-parquet"))
        speed_target = f"≥ {TARGET_RATIO:.1f}× polars"
        memory_target = "< 128 MiB"
        if ours is None or polars is None:
            reason = self.errors.get(dataset, "step failed")
            return [
                not_measured(f"Parquet, CSV {size}: seconds", reason, [speed_target]),
                not_measured(f"Parquet, CSV {size}: RSS growth", reason, [memory_target]),
            ]
        share = polars.seconds / ours.seconds
        rows = [
            Row(
                f"Parquet, CSV {size} ({mb(ours.bytes_in)} NDJSON): seconds",
                f"{ours.seconds:.2f} s ({rate(ours.mb_per_s)}, CPU {ours.cpu_seconds:.1f} s)",
                [f"polars {polars.seconds:.2f} s (CPU {polars.cpu_seconds:.1f} s)"],
                [ratio(share, "polars")],
                [Check(speed_target, share >= TARGET_RATIO)],
            ),
            Row(
                f"Parquet, CSV {size}: peak RSS growth, file size",
                f"+{mb(self.growth[(dataset, 'service-parquet')])}, {mb(ours.bytes_out)}",
                [f"polars +{mb(self.growth[(dataset, 'polars-parquet')])}, {mb(polars.bytes_out)}"],
                checks=[
                    Check(memory_target, self.growth[(dataset, "service-parquet")] < RSS_LIMIT)
                ],
            ),
        ]
        over_http = self.http_seconds.get(dataset)
        if over_http is None:
            rows.append(
                not_measured(
                    f"Parquet over HTTP, CSV {size}: seconds", "step failed", [speed_target]
                )
            )
        else:
            rows.append(
                Row(
                    f"Parquet over HTTP, CSV {size}: first request to end of download",
                    f"{over_http:.2f} s",
                    [f"polars {polars.seconds:.2f} s"],
                    [ratio(polars.seconds / over_http, "polars")],
                    [Check(speed_target, polars.seconds / over_http >= TARGET_RATIO)],
                )
            )
        for name in FORMATS[1:]:
            measured = self.best.get((dataset, f"service-{name}"))
            label = f"{name.upper() if name != 'arrow' else 'Arrow stream'}, CSV {size}"
            if measured is None:
                rows.append(not_measured(f"{label}: seconds", "step failed", [memory_target]))
                continue
            rows.append(
                Row(
                    f"{label}: seconds, peak RSS growth, file size",
                    f"{measured.seconds:.2f} s ({rate(measured.mb_per_s)}); "
                    f"+{mb(measured.rss_growth)}; {mb(measured.bytes_out)}",
                    checks=[Check(memory_target, measured.rss_growth < RSS_LIMIT)],
                )
            )
        return rows
