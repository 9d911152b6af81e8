"""convert() itself: the format table, whole-or-absent output, and values that do not fit
the type their column was summarised with."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq
import pytest

from service.formats import FORMATS, convert
from tests.formats.corpus import Result, Upload, parse
from tests.formats.memory_probe import COLUMNS as GENERATED_COLUMNS
from tests.formats.memory_probe import write_result as write_generated_result

CONVERTED = [name for name, known in FORMATS.items() if known.converted]


def test_the_format_table_offers_ndjson_as_it_is_and_four_conversions() -> None:
    assert {name: (f.media_type, f.extension, f.converted) for name, f in FORMATS.items()} == {
        "ndjson": ("application/x-ndjson", "ndjson", False),
        "json": ("application/json", "json", True),
        "csv": ("text/csv; charset=utf-8", "csv", True),
        "parquet": ("application/vnd.apache.parquet", "parquet", True),
        "arrow": ("application/vnd.apache.arrow.stream", "arrows", True),
    }


@pytest.mark.parametrize("format", ["ndjson", "xml", "Parquet"])
def test_a_format_that_is_not_converted_is_refused(tmp_path: Path, format: str) -> None:
    result = write_result(tmp_path, [{"a": 1}], [("a", "integer")])
    with pytest.raises(ValueError, match="converted formats: json, csv, parquet, arrow"):
        convert(result.path, result.columns, format, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.ndjson"]


@pytest.mark.parametrize("format", CONVERTED)
def test_a_failed_conversion_leaves_the_previous_file_and_no_temporary_one(
    tmp_path: Path, format: str
) -> None:
    destination = tmp_path / "out"
    destination.write_bytes(b"an earlier conversion")
    missing = tmp_path / "gone.ndjson"
    with pytest.raises(FileNotFoundError):
        convert(missing, [{"name": "a", "type": "integer", "nulls": 0}], format, destination)
    assert destination.read_bytes() == b"an earlier conversion"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("format", ["csv", "parquet", "arrow"])
def test_a_result_that_is_not_ndjson_fails_without_leaving_a_file(
    tmp_path: Path, format: str
) -> None:
    result = tmp_path / "result.ndjson"
    result.write_bytes(b'{"a":1}\n{"a":\n')
    with pytest.raises(ValueError):
        convert(result, [{"name": "a", "type": "integer", "nulls": 0}], format, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.ndjson"]


@pytest.mark.parametrize("format", CONVERTED)
def test_a_conversion_replaces_the_destination_and_leaves_nothing_else(
    tmp_path: Path, format: str
) -> None:
    result = write_result(tmp_path, [{"a": 1}, {"a": 2}], [("a", "integer")])
    destination = tmp_path / "out"
    destination.write_bytes(b"stale")
    convert(result.path, result.columns, format, destination)
    assert destination.read_bytes() != b"stale"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "result.ndjson"]


def test_datetimes_finer_than_microseconds_stay_text(tmp_path: Path) -> None:
    csv = b"at\n2026-11-01T10:00:00.1234567Z\n2026-11-01T10:00:00Z\n"
    result = parse(Upload("fine", csv, "csv"), tmp_path)
    assert result.types == {"at": "datetime"}
    table = typed(result, tmp_path)["parquet"]
    assert table.schema.types == [pa.string()]
    assert table.column("at").to_pylist() == [
        "2026-11-01T10:00:00.1234567Z",
        "2026-11-01T10:00:00Z",
    ]


def test_a_datetime_without_offset_late_in_a_large_result_makes_the_column_text(
    tmp_path: Path,
) -> None:
    """The first blocks are written as timestamps before the last one shows the column must
    be text: the file is written again, every value as its text, in record order."""
    rows = [f"{i},2026-11-01T10:{i // 60 % 60:02d}:{i % 60:02d}Z" for i in range(150_000)]
    rows.append("150000,2026-11-01 10:00")
    csv = ("id,at\n" + "\n".join(rows) + "\n").encode()
    result = parse(Upload("late", csv, "csv"), tmp_path)
    assert result.path.stat().st_size > 4 << 20  # several blocks
    tables = typed(result, tmp_path)
    expected = [row.split(",")[1] for row in rows]
    for table in tables.values():
        assert table.schema.types == [pa.int64(), pa.string()]
        assert table.column("at").to_pylist() == expected
        assert table.column("id").to_pylist() == list(range(150_001))


def test_a_number_beyond_a_double_keeps_its_column_as_text(tmp_path: Path) -> None:
    result = write_lines(tmp_path, [b'{"x":1.5}', b'{"x":1e400}', b'{"x":null}'], [("x", "number")])
    for table in typed(result, tmp_path).values():
        assert table.schema.types == [pa.string()]
        assert table.column("x").to_pylist() == ["1.5", "1e400", None]


INTEGERS_BEYOND_64_BITS = [
    b'{"n":123456789012345678901234567890}',
    b'{"n":-9223372036854775809}',
    b'{"n":null}',
]


@pytest.mark.parametrize("kind", ["string", "integer"])
def test_integers_beyond_64_bits_keep_their_exact_text(tmp_path: Path, kind: str) -> None:
    """Such integers are summarised as strings; an `integer` summary cannot hold them either,
    so the column becomes text in both cases, never a rounded or failed number."""
    result = write_lines(tmp_path, INTEGERS_BEYOND_64_BITS, [("n", kind)])
    texts = ["123456789012345678901234567890", "-9223372036854775809", None]
    for table in typed(result, tmp_path).values():
        assert table.schema.types == [pa.string()]
        assert table.column("n").to_pylist() == texts
    convert(result.path, result.columns, "csv", tmp_path / "out.csv")
    frame = pd.read_csv(tmp_path / "out.csv", dtype=str, keep_default_na=False)
    assert frame["n"].tolist() == [t or "" for t in texts]


def test_a_string_column_holding_numbers_in_some_records_keeps_their_text(
    tmp_path: Path,
) -> None:
    result = write_lines(
        tmp_path,
        [b'{"s":"007"}', b'{"s":18446744073709551616}', b'{"s":2.50}', b'{"s":"x"}'],
        [("s", "string")],
    )
    for table in typed(result, tmp_path).values():
        assert table.column("s").to_pylist() == ["007", "18446744073709551616", "2.50", "x"]


def test_records_without_keys_have_no_columns(tmp_path: Path) -> None:
    result = write_lines(tmp_path, [b"{}", b"{}"], [])
    for table in typed(result, tmp_path).values():
        assert table.num_columns == 0
    convert(result.path, result.columns, "csv", tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_bytes() == b""
    convert(result.path, result.columns, "json", tmp_path / "out.json")
    assert json.loads((tmp_path / "out.json").read_bytes()) == [{}, {}]


def write_result(
    directory: Path, records: list[dict[str, object]], columns: list[tuple[str, str]]
) -> Result:
    lines = [json.dumps(r, separators=(",", ":"), ensure_ascii=False).encode() for r in records]
    return write_lines(directory, lines, columns)


def write_lines(directory: Path, lines: list[bytes], columns: list[tuple[str, str]]) -> Result:
    """A result as a job would have left it: NDJSON and its column summary."""
    path = directory / "result.ndjson"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    summary: list[dict[str, object]] = [
        {"name": name, "type": kind, "nulls": 0} for name, kind in columns
    ]
    return Result("result", path, summary)


def typed(result: Result, directory: Path) -> dict[str, pa.Table]:
    """The result converted to Parquet and to an Arrow stream, read back with pyarrow."""
    convert(result.path, result.columns, "parquet", directory / "out.parquet")
    convert(result.path, result.columns, "arrow", directory / "out.arrows")
    with pa.ipc.open_stream(directory / "out.arrows") as stream:
        arrow = stream.read_all()
    return {"parquet": pq.read_table(directory / "out.parquet"), "arrow": arrow}


@pytest.mark.parametrize("format", CONVERTED)
def test_conversions_of_one_result_are_byte_identical_even_when_run_at_once(
    tmp_path: Path, format: str
) -> None:
    """Blocks are worked on in threads; the bytes must not depend on which finishes first,
    so that every download of a job's conversion is the same file (and ETag)."""
    result = tmp_path / "result.ndjson"
    write_generated_result(result, 6_000_000)  # three blocks
    first, second = tmp_path / "first", tmp_path / "second"
    convert(result, GENERATED_COLUMNS, format, first)
    with ThreadPoolExecutor(2) as pool:
        both = [pool.submit(convert, result, GENERATED_COLUMNS, format, second) for _ in "ab"]
        for future in both:
            future.result()
    assert first.read_bytes() == second.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first", "result.ndjson", "second"]


def test_parquet_row_groups_of_wide_records_are_cut_by_size(tmp_path: Path) -> None:
    """A row group is held in memory until written: with 100 text columns, 128k rows would
    be hundreds of MB, so a group is also closed at 32 MB of values."""
    columns = [(f"c{i}", "string") for i in range(100)]
    line = b"{" + b",".join(b'"c%d":"value %032d"' % (i, i) for i in range(100)) + b"}"
    result = write_lines(tmp_path, [line] * 20_000, columns)
    assert result.path.stat().st_size < 100_000_000
    convert(result.path, result.columns, "parquet", tmp_path / "out.parquet")
    metadata = pq.ParquetFile(tmp_path / "out.parquet").metadata
    assert metadata.num_rows == 20_000
    assert metadata.num_row_groups >= 2
