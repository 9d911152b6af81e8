"""Checks of converted files as the tools that download them read them: DuckDB and pyarrow read
the Parquet, pyarrow the Arrow stream, pandas the CSV, `json.load` the JSON. Every value must
equal the NDJSON record it came from, in the column types the rules give. Used on the files
the engine writes (test_readers) and on the files downloaded over HTTP (test_results_http)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq

from tests.formats.corpus import Result
from tests.formats.expected import (
    ARROW_TYPES,
    canonical_text,
    exact_records,
    records,
    typed_value,
)

DUCKDB_TYPES = {
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
    pa.date32(): "DATE",
    pa.timestamp("us", "UTC"): "TIMESTAMP WITH TIME ZONE",
    pa.string(): "VARCHAR",
    pa.null(): '"NULL"',
}


def expected_rows(result: Result) -> list[dict[str, Any]]:
    types = ARROW_TYPES[result.name]
    kinds = result.types
    return [
        {
            name: typed_value(record.get(name), exact.get(name), kinds[name], arrow_type)
            for name, arrow_type in types.items()
        }
        for record, exact in zip(records(result), exact_records(result), strict=True)
    ]


def pyarrow_parquet(result: Result, files: dict[str, Path]) -> None:
    table = pq.read_table(files["parquet"])
    assert (
        dict(zip(table.column_names, table.schema.types, strict=True)) == (ARROW_TYPES[result.name])
    )
    assert table.to_pylist() == expected_rows(result)


def pyarrow_arrow_stream(result: Result, files: dict[str, Path]) -> None:
    with pa.ipc.open_stream(files["arrow"]) as reader:
        table = reader.read_all()
    assert table.schema == pq.read_schema(files["parquet"]).remove_metadata()
    assert table.to_pylist() == expected_rows(result)


def duckdb_parquet(result: Result, files: dict[str, Path]) -> None:
    types = ARROW_TYPES[result.name]
    if not types:
        return  # DuckDB cannot describe a file without columns
    path = str(files["parquet"])
    with duckdb.connect() as db:
        db.execute("SET TimeZone = 'UTC'")
        described = db.execute("DESCRIBE SELECT * FROM read_parquet(?)", [path]).fetchall()
        cursor = db.execute("SELECT * FROM read_parquet(?)", [path])
        names = [column[0] for column in cursor.description]
        rows = cursor.fetchall()
    assert {row[0]: row[1] for row in described} == {n: DUCKDB_TYPES[t] for n, t in types.items()}
    assert [dict(zip(names, row, strict=True)) for row in rows] == expected_rows(result)


def pandas_csv(result: Result, files: dict[str, Path]) -> None:
    types = ARROW_TYPES[result.name]
    if not types:
        assert files["csv"].read_bytes() == b""
        return
    frame = pd.read_csv(files["csv"], dtype=str, keep_default_na=False)
    assert list(frame.columns) == list(result.types)
    expected = [
        {name: canonical_text(record.get(name)) for name in result.types}
        for record in exact_records(result)
    ]
    assert frame.to_dict("records") == expected


def json_load(result: Result, files: dict[str, Path]) -> None:
    with open(files["json"], encoding="utf-8") as file:
        assert json.load(file) == records(result)
    lines = result.lines()
    body = b",\n".join(lines)
    assert files["json"].read_bytes() == (b"[\n" + body + b"\n]\n" if lines else b"[]\n")


CHECKS = (pyarrow_parquet, pyarrow_arrow_stream, duckdb_parquet, pandas_csv, json_load)
