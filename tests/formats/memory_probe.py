"""Converts a generated result of SIZE bytes to each format in this process and prints the
peak RSS growth: `python -m tests.formats.memory_probe DIRECTORY SIZE`.

The baseline is taken after converting a small result to every format, as in a worker process
that has converted before: the first use of Arrow's compute kernels loads their library
(about 30 MB), once per process, whatever the size of the result."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import orjson

from service.formats import convert

FORMATS = ("parquet", "csv")  # arrow shares the typed path with parquet
COLUMNS = [
    {"name": "id", "type": "integer", "nulls": 0},
    {"name": "name", "type": "string", "nulls": 0},
    {"name": "amount", "type": "number", "nulls": 0},
    {"name": "paid", "type": "boolean", "nulls": 0},
    {"name": "day", "type": "date", "nulls": 0},
    {"name": "at", "type": "datetime", "nulls": 0},
    {"name": "tags", "type": "array", "nulls": 0},
]


def write_result(path: Path, size: int) -> None:
    """Records as the parser writes them, every value different, in blocks of 1 MB."""
    with open(path, "wb") as out:
        written, record = 0, 0
        while written < size:
            lines = []
            for _ in range(5_000):
                record += 1
                lines.append(
                    b'{"id":%d,"name":"customer %d, \\"vip\\"","amount":%d.%02d,"paid":%s,'
                    b'"day":"2026-%02d-%02d","at":"2026-11-01T%02d:%02d:%02d+01:00",'
                    b'"tags":["t%d",%d]}\n'
                    % (
                        record, record, record % 100_000, record % 100,
                        b"true" if record % 3 else b"false",
                        record % 12 + 1, record % 28 + 1,
                        record % 24, record % 60, record // 60 % 60, record % 7, record,
                    )
                )  # fmt: skip
            block = b"".join(lines)
            out.write(block)
            written += len(block)


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    directory, size = Path(sys.argv[1]), int(sys.argv[2])
    small, result = directory / "small.ndjson", directory / "result.ndjson"
    write_result(small, 100_000)
    for format in FORMATS:
        convert(small, COLUMNS, format, directory / f"small.{format}")
    write_result(result, size)
    base = peak_rss()
    growth = {}
    for format in FORMATS:
        target = directory / f"result.{format}"
        convert(result, COLUMNS, format, target)
        growth[format] = peak_rss() - base
        target.unlink()
    sys.stdout.buffer.write(orjson.dumps({"bytes": result.stat().st_size, "growth": growth}))


if __name__ == "__main__":
    main()
