"""Column types from every value, and records that follow their column's type."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from tests.parsing.support import csv_bytes, parse_bytes


async def column(
    tmp_path: Path, *values: str, chunk_size: int | None = None
) -> tuple[str, list[object]]:
    outcome = await parse_bytes(
        tmp_path, csv_bytes("v,k", *[f"{v},x" for v in values]), chunk_size=chunk_size
    )
    return outcome.columns["v"], [record["v"] for record in outcome.records]


@pytest.mark.parametrize(
    ("values", "kind", "output"),
    [
        (["true", "False", "TRUE", ""], "boolean", [True, False, True, None]),
        (
            ["1", "-2", "0", "", "9223372036854775807"],
            "integer",
            [1, -2, 0, None, 9223372036854775807],
        ),
        (["1", "2.5", "-3e2", "1E-3"], "number", [1, 2.5, -300.0, 0.001]),
        (["2024-01-31", "1999-12-01", ""], "date", ["2024-01-31", "1999-12-01", None]),
        (
            ["2024-02-29", "2000-02-29", "1600-02-29", "0000-02-29"],
            "date",
            ["2024-02-29", "2000-02-29", "1600-02-29", "0000-02-29"],
        ),
        # Past the first 64 values, dates are checked by Arrow's cast rather than the pattern:
        # the two agree on year 0000's leap day.
        (["2024-01-01"] * 64 + ["0000-02-29"], "date", ["2024-01-01"] * 64 + ["0000-02-29"]),
        (
            ["2024-01-31T10:00:00Z", "2024-01-31 10:00", "2024-02-29T23:59:59.123+02:00"],
            "datetime",
            ["2024-01-31T10:00:00Z", "2024-01-31 10:00", "2024-02-29T23:59:59.123+02:00"],
        ),
        (["", "", ""], "null", [None, None, None]),
        (["a", "1", "true"], "string", ["a", "1", "true"]),
    ],
)
async def test_column_types(
    tmp_path: Path, values: list[str], kind: str, output: list[object]
) -> None:
    assert await column(tmp_path, *values) == (kind, output)


@pytest.mark.parametrize(
    "values",
    [
        ["7", "007"],  # a leading zero: zip codes and ids stay strings
        ["01234", "98765"],
        ["1", "9223372036854775808"],  # beyond signed 64-bit
        ["1", "-9223372036854775809"],
        ["1.5", "99999999999999999999"],
        ["1", "1e400"],  # not a finite double
        ["1", "+1"],
        ["1", ".5"],
        ["1", "1."],
        ["1", "NaN"],
        ["2024-02-30"],  # no such day
        ["2023-02-29"],  # not a leap year
        ["1900-02-29"],
        ["2024-04-31"],
        ["2024-13-01"],
        ["2024-01-01", "2024-01-01T10:00"],  # dates and datetimes do not mix
        ["2024-01-01T25:00"],
        ["yes", "no"],
        ["t", "f"],
        ["false", "fal\u017fe"],  # a long s, which Unicode case folding takes for an s
        [" 1", "2"],
    ],
)
async def test_values_that_make_a_column_string(tmp_path: Path, values: list[str]) -> None:
    kind, output = await column(tmp_path, *values)
    assert kind == "string"
    assert output == values  # exact text kept


async def test_one_late_value_decides_the_type_not_a_sample(tmp_path: Path) -> None:
    values = [str(i) for i in range(5000)] + ["007"]
    kind, output = await column(tmp_path, *values, chunk_size=512)
    assert kind == "string"
    assert output[:3] == ["0", "1", "2"]
    assert output[-1] == "007"


async def test_integers_then_decimals_across_chunks_become_numbers(tmp_path: Path) -> None:
    values = [str(i) for i in range(2000)] + ["0.5"]
    kind, output = await column(tmp_path, *values, chunk_size=256)
    assert kind == "number"
    assert output[-2:] == [1999, 0.5]


async def test_number_text_is_written_exactly(tmp_path: Path) -> None:
    outcome = await parse_bytes(tmp_path, csv_bytes("n", "1.50", "1e5", "-0", "123456789012345678"))
    assert outcome.result_text.splitlines() == [
        '{"n":1.50}',
        '{"n":1e5}',
        '{"n":-0}',
        '{"n":123456789012345678}',
    ]


async def test_null_counts_and_summary(tmp_path: Path) -> None:
    outcome = await parse_bytes(tmp_path, csv_bytes("a,b,c", "1,,x", ",,y", "3,,"))
    assert outcome.result.columns == [
        {"name": "a", "type": "integer", "nulls": 1},
        {"name": "b", "type": "null", "nulls": 3},
        {"name": "c", "type": "string", "nulls": 1},
    ]


async def test_strings_that_need_json_escapes(tmp_path: Path) -> None:
    text = 'back\\slash "quote" tab\tbell\x07 soh\x01 é ✓ \u2028'
    data = ("s\n" + '"' + text.replace('"', '""') + '"\n').encode()
    outcome = await parse_bytes(tmp_path, data)
    assert outcome.records == [{"s": text}]


async def test_failed_rows_do_not_count_towards_types(tmp_path: Path) -> None:
    outcome = await parse_bytes(tmp_path, csv_bytes("a,b", "1,2", "x", "3,4"))
    assert outcome.columns == {"a": "integer", "b": "integer"}


async def test_common_escapes_in_some_rows_of_a_column(tmp_path: Path) -> None:
    values = ["plain", 'a "q"', "back\\slash", "tab\there", "new\nline", "cr\rx", "", "é"]
    buffer = io.StringIO()
    csv.writer(buffer).writerows([["s", "n"], *[[v, "1"] for v in values]])
    outcome = await parse_bytes(tmp_path, buffer.getvalue().encode())
    assert [record["s"] for record in outcome.records] == [v or None for v in values]


async def test_nulls_next_to_each_other_in_quoted_columns(tmp_path: Path) -> None:
    data = csv_bytes("d,s,t,n", "2024-01-01,a,,1", ",,b,", ',"x""y",c,2', "2024-01-02,,,3")
    outcome = await parse_bytes(tmp_path, data)
    assert outcome.columns == {"d": "date", "s": "string", "t": "string", "n": "integer"}
    assert outcome.records == [
        {"d": "2024-01-01", "s": "a", "t": None, "n": 1},
        {"d": None, "s": None, "t": "b", "n": None},
        {"d": None, "s": 'x"y', "t": "c", "n": 2},
        {"d": "2024-01-02", "s": None, "t": None, "n": 3},
    ]
