"""Throughput and memory of parse_file on a typed 1M-row x 8-column CSV and the same JSONL.

Not a test (pytest does not collect this name). Run from the repo root:

    .venv/bin/python -m tests.parsing.measure [--rows 1000000] [--dir /tmp] [--only csv|jsonl]
    .venv/bin/python -m tests.parsing.measure --file some.csv --file other.jsonl [--chunk-mib 2]

The generated files are kept in `--dir` and reused. The generator is deterministic (seeded),
so files are comparable between runs and machines; `write_csv` and `write_jsonl` can be
imported by other benchmarks. CPU is the process's (all threads); peak RSS growth is sampled
every 5 ms and includes the one-time warm-up of the libraries (about 70 MiB).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import orjson
import psutil

from service.parsing import ParseOptions, ParseProgress, parse_file

HEADER = ["id", "name", "amount", "active", "day", "created_at", "zip", "note"]
_NAMES = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Ken", "Frances", "Dennis"]
_NOTES = ["", "plain", "with, comma", 'say "hi"', "two\nlines", "ünïcödé", "x" * 40]


def _rows(count: int, seed: int = 7) -> list[list[str]]:
    """A block of varied rows; the files repeat it with fresh ids (fast to write)."""
    rng = random.Random(seed)
    start_day, start_time = date(2020, 1, 1), datetime(2020, 1, 1)
    rows = []
    for index in range(count):
        created = start_time + timedelta(seconds=rng.randrange(10**8))
        rows.append(
            [
                str(index),
                f"{rng.choice(_NAMES)} {rng.randrange(10**6)}",
                f"{rng.randrange(10**6) / 100:.2f}" if index % 50 else "",
                rng.choice(["true", "false"]),
                (start_day + timedelta(days=rng.randrange(3000))).isoformat(),
                created.isoformat() + "Z",
                f"{rng.randrange(100000):05d}",
                rng.choice(_NOTES),
            ]
        )
    return rows


def _csv_field(value: str) -> str:
    if any(c in value for c in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value


def write_csv(path: Path, rows: int, block: int = 10_000) -> None:
    body = _rows(block)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(",".join(HEADER) + "\n")
        for first in range(0, rows, block):
            lines = []
            for offset, row in enumerate(body[: min(block, rows - first)]):
                lines.append(",".join(_csv_field(v) for v in [str(first + offset), *row[1:]]))
            out.write("\n".join(lines) + "\n")


def write_jsonl(path: Path, rows: int, block: int = 10_000) -> None:
    body = _rows(block)
    with path.open("wb") as out:
        for first in range(0, rows, block):
            chunk = []
            for offset, row in enumerate(body[: min(block, rows - first)]):
                record: dict[str, object] = dict(zip(HEADER, row, strict=True))
                record["id"] = first + offset
                record["amount"] = float(row[2]) if row[2] else None
                record["active"] = row[3] == "true"
                chunk.append(orjson.dumps(record))
            out.write(b"\n".join(chunk) + b"\n")


class PeakRss:
    """Samples this process's resident memory in a thread."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self.base = self.peak = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._process.memory_info().rss)


async def measure(path: Path, chunk_size: int | None = None) -> None:
    result_path, errors_path = path.with_suffix(".out"), path.with_suffix(".errors")

    phase_started: dict[str, float] = {}

    async def note_phase(progress: ParseProgress) -> None:
        phase_started.setdefault(progress.phase, time.perf_counter())

    size = path.stat().st_size
    with PeakRss() as rss:
        started, cpu_started = time.perf_counter(), time.process_time()
        extra = {} if chunk_size is None else {"chunk_size": chunk_size}
        result = await parse_file(
            path, result_path, errors_path, ParseOptions(), note_phase, **extra
        )
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    print(
        f"{path.name}: {size / 1e6:.1f} MB, {result.rows} rows, {result.rows_failed} failed, "
        f"{elapsed:.2f} s = {size / 1e6 / elapsed:.0f} MB/s (CPU {cpu:.2f} s), "
        f"peak RSS growth {(rss.peak - rss.base) / 2**20:.0f} MiB"
    )
    if "scan" in phase_started and "write" in phase_started:
        scan = phase_started["write"] - started
        print(f"  scan phase {scan:.2f} s, write phase {elapsed - scan:.2f} s")
    print("  columns:", [(c["name"], c["type"]) for c in result.columns])
    result_path.unlink()
    errors_path.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp"))
    parser.add_argument("--only", choices=["csv", "jsonl"])
    parser.add_argument("--chunk-mib", type=float, help="parse_file's chunk_size, in MiB")
    parser.add_argument("--file", type=Path, action="append", help="measure these files instead")
    args = parser.parse_args()
    chunk = None if args.chunk_mib is None else int(args.chunk_mib * 2**20)
    for path in args.file or []:
        asyncio.run(measure(path, chunk))
    if args.file:
        return
    for kind, write in (("csv", write_csv), ("jsonl", write_jsonl)):
        if args.only and args.only != kind:
            continue
        path = args.dir / f"ingest-measure-{args.rows}.{kind}"
        if not path.exists():
            write(path, args.rows)
        asyncio.run(measure(path, chunk))


if __name__ == "__main__":
    main()
