"""JSON lines and JSON arrays: records kept as sent, per-key summary, row errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from tests.parsing.support import failure_code, parse_bytes

JSONL = (
    b'{"id": 1, "name": "a", "tags": ["x"], "meta": {"k": 1}, "score": 1}\n'
    b"\n"
    b"[1, 2]\n"
    b'{"id": 2, "name": null, "score": 2.5, "extra": true}\r\n'
    b"not json\n"
    b'"a string"\n'
    b'{"id": 3, "name": 7, "big": 123456789012345678901234567890}\n'
)


@pytest.mark.parametrize("chunk_size", [None, 1, 16])
async def test_json_lines(tmp_path: Path, chunk_size: int | None) -> None:
    outcome = await parse_bytes(tmp_path, JSONL, chunk_size=chunk_size)
    assert outcome.result.format == "jsonl"
    assert outcome.result.dialect is None
    assert outcome.records == [
        {"id": 1, "name": "a", "tags": ["x"], "meta": {"k": 1}, "score": 1},
        {"id": 2, "name": None, "score": 2.5, "extra": True},
        {"id": 3, "name": 7, "big": 123456789012345678901234567890},
    ]
    assert [(e["line"], e["type"]) for e in outcome.errors] == [
        (3, "not_object"),
        (5, "json"),
        (6, "not_object"),
    ]
    assert outcome.errors[0]["message"] == "expected a JSON object, got an array"
    assert outcome.errors[1]["raw"] == "not json"
    assert outcome.result.columns == [
        {"name": "id", "type": "integer", "nulls": 0},
        {"name": "name", "type": "mixed", "nulls": 1},
        {"name": "tags", "type": "array", "nulls": 2},
        {"name": "meta", "type": "object", "nulls": 2},
        {"name": "score", "type": "number", "nulls": 1},
        {"name": "extra", "type": "boolean", "nulls": 2},
        {"name": "big", "type": "string", "nulls": 2},  # beyond 64 bits: as CSV calls it
    ]


async def test_json_lines_are_kept_exactly_as_sent(tmp_path: Path) -> None:
    data = b'{"b": 1.50, "a": "\\u00e9", "n": 1e400}\n'
    outcome = await parse_bytes(tmp_path, data, filename="x.ndjson")
    assert outcome.result_text == '{"b": 1.50, "a": "\\u00e9", "n": 1e400}\n'


@pytest.mark.parametrize("line", [b'{"a": NaN}', b'{"a": 1,}', b'{"a": 1} {"b": 2}', b"{'a': 1}"])
async def test_json_that_is_not_strict_json_is_an_error(tmp_path: Path, line: bytes) -> None:
    outcome = await parse_bytes(tmp_path, b'{"ok": 1}\n' + line + b"\n", format="jsonl")
    assert outcome.records == [{"ok": 1}]
    assert [(e["line"], e["type"]) for e in outcome.errors] == [(2, "json")]


ARRAY = b"""[
  {"id": 1, "nested": {"list": [{"x": 1}, {"y": "}, {"}]}},
  {"id": 2,
   "text": "line\\nbreak ] , {"},
  42,
  {"id": 3, "broken": },
  {"id": 4}
]
"""


@pytest.mark.parametrize("chunk_size", [None, 1, 9])
async def test_json_array(tmp_path: Path, chunk_size: int | None) -> None:
    outcome = await parse_bytes(tmp_path, ARRAY, chunk_size=chunk_size)
    assert outcome.result.format == "json"
    assert outcome.records == [
        {"id": 1, "nested": {"list": [{"x": 1}, {"y": "}, {"}]}},
        {"id": 2, "text": "line\nbreak ] , {"},
        {"id": 4},
    ]
    assert [(e["line"], e["type"]) for e in outcome.errors] == [(5, "not_object"), (6, "json")]
    assert outcome.result.columns == [
        {"name": "id", "type": "integer", "nulls": 0},
        {"name": "nested", "type": "object", "nulls": 2},
        {"name": "text", "type": "string", "nulls": 2},
    ]


async def test_json_array_record_keeps_its_text_on_one_line(tmp_path: Path) -> None:
    outcome = await parse_bytes(tmp_path, b'[{"a":\n  1.50,\r\n "b": [1,\n2]}]')
    assert outcome.result_text == '{"a":   1.50,   "b": [1, 2]}\n'


async def test_empty_array_succeeds_with_zero_rows(tmp_path: Path) -> None:
    outcome = await parse_bytes(tmp_path, b" [ \n ] \n")
    assert outcome.result.rows == 0
    assert outcome.result.columns == []


async def test_gzip_of_a_json_array(tmp_path: Path) -> None:
    records = [{"id": i, "name": f"n{i}"} for i in range(2000)]
    body = b"[" + b",\n".join(b'{"id": %d, "name": "n%d"}' % (i, i) for i in range(2000)) + b"]"
    outcome = await parse_bytes(tmp_path, gzip.compress(body), chunk_size=4096)
    assert outcome.result.format == "json"
    assert outcome.records == records
    assert outcome.progress[-1].bytes_done == outcome.progress[-1].bytes_total


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (b'[{"a": 1},\n{"a": 2}', 2),  # cut off
        (b'[{"a": 1}\n{"a": 2}]', 2),  # missing comma
        (b'[{"a": 1}]\nextra', 2),  # data after the array
    ],
)
async def test_broken_array_structure_is_one_json_error(
    tmp_path: Path, data: bytes, line: int
) -> None:
    outcome = await parse_bytes(tmp_path, data, chunk_size=4)
    assert outcome.records[0] == {"a": 1}
    assert [(e["line"], e["type"]) for e in outcome.errors][-1] == (line, "json")


async def test_format_json_on_something_that_is_no_array(tmp_path: Path) -> None:
    assert await failure_code(tmp_path, b'{"a": 1}\n', format="json") == "unsupported_format"


async def test_json_lines_too_many_errors(tmp_path: Path) -> None:
    assert (
        await failure_code(tmp_path, b"1\n2\n3\n", max_errors=2, format="jsonl")
        == "too_many_errors"
    )


async def test_a_null_line_is_not_an_object(tmp_path: Path) -> None:
    outcome = await parse_bytes(tmp_path, b'{"a": 1}\nnull\n{"a": 2}\n')
    assert outcome.records == [{"a": 1}, {"a": 2}]
    assert [(e["line"], e["type"]) for e in outcome.errors] == [(2, "not_object")]
    assert outcome.errors[0]["message"] == "expected a JSON object, got a null"


async def test_two_values_on_a_line_beside_a_blank_line_are_an_error(tmp_path: Path) -> None:
    # The blank line once made up for the extra value in Arrow's row count.
    outcome = await parse_bytes(tmp_path, b'{"a": 1} {"a": 2}\n\n{"a": 3}\n{"a": 4} null\n')
    assert outcome.records == [{"a": 3}]
    assert [(e["line"], e["type"]) for e in outcome.errors] == [(1, "json"), (4, "json")]
    assert outcome.result_text == '{"a": 3}\n'


@pytest.mark.parametrize("first", [b'null {"a": 1}', b' null {"a": 1}', b'\nnull {"a": 1}'])
async def test_null_then_a_value_at_the_start_is_an_error(tmp_path: Path, first: bytes) -> None:
    # Arrow's JSON reader crashes the process on a block that starts so (pyarrow 26).
    outcome = await parse_bytes(tmp_path, first + b'\n{"a": 2}\n', format="jsonl")
    assert outcome.records == [{"a": 2}]
    assert [e["type"] for e in outcome.errors] == ["json"]


@pytest.mark.parametrize("chunk_size", [None, 12])
async def test_numbers_that_are_not_json_are_errors_wherever_they_stand(
    tmp_path: Path, chunk_size: int | None
) -> None:
    # Arrow reads Inf, -Inf and -NaN too, nested ones included.
    lines = [b'{"a": [1.5], "b": {"c": 1.5}}'] * 3
    lines += [b'{"a": [Inf], "b": {"c": 1.5}}', b'{"a": [1.5], "b": {"c": -NaN}}']
    data = b"\n".join([*lines, lines[0]]) + b"\n"
    outcome = await parse_bytes(tmp_path, data, format="jsonl", chunk_size=chunk_size)
    assert len(outcome.records) == 4
    assert [(e["line"], e["type"]) for e in outcome.errors] == [(4, "json"), (5, "json")]
