"""The fast JSON-lines reader: Arrow's multi-threaded JSON parser on blocks of whole lines.

It only vouches for a block in which every line is one JSON object Arrow can type; anything
else (a bad line, a blank line, a key whose type changes, a token Arrow is laxer about than
the JSON spec) sends the block to the line-by-line reader, which owns the row errors.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.json as pa_json

from service.parsing.column_types import BOOLEAN, INTEGER, NULL, NUMBER, STRING
from service.parsing.json_values import ARRAY, OBJECT, JsonSummary

ARROW_BLOCK_BYTES = 1 << 20
# Arrow reads NaN and Infinity, which strict JSON refuses, and does not check UTF-8.
_LAX_TOKENS = (b"NaN", b"Infinity")
# Arrow takes a line holding just `null` for a record of nulls (pyarrow 26; and a block of
# nothing else makes it hang), where JSON lines wants a not_object error.
# Searched in "\n" + block: a pattern that starts with a plain character is searched fast.
_NULL_LINE = re.compile(rb"\n[ \t\r]*+null[ \t\r]*+(?:\n|\Z)")


def read_lines_fast(piece: bytes, summary: JsonSummary) -> bytes | None:
    """The records of `piece` (whole lines) as NDJSON, or None if the block needs the slow
    reader. Adds the block's keys to `summary` only when it succeeds."""
    if any(token in piece for token in _LAX_TOKENS):
        return None
    if b"null" in piece and _NULL_LINE.search(b"\n" + piece):
        return None
    if not piece.isascii():
        try:
            piece.decode("utf-8")
        except UnicodeDecodeError:
            return None
    lines = piece.count(b"\n") + (0 if piece.endswith(b"\n") else 1)
    try:
        table = pa_json.read_json(
            pa.py_buffer(piece),
            read_options=pa_json.ReadOptions(use_threads=False, block_size=ARROW_BLOCK_BYTES),
        )
    except pa.ArrowException:
        return None
    if table.num_rows != lines:  # a blank line, or two objects on one line
        return None
    summary.records += table.num_rows
    for name, column in zip(table.column_names, table.columns, strict=True):
        summary.add_column(name, _kind(column.type), table.num_rows, column.null_count)
    if not piece.endswith(b"\n"):
        piece += b"\n"
    if b"\r" in piece:
        piece = piece.replace(b"\r\n", b"\n")
    return piece


def _kind(arrow_type: pa.DataType) -> str:
    if pa.types.is_null(arrow_type):
        return NULL
    if pa.types.is_boolean(arrow_type):
        return BOOLEAN
    if pa.types.is_integer(arrow_type):
        return INTEGER
    if pa.types.is_floating(arrow_type):
        return NUMBER
    if pa.types.is_struct(arrow_type):
        return OBJECT
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return ARRAY
    return STRING  # strings, and strings Arrow took for timestamps
