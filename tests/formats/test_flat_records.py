"""Blocks of flat records read by Arrow's CSV reader cut at quote marks give what Arrow's JSON
reader gives, and any block laid out otherwise is left to the JSON reader."""

from __future__ import annotations

from typing import Any
from unittest import mock

import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.formats import text_csv
from service.formats.columns import Column, Plan
from service.formats.flat_records import flat_layout, read_flat
from service.formats.reading import read_columns, read_json

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TYPES = {
    "integer": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
    "string": pa.string(),
    "date": pa.string(),
    "datetime": pa.string(),
}
COLUMNS = [
    Column("id", "integer"),
    Column("name", "string", nullable=False),
    Column("amount", "number"),
    Column("paid", "boolean"),
    Column("day", "date", nullable=False),
    Column("at", "datetime", nullable=False),
]
WANTED = {c.name: TYPES[c.kind] for c in COLUMNS}

pieces = st.sampled_from([*"ab,:{}[] é€🎉", ":null", '"', "\\", "\n", "\x1f"])
text = st.lists(pieces, max_size=8).map("".join)
records = st.lists(
    st.fixed_dictionaries(
        {
            "id": st.none() | st.integers(-(2**63), 2**63 - 1),
            "name": text,
            "amount": st.none() | st.floats(allow_nan=False, allow_infinity=False),
            "paid": st.none() | st.booleans(),
            "day": st.sampled_from(["2024-02-29", "1999-12-31"]),
            "at": st.sampled_from(["2024-02-17T03:43:47Z", "2024-02-17T03:43:47.5+01:00"]),
        }
    ),
    min_size=1,
    max_size=30,
)


def block_of(rows: list[dict[str, Any]]) -> memoryview:
    """The rows as the parser writes them: keys in the columns' order, no spaces."""
    ordered = ({c.name: row[c.name] for c in COLUMNS} for row in rows)
    return memoryview(b"".join(orjson.dumps(row) + b"\n" for row in ordered))


def by_json_reader(block: memoryview) -> dict[str, pa.Array]:
    table = read_json(block, WANTED)
    assert table is not None
    return {name: table.column(name).combine_chunks() for name in WANTED}


@SETTINGS
@given(rows=records)
def test_flat_records_read_as_the_json_reader_reads_them(rows: list[dict[str, Any]]) -> None:
    block = block_of(rows)
    expected = by_json_reader(block)
    flat = read_flat(block, COLUMNS)
    if b"\\" in bytes(block):  # an escaped character: left to the JSON reader
        assert flat is None
    else:
        assert flat is not None
        assert flat.keys() == expected.keys()
        for name, values in expected.items():
            assert flat[name].equals(values), name
    assert read_columns(block, COLUMNS, lambda c: WANTED[c.name]).read.keys() == WANTED.keys()
    for name, values in read_columns(block, COLUMNS, lambda c: WANTED[c.name]).read.items():
        assert values.equals(expected[name]), name


@SETTINGS
@given(rows=records)
def test_csv_lines_cut_from_flat_records_are_those_of_the_json_reader(
    rows: list[dict[str, Any]],
) -> None:
    block = block_of(rows)
    plan = Plan(tuple(COLUMNS))
    assert (text_csv._texts_flat(block, plan) is None) == (b"\\" in bytes(block))
    flat = bytes(text_csv.csv_lines(block, plan))
    with mock.patch.object(text_csv, "flat_text_layout", return_value=False):
        assert bytes(text_csv.csv_lines(block, plan)) == flat


ROW = {
    "id": 1,
    "name": "Backus, Niklaus",
    "amount": 2.5,
    "paid": True,
    "day": "2024-02-29",
    "at": "2024-02-17T03:43:47Z",
}


DAYS = b',"day":"2024-02-29","at":"2024-02-17T03:43:47Z"}'


@pytest.mark.parametrize(
    "line",
    [
        b'{"name":"x","id":1,"amount":2.5,"paid":true' + DAYS,
        b'{"id": 1,"name":"x","amount":2.5,"paid":true' + DAYS,
        b'{"id":1,"name":null,"amount":2.5,"paid":true' + DAYS,
        b'{"id":1,"name":"x","amount":2.5,"paid":true,"day":"2024-02-29"}',
        b'{"id":1,"nome":"x","amount":2.5,"paid":true' + DAYS,
        b'{"id":1,"name":"x","amount":"2.5","paid":true' + DAYS,
    ],
    ids=["key order", "space", "null string", "missing key", "other key", "quoted number"],
)
def test_a_record_laid_out_otherwise_is_left_to_the_json_reader(line: bytes) -> None:
    block = block_of([ROW]).tobytes() + line + b"\n"
    assert read_flat(memoryview(block), COLUMNS) is None


def test_only_scalar_columns_without_null_strings_qualify() -> None:
    assert flat_layout(COLUMNS, WANTED)
    with_null_strings = [Column("name", "string")]
    assert not flat_layout(with_null_strings, {"name": pa.string()})
    assert not flat_layout([Column("tags", "array")], {"tags": pa.string()})
    assert not flat_layout([Column("id", "integer", demoted=True)], {"id": pa.int64()})
    assert not flat_layout([Column("id", "integer")], {"id": pa.string()})
    assert not flat_layout([], {})
