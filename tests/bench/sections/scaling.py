"""5. Scaling: ingest time and peak memory from 1 MB to 1 GB of CSV."""

from __future__ import annotations

from tests.bench.datagen import Dataset
from tests.bench.profile import human_bytes
from tests.bench.report import Check, Row, mb, not_measured, rate
from tests.bench.sections import IngestRun, ServiceSection, Step

LINEAR_SHARE = 0.8  # MB/s at the largest size, at least this share of the next size down
FLAT_GROWTH = 64e6  # peak RSS growth at the largest size, at most this over the smallest


class ScalingSection(ServiceSection):
    key = "scaling"
    title = "5. Scaling"

    def datasets(self) -> list[Dataset]:
        return [Dataset("csv", target_bytes=size) for size in self.ctx.profile.scaling_sizes]

    def steps(self) -> list[Step]:
        steps = [Step("scaling: start service", self.start)]
        for dataset in self.datasets():
            weight = max(1, dataset.approx_size // 100_000_000)
            steps.append(Step(f"scaling: {dataset.label}", self.ingest(dataset), weight))
        steps.append(Step("scaling: stop service", self.close))
        return steps

    def rows(self) -> list[Row]:
        rows: list[Row] = []
        runs: list[IngestRun] = []
        for dataset in self.datasets():
            label = f"CSV {human_bytes(dataset.approx_size)}"
            measured = self.ctx.ingests.get(dataset)
            if measured is None:
                rows.append(not_measured(label, self.errors.get(dataset, "step failed")))
                continue
            runs.append(measured)
            rows.append(
                Row(
                    f"{label}: ingest time, peak RSS growth",
                    f"{measured.ingest_s:.2f} s ({rate(measured.mb_per_s)}); "
                    f"server +{mb(measured.memory.growth_server)}, "
                    f"tree +{mb(measured.memory.growth_tree)}",
                )
            )
        if len(runs) < len(self.datasets()) or len(runs) < 2:
            rows.append(not_measured("linear cost", "sizes missing", [_linear_target()]))
            rows.append(not_measured("flat memory", "sizes missing", [_flat_target()]))
            return rows
        largest, previous, smallest = runs[-1], runs[-2], runs[0]
        share = largest.mb_per_s / previous.mb_per_s
        rows.append(
            Row(
                f"linear cost: MB/s at {human_bytes(largest.file.dataset.approx_size)}",
                rate(largest.mb_per_s),
                [f"{human_bytes(previous.file.dataset.approx_size)}: {rate(previous.mb_per_s)}"],
                [f"{share:.2f}×"],
                [Check(_linear_target(), share >= LINEAR_SHARE)],
            )
        )
        extra = largest.memory.growth_tree - smallest.memory.growth_tree
        rows.append(
            Row(
                f"flat memory: peak RSS growth at {human_bytes(largest.file.dataset.approx_size)}",
                f"tree +{mb(largest.memory.growth_tree)}",
                [
                    f"{human_bytes(smallest.file.dataset.approx_size)}: "
                    f"tree +{mb(smallest.memory.growth_tree)}"
                ],
                [f"{'+' if extra >= 0 else '−'}{mb(abs(extra))}"],
                [Check(_flat_target(), extra < FLAT_GROWTH)],
            )
        )
        self.notes.append(
            "Ingest time as in section 2 (202 to succeeded, upload excluded); sizes measured "
            "there in this run are not measured twice. Linear cost: throughput at the largest "
            "size holds at the next size down; flat memory: the largest file's peak growth is "
            "within 64 MB of the smallest's."
        )
        return rows


def _linear_target() -> str:
    return f"≥ {LINEAR_SHARE:.2f}× of the next size down"


def _flat_target() -> str:
    return "< smallest + 64 MB"
