"""The converted files as the tools that download them read them: DuckDB and pyarrow read the
Parquet, pyarrow the Arrow stream, pandas the CSV, `json.load` the JSON. Every value must equal
the NDJSON record it came from, in the column types the rules give."""

from __future__ import annotations

import json
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq

from tests.formats.corpus import Converted
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


def expected_rows(case: Converted) -> list[dict[str, Any]]:
    types = ARROW_TYPES[case.result.name]
    kinds = case.result.types
    return [
        {
            name: typed_value(record.get(name), exact.get(name), kinds[name], arrow_type)
            for name, arrow_type in types.items()
        }
        for record, exact in zip(records(case.result), exact_records(case.result), strict=True)
    ]


def test_pyarrow_reads_the_parquet_with_the_column_types(case: Converted) -> None:
    table = pq.read_table(case.files["parquet"])
    assert (
        dict(zip(table.column_names, table.schema.types, strict=True))
        == (ARROW_TYPES[case.result.name])
    )
    assert table.to_pylist() == expected_rows(case)


def test_pyarrow_reads_the_arrow_stream_with_the_same_schema(case: Converted) -> None:
    with pa.ipc.open_stream(case.files["arrow"]) as reader:
        table = reader.read_all()
    assert table.schema == pq.read_schema(case.files["parquet"]).remove_metadata()
    assert table.to_pylist() == expected_rows(case)


def test_duckdb_reads_the_parquet(case: Converted) -> None:
    types = ARROW_TYPES[case.result.name]
    if not types:
        return  # DuckDB cannot describe a file without columns
    path = str(case.files["parquet"])
    with duckdb.connect() as db:
        db.execute("SET TimeZone = 'UTC'")
        described = db.execute("DESCRIBE SELECT * FROM read_parquet(?)", [path]).fetchall()
        cursor = db.execute("SELECT * FROM read_parquet(?)", [path])
        names = [column[0] for column in cursor.description]
        rows = cursor.fetchall()
    assert {row[0]: row[1] for row in described} == {n: DUCKDB_TYPES[t] for n, t in types.items()}
    assert [dict(zip(names, row, strict=True)) for row in rows] == expected_rows(case)


def test_pandas_reads_the_csv_as_canonical_text(case: Converted) -> None:
    types = ARROW_TYPES[case.result.name]
    if not types:
        assert case.files["csv"].read_bytes() == b""
        return
    frame = pd.read_csv(case.files["csv"], dtype=str, keep_default_na=False)
    assert list(frame.columns) == list(case.result.types)
    expected = [
        {name: canonical_text(record.get(name)) for name in case.result.types}
        for record in exact_records(case.result)
    ]
    assert frame.to_dict("records") == expected


def test_json_load_reads_the_records_as_they_are(case: Converted) -> None:
    with open(case.files["json"], encoding="utf-8") as file:
        assert json.load(file) == records(case.result)
    lines = case.result.lines()
    body = b",\n".join(lines)
    assert case.files["json"].read_bytes() == (b"[\n" + body + b"\n]\n" if lines else b"[]\n")
