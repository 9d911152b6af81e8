"""Result conversions, each run in its own process: `python -m tests.bench.conversions`.

- `parse SOURCE RESULT`: the service's parser, writing the NDJSON result and, beside it,
  `RESULT.columns.json` (the job's `result.columns`).
- `service-FORMAT RESULT TARGET`: `service.formats.convert` to json, csv, parquet or arrow.
- `polars-parquet RESULT TARGET`: `pl.read_ndjson(RESULT).write_parquet(TARGET)`, polars'
  defaults (schema inferred from the values, all cores).

Prints one JSON object: wall and CPU seconds, peak RSS growth, and the size of what was
written. The growth is over the process after its imports and a warm-up conversion of the
result's first 64 KiB: the first use of Arrow's compute kernels loads their library (about
30 MB), once per process, whatever the size of the result.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson


def columns_path(result: Path) -> Path:
    return result.with_name(result.name + ".columns.json")


def parse(source: Path, result: Path) -> None:
    from service.parsing import ParseOptions, ParseProgress, parse_file

    async def ignore(_: ParseProgress) -> None:
        return None

    errors = result.with_name(result.name + ".errors.tmp")
    try:
        parsed = asyncio.run(parse_file(source, result, errors, ParseOptions(), ignore))
    finally:
        errors.unlink(missing_ok=True)
    columns_path(result).write_bytes(orjson.dumps(parsed.columns))


def service(format: str) -> Any:
    from service.formats import convert

    def run(result: Path, target: Path) -> None:
        convert(result, orjson.loads(columns_path(result).read_bytes()), format, target)

    return run


def polars_parquet(result: Path, target: Path) -> None:
    import polars as pl

    pl.read_ndjson(result).write_parquet(target)


def _warm_up(run: Any, result: Path, target: Path) -> None:
    """The conversion once on the result's first records, written beside the target."""
    with open(result, "rb") as source:
        head = source.read(64 * 1024)
    small = target.with_name(target.name + ".warm-up.ndjson")
    small.write_bytes(head[: head.rfind(b"\n") + 1])
    columns_path(small).write_bytes(columns_path(result).read_bytes())
    try:
        run(small, target)
    finally:
        for path in (small, columns_path(small), target):
            path.unlink(missing_ok=True)


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("conversion")
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    args = parser.parse_args(argv)
    run: Callable[[Path, Path], None]
    if args.conversion == "parse":
        run = parse
    elif args.conversion == "polars-parquet":
        import polars  # noqa: F401  (imported before the baseline is taken)

        run = polars_parquet
    elif args.conversion.startswith("service-"):
        run = service(args.conversion.removeprefix("service-"))
    else:
        parser.error(f"unknown conversion {args.conversion!r}")
    if args.conversion != "parse":
        _warm_up(run, args.source, args.target)
    base = _peak_rss()
    started, cpu = time.perf_counter(), time.process_time()
    run(args.source, args.target)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    figures = {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "rss_growth": max(0, _peak_rss() - base),
        "bytes_in": args.source.stat().st_size,
        "bytes_out": args.target.stat().st_size,
    }
    sys.stdout.buffer.write(orjson.dumps(figures) + b"\n")


if __name__ == "__main__":
    main()
