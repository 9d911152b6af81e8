"""The converted files as the tools that download them read them: DuckDB and pyarrow read the
Parquet, pyarrow the Arrow stream, pandas the CSV, `json.load` the JSON. Every value must equal
the NDJSON record it came from, in the column types the rules give (see readers.py)."""

from __future__ import annotations

from tests.formats import readers
from tests.formats.corpus import Converted


def test_pyarrow_reads_the_parquet_with_the_column_types(case: Converted) -> None:
    readers.pyarrow_parquet(case.result, case.files)


def test_pyarrow_reads_the_arrow_stream_with_the_same_schema(case: Converted) -> None:
    readers.pyarrow_arrow_stream(case.result, case.files)


def test_duckdb_reads_the_parquet(case: Converted) -> None:
    readers.duckdb_parquet(case.result, case.files)


def test_pandas_reads_the_csv_as_canonical_text(case: Converted) -> None:
    readers.pandas_csv(case.result, case.files)


def test_json_load_reads_the_records_as_they_are(case: Converted) -> None:
    readers.json_load(case.result, case.files)
