"""Deterministic test data: CSV with eight typed columns and the same records as JSONL.

A block of row bodies is drawn once from a seeded generator and repeated with increasing ids,
which writes a gigabyte in seconds. Files are cached in the bench directory beside a small JSON
sidecar and reused while the sidecar still matches.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Literal, TextIO

import orjson

from tests.bench.profile import human_bytes

FORMAT_VERSION = 1
BLOCK_ROWS = 65_536
BATCH_ROWS = 50_000
CSV_HEADER = "id,name,amount,flag,date,created_at,zip,category\n"

FIRST_NAMES = (
    "Ada", "Alan", "Barbara", "Claude", "Dennis", "Edsger", "Frances", "Grace",
    "Hedy", "John", "Ken", "Leslie", "Margaret", "Niklaus", "Radia", "Tony",
)  # fmt: skip
LAST_NAMES = (
    "Allen", "Backus", "Dijkstra", "Hamilton", "Hopper", "Kay", "Knuth", "Lamarr",
    "Lamport", "Liskov", "Lovelace", "McCarthy", "Perlman", "Ritchie", "Shannon", "Turing",
)  # fmt: skip
CATEGORIES = ("books", "games", "garden", "grocery", "health", "music", "sports", "toys")
EPOCH = date(2020, 1, 1)

Kind = Literal["csv", "jsonl"]


@dataclass(frozen=True)
class Dataset:
    """A file to generate: a number of rows, or rows until a byte size is reached."""

    kind: Kind
    rows: int | None = None
    target_bytes: int | None = None
    seed: int = 42

    @property
    def label(self) -> str:
        if self.rows is not None:
            return f"{self.kind.upper()} {_count(self.rows)} rows"
        assert self.target_bytes is not None
        return f"{self.kind.upper()} {human_bytes(self.target_bytes)}"

    @property
    def approx_size(self) -> int:
        """The size in bytes, before generating it (within a few percent)."""
        if self.target_bytes is not None:
            return self.target_bytes
        return (self.rows or 0) * (79 if self.kind == "csv" else 155)

    @property
    def media_type(self) -> str:
        return "text/csv" if self.kind == "csv" else "application/x-ndjson"

    @property
    def filename(self) -> str:
        size = f"{self.rows}r" if self.rows is not None else f"{self.target_bytes}B"
        return f"{self.kind}-{size}-s{self.seed}.{self.kind}"


@dataclass(frozen=True)
class DataFile:
    """A generated file on disk."""

    dataset: Dataset
    path: Path
    size: int
    rows: int


def _count(rows: int) -> str:
    if rows >= 1_000_000 and rows % 1_000_000 == 0:
        return f"{rows // 1_000_000}M"
    if rows >= 1_000 and rows % 1_000 == 0:
        return f"{rows // 1_000}k"
    return str(rows)


def ensure(dataset: Dataset, directory: Path) -> DataFile:
    """The dataset's file, generated unless an identical one is already there."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / dataset.filename
    sidecar = path.with_name(path.name + ".json")
    expected = {
        "version": FORMAT_VERSION,
        "kind": dataset.kind,
        "rows": dataset.rows,
        "target_bytes": dataset.target_bytes,
        "seed": dataset.seed,
    }
    if path.exists() and sidecar.exists():
        meta = orjson.loads(sidecar.read_bytes())
        if all(meta.get(k) == v for k, v in expected.items()) and meta["size"] == (
            path.stat().st_size
        ):
            return DataFile(dataset, path, meta["size"], meta["rows_written"])
    sidecar.unlink(missing_ok=True)
    rows = _generate(dataset, path)
    size = path.stat().st_size
    meta = {**expected, "size": size, "rows_written": rows}
    sidecar.write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2))
    return DataFile(dataset, path, size, rows)


def _generate(dataset: Dataset, path: Path) -> int:
    rng = random.Random(dataset.seed)
    bodies = [_row_body(rng, dataset.kind) for _ in range(BLOCK_ROWS)]
    template = "%d,%s\n" if dataset.kind == "csv" else '{"id":%d,%s\n'
    header = CSV_HEADER if dataset.kind == "csv" else ""
    tmp = path.with_name(path.name + ".tmp")
    # Every character written is ASCII, so len() of the text is its size in bytes.
    with open(tmp, "w", encoding="ascii", newline="", buffering=4 * 1024 * 1024) as out:
        out.write(header)
        rows = _write_rows(out, bodies, template, dataset.rows, dataset.target_bytes, len(header))
    os.replace(tmp, path)
    return rows


def _write_rows(
    out: TextIO,
    bodies: list[str],
    template: str,
    row_limit: int | None,
    byte_limit: int | None,
    written: int,
) -> int:
    write = out.write
    done = 0
    while row_limit is None or done < row_limit:
        count = BATCH_ROWS if row_limit is None else min(BATCH_ROWS, row_limit - done)
        lines = [template % (i + 1, bodies[i % BLOCK_ROWS]) for i in range(done, done + count)]
        size = sum(map(len, lines))
        if byte_limit is not None and written + size >= byte_limit:
            for line in lines:
                write(line)
                written += len(line)
                done += 1
                if written >= byte_limit:
                    return done
        write("".join(lines))
        written += size
        done += count
    return done


def _row_body(rng: random.Random, kind: Kind) -> str:
    """Everything of one record but its id."""
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    reversed_name = rng.random() < 1 / 16
    name = f"{last}, {first}" if reversed_name else f"{first} {last}"
    cents = rng.randrange(10_000_000)
    flag = rng.random() < 0.5
    day = EPOCH + timedelta(days=rng.randrange(2_000))
    created = (
        f"{day.isoformat()}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:"
        f"{rng.randrange(60):02d}Z"
    )
    zip_code = f"{rng.randrange(100_000):05d}"
    category = rng.choice(CATEGORIES)
    if kind == "csv":
        quoted = f'"{name}"' if reversed_name else name
        amount = f"{cents // 100}.{cents % 100:02d}"
        fields = (quoted, amount, "true" if flag else "false", day.isoformat(), created)
        return ",".join((*fields, zip_code, category))
    record = {
        "name": name,
        "amount": cents / 100,
        "flag": flag,
        "date": day.isoformat(),
        "created_at": created,
        "zip": zip_code,
        "category": category,
    }
    return orjson.dumps(record).decode()[1:]
