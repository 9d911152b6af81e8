"""2. Ingest throughput, 202 to succeeded, beside a plain Python loop, polars and DuckDB."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tests.bench.datagen import Dataset
from tests.bench.report import Check, Row, mb, not_measured, rate, ratio
from tests.bench.sections import Context, ServiceSection, Step, run_module

CSV_TARGET_MB_S = 100.0
JSONL_TARGET_MB_S = 150.0


@dataclass(frozen=True)
class Converted:
    """A baseline converter's run: bytes consumed in so many seconds."""

    seconds: float
    bytes: int
    rows: int
    capped: bool

    @property
    def mb_per_s(self) -> float:
        return self.bytes / self.seconds / 1e6

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds


class IngestSection(ServiceSection):
    key = "ingest"
    title = "2. Ingest"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.converted: dict[tuple[Dataset, str], Converted] = {}

    def datasets(self) -> list[Dataset]:
        profile = self.ctx.profile
        return [
            Dataset("csv", rows=profile.csv_rows),
            Dataset("csv", target_bytes=profile.csv_large_bytes),
            Dataset("jsonl", rows=profile.jsonl_rows),
        ]

    def steps(self) -> list[Step]:
        steps = [Step("ingest: start service", self.start)]
        for dataset in self.datasets():
            weight = max(1, dataset.approx_size // 100_000_000)
            converters: tuple[str, ...] = ("csv-loop", "polars-csv", "duckdb-csv")
            if dataset.kind == "jsonl":
                converters = ("jsonl-loop", "polars-jsonl")
            steps.append(Step(f"ingest: service {dataset.label}", self.ingest(dataset), weight))
            for name in converters:
                steps.append(Step(f"ingest: {name} {dataset.label}", self._convert(dataset, name)))
        steps.append(Step("ingest: stop service", self.close))
        return steps

    def _convert(self, dataset: Dataset, name: str) -> Callable[[], None]:
        def run() -> None:
            file = self.ctx.data(dataset)
            target = self.ctx.bench_dir / f"{name}-{file.path.stem}.ndjson.tmp"
            cap = str(self.ctx.profile.loop_time_cap_s)
            result = run_module(
                "tests.bench.converters",
                name,
                str(file.path),
                str(target),
                "--time-cap",
                cap,
                timeout=600,
            )
            rows = result["rows"] if result["rows"] is not None else file.rows
            self.converted[(dataset, name)] = Converted(
                result["seconds"], result["bytes"], rows, result["capped"]
            )

        return run

    def rows(self) -> list[Row]:
        rows: list[Row] = []
        for dataset in self.datasets():
            rows += self._rows_for(dataset)
        cap = self.ctx.profile.loop_time_cap_s
        self.notes.append(
            "Service: time from the 202 to the job seen succeeded (polled every 10–200 ms), "
            "upload excluded. (a) plain Python loop: csv.reader, per-value typing, orjson per "
            "record (JSONL: orjson.loads/dumps per line); (b) polars scan_csv/scan_ndjson then "
            "sink_ndjson, default schema inference, all cores; (c) DuckDB COPY (SELECT * FROM "
            "read_csv(f)) TO o (FORMAT json), all cores. Each baseline runs in a process of its "
            "own right after the service's job, at normal priority."
        )
        self.notes.append(
            f"(a) stops after {cap:.0f} s and is rated on the bytes it consumed by then "
            "(marked 'first N MB'); its rate is steady."
        )
        return rows

    def _rows_for(self, dataset: Dataset) -> list[Row]:
        name = dataset.label
        measured = self.ctx.ingests.get(dataset)
        loop = self.converted.get((dataset, f"{dataset.kind}-loop"))
        polars = self.converted.get((dataset, f"polars-{dataset.kind}"))
        duckdb = self.converted.get((dataset, "duckdb-csv")) if dataset.kind == "csv" else None
        bases = [("(a)", loop), ("(b)", polars)]
        targets: list[tuple[str, Converted | None, float]]
        if dataset.kind == "csv":
            bases.append(("(c)", duckdb))
            targets = [(f"≥ {CSV_TARGET_MB_S:.0f} MB/s", None, CSV_TARGET_MB_S)]
            targets += [("≥ 10× (a)", loop, 10.0), ("≥ 0.9× (b)", polars, 0.9)]
            targets += [("≥ 1.0× (c)", duckdb, 1.0)]
        else:
            targets = [(f"≥ {JSONL_TARGET_MB_S:.0f} MB/s", None, JSONL_TARGET_MB_S)]
            targets += [("≥ 0.9× (b)", polars, 0.9)]
        if measured is None:
            reason = self.errors.get(dataset, "step failed")
            return [not_measured(f"{name}: MB/s", reason, [t[0] for t in targets])]
        size = mb(measured.file.size)
        baselines = [_describe(label, base) for label, base in bases]
        ratios: list[str] = []
        checks: list[Check] = []
        for target, base, factor in targets:
            if base is None and target.endswith("MB/s"):
                checks.append(Check(target, measured.mb_per_s >= factor))
            elif base is None:
                checks.append(Check(target, False))
            else:
                share = measured.mb_per_s / base.mb_per_s
                checks.append(Check(target, share >= factor))
        for label, base in bases:
            if base is not None:
                ratios.append(ratio(measured.mb_per_s / base.mb_per_s, label))
        speed = Row(f"{name} ({size}): MB/s", rate(measured.mb_per_s), baselines, ratios, checks)
        row_rates = [
            f"{label} {rate(base.rows_per_s, 'rows/s')}"
            for label, base in bases
            if base is not None
        ]
        per_row = Row(
            f"{name}: rows/s",
            f"{rate(measured.rows_per_s, 'rows/s')} ({measured.rows:,} rows in "
            f"{measured.ingest_s:.2f} s; upload {measured.upload_s:.2f} s)",
            row_rates,
            [
                ratio(measured.rows_per_s / base.rows_per_s, label)
                for label, base in bases
                if base is not None
            ],
        )
        memory = Row(
            f"{name}: peak RSS growth",
            f"server +{mb(measured.memory.growth_server)}, tree +{mb(measured.memory.growth_tree)}",
        )
        return [speed, per_row, memory]


def _describe(label: str, base: Converted | None) -> str:
    if base is None:
        return f"{label} not measured"
    text = f"{label} {rate(base.mb_per_s)}"
    if base.capped:
        text += f" (first {mb(base.bytes)})"
    return text
