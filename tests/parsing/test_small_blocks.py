"""A block of a few rows is type-checked and rendered in Python; it must decide exactly as
Arrow's kernels do, value family by value family, near misses included, and render the same
bytes."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.parsing import column_types
from service.parsing.column_types import count_block, count_by_column
from service.parsing.ndjson import render_records
from service.parsing.small_blocks import count_small_block, render_rows
from service.parsing.type_rules import (
    BOOLEAN,
    DATE,
    DATETIME,
    INTEGER,
    NULL,
    NUMBER,
    PROBE_ROWS,
    STRING,
)
from tests.parsing.strategies import draw_block, typed_value

ALL = {BOOLEAN, INTEGER, NUMBER, DATE, DATETIME}
candidate_sets = st.sampled_from([ALL, {INTEGER, NUMBER}, {NUMBER}, {DATE}, {DATETIME}, set()])
near_misses = st.sampled_from(
    [
        "9223372036854775807",
        "-9223372036854775808",
        "9223372036854775808",
        "-9223372036854775809",
        "1" * 30,
        "1" * 400,
        "1e308",
        "1.8e308",
        "-1e309",
        "1E5",
        "0000-02-29",
        "2000-02-29",
        "1900-02-29",
        "2024-01-01T10:00:00.123456789+02:00",
        "2024-01-01T10:00\n",
        "12\n",
        "true\n",
        "tRuE",
        "falſe",
        "١٢",
        "",
    ]
)
# Each column draws from one family, so that whole columns of a type come often.
families = st.sampled_from(
    [
        typed_value,
        near_misses | typed_value,
        st.integers(-(2**64), 2**64).map(str) | st.just(""),
        st.floats(allow_nan=False).map(repr) | near_misses,
        st.dates().map(lambda d: d.isoformat()) | st.sampled_from(["2024-02-30", ""]),
        st.datetimes().map(lambda d: d.isoformat(sep=" ")) | near_misses,
    ]
)


@settings(max_examples=150, deadline=None, database=None)
@given(st.data(), st.integers(1, PROBE_ROWS), st.integers(1, 5))
def test_small_block_check_agrees_with_arrow_kernels(
    data: st.DataObject, rows: int, width: int
) -> None:
    columns, candidates = draw_block(data, families, candidate_sets, rows, width)
    expected = count_by_column(columns, [set(possible) for possible in candidates])
    assert count_small_block(columns, candidates) == expected


def test_blocks_of_a_few_rows_take_the_python_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bench's 1 KB CSV is 13 rows of 8 columns; a block past the probe's length is not
    small, whatever its width, nor one with an Arrow null or a long value."""
    taken: list[int] = []

    def recording(columns: list[pa.ChunkedArray], candidates: list[set[str]]) -> object:
        taken.append(len(columns[0]))
        return count_small_block(columns, candidates)

    monkeypatch.setattr(column_types, "count_small_block", recording)
    count_block([pa.chunked_array([pa.array(["1", "2", "x"])])] * 8, [set(ALL)] * 8)
    count_block([pa.chunked_array([pa.array([str(n) for n in range(PROBE_ROWS + 1)])])], [set(ALL)])
    count_block([pa.chunked_array([pa.array(["1", None])])], [set(ALL)])  # an Arrow null
    count_block([pa.chunked_array([pa.array(["1" * (1 << 20)])])], [set(ALL)])  # a long value
    assert taken == [3]


# Values each type's check lets through, and empty ones (null).
_typed_texts = {
    NULL: st.just(""),
    BOOLEAN: st.sampled_from(["true", "false", "TRUE", "False", "tRuE", ""]),
    INTEGER: st.integers(-(2**63), 2**63 - 1).map(str) | st.just(""),
    NUMBER: st.floats(allow_nan=False, allow_infinity=False).map(repr)
    | st.sampled_from(["1e5", "-0.50", ""]),
    DATE: st.dates().map(lambda d: d.isoformat()) | st.just(""),
    DATETIME: st.datetimes().map(lambda d: d.isoformat(sep="T") + "Z") | st.just(""),
    STRING: st.text(st.characters(exclude_categories=["Cs"]))
    | st.sampled_from(['a"b', "c\\d", "e\nf", "\x01", "\t", ""]),
}


@settings(max_examples=150, deadline=None, database=None)
@given(
    st.data(),
    st.integers(1, 20),
    st.lists(st.sampled_from(sorted(_typed_texts)), min_size=1, max_size=5),
)
def test_rows_render_as_the_arrow_renderer_does(
    data: st.DataObject, rows: int, types: list[str]
) -> None:
    columns = [
        data.draw(st.lists(_typed_texts[kind], min_size=rows, max_size=rows)) for kind in types
    ]
    names = data.draw(st.lists(st.text(max_size=5), min_size=len(types), max_size=len(types)))
    arrays = [pa.array(column, pa.string()) for column in columns]
    expected = bytes(render_records(arrays, names, types))
    assert render_rows(list(zip(*columns, strict=True)), names, types) == expected
