"""Baseline converters to NDJSON, each run in its own process: `python -m tests.bench.converters`.

- `csv-loop`: the plain Python loop: csv.reader, per-value typing, orjson per record.
- `jsonl-loop`: the same for JSONL: orjson.loads and orjson.dumps per line.
- `polars-csv` / `polars-jsonl`: polars scan_csv / scan_ndjson, then sink_ndjson.
- `duckdb-csv`: DuckDB `COPY (SELECT * FROM read_csv(...)) TO ... (FORMAT json)`.

The loops stop after `--time-cap` seconds and report the bytes consumed by then: their rate
is steady, and this keeps a gigabyte from taking minutes. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

CHECK_EVERY = 4096  # rows between looks at the clock


def typed(value: str) -> Any:
    """The value as JSON would have it: null, boolean, integer, number or string."""
    if value == "":
        return None
    lowered = value.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value


def csv_loop(source: Path, target: Path, cap: float) -> dict[str, Any]:
    consumed = 0
    rows = 0
    capped = False
    start = time.perf_counter()
    with open(source, encoding="utf-8", newline="") as src, open(target, "wb") as out:

        def lines() -> Iterator[str]:
            nonlocal consumed
            for line in src:
                consumed += len(line)  # the data is ASCII: characters are bytes
                yield line

        reader = csv.reader(lines())
        header = next(reader)
        for row in reader:
            out.write(
                orjson.dumps(
                    dict(zip(header, map(typed, row), strict=False)),
                    option=orjson.OPT_APPEND_NEWLINE,
                )
            )
            rows += 1
            if rows % CHECK_EVERY == 0 and time.perf_counter() - start > cap:
                capped = True
                break
    return _measured(start, consumed, rows, capped)


def jsonl_loop(source: Path, target: Path, cap: float) -> dict[str, Any]:
    consumed = 0
    rows = 0
    capped = False
    start = time.perf_counter()
    with open(source, "rb") as src, open(target, "wb") as out:
        for line in src:
            consumed += len(line)
            if not line.strip():
                continue
            out.write(orjson.dumps(orjson.loads(line), option=orjson.OPT_APPEND_NEWLINE))
            rows += 1
            if rows % CHECK_EVERY == 0 and time.perf_counter() - start > cap:
                capped = True
                break
    return _measured(start, consumed, rows, capped)


def polars_csv(source: Path, target: Path, cap: float) -> dict[str, Any]:
    import polars as pl

    start = time.perf_counter()
    pl.scan_csv(source).sink_ndjson(target)
    return _measured(start, source.stat().st_size, None, False)


def polars_jsonl(source: Path, target: Path, cap: float) -> dict[str, Any]:
    import polars as pl

    start = time.perf_counter()
    pl.scan_ndjson(source).sink_ndjson(target)
    return _measured(start, source.stat().st_size, None, False)


def duckdb_csv(source: Path, target: Path, cap: float) -> dict[str, Any]:
    import duckdb

    start = time.perf_counter()
    with duckdb.connect() as connection:
        connection.execute(
            f"COPY (SELECT * FROM read_csv({_sql_text(source)})) "
            f"TO {_sql_text(target)} (FORMAT json)"
        )
    return _measured(start, source.stat().st_size, None, False)


def _sql_text(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _measured(start: float, consumed: int, rows: int | None, capped: bool) -> dict[str, Any]:
    return {
        "seconds": time.perf_counter() - start,
        "bytes": consumed,
        "rows": rows,
        "capped": capped,
    }


CONVERTERS: dict[str, Callable[[Path, Path, float], dict[str, Any]]] = {
    "csv-loop": csv_loop,
    "jsonl-loop": jsonl_loop,
    "polars-csv": polars_csv,
    "polars-jsonl": polars_jsonl,
    "duckdb-csv": duckdb_csv,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("converter", choices=sorted(CONVERTERS))
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--time-cap", type=float, default=float("inf"))
    args = parser.parse_args(argv)
    try:
        result = CONVERTERS[args.converter](args.source, args.target, args.time_cap)
    finally:
        args.target.unlink(missing_ok=True)
    sys.stdout.buffer.write(orjson.dumps(result) + b"\n")


if __name__ == "__main__":
    main()
