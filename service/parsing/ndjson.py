"""Typed CSV records as NDJSON, built column-wise with Arrow kernels instead of a row loop.

Each column becomes an array of JSON value texts; joining them element-wise with the keys
gives one string per record, and the string array's data buffer *is* the NDJSON output.
"""

from __future__ import annotations

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from service.parsing.column_types import BOOLEAN, DATE, DATETIME, INTEGER, NULL, NUMBER

_NEEDS_ESCAPE = r'[\x00-\x1f"\\]'
_RARE_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"
# Backslash first, so the backslashes of the other escapes are not doubled.
_COMMON_ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))
_QUOTE = pa.scalar('"')


def render_records(columns: list[pa.Array], names: list[str], types: list[str]) -> bytes:
    """NDJSON for one batch: key order is column order, empty values are null."""
    if not columns or len(columns[0]) == 0:
        return b""
    parts: list[pa.Array | pa.Scalar] = []
    for index, (column, name, kind) in enumerate(zip(columns, names, types, strict=True)):
        key = orjson.dumps(name).decode()
        parts.append(pa.scalar(("{" if index == 0 else ",") + key + ":"))
        parts.append(_json_values(column, kind))
    parts.append(pa.scalar("}\n"))
    records = pc.binary_join_element_wise(*parts, "")
    return _concatenated(records)


def _json_values(column: pa.Array, kind: str) -> pa.Array:
    if kind == NULL:
        return pa.repeat(pa.scalar("null"), len(column))
    if kind in (INTEGER, NUMBER):
        # The type check admitted only JSON number syntax, so the exact text is the value.
        values = column
    elif kind == BOOLEAN:
        values = pc.if_else(pc.equal(pc.utf8_lower(column), "true"), "true", "false")
    elif kind in (DATE, DATETIME):
        values = _quoted(column)  # their pattern admits nothing that needs escaping
    else:
        values = _json_strings(column)
    empty = pc.equal(column, "")
    if not pc.any(empty).as_py():
        return values
    return pc.if_else(empty, "null", values)


def _quoted(column: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(_QUOTE, column, _QUOTE, "")


def _json_strings(column: pa.Array) -> pa.Array:
    needs_escape = pc.match_substring_regex(column, _NEEDS_ESCAPE)
    if not pc.any(needs_escape).as_py():
        return _quoted(column)
    special = pc.filter(column, needs_escape)
    if pc.any(pc.match_substring_regex(special, _RARE_CONTROL)).as_py():
        escaped = pa.array([orjson.dumps(v).decode() for v in special.to_pylist()], pa.string())
    else:
        for char, escape in _COMMON_ESCAPES:
            special = pc.replace_substring(special, char, escape)
        escaped = _quoted(special)
    return pc.replace_with_mask(_quoted(column), needs_escape, escaped)


def _concatenated(strings: pa.Array) -> bytes:
    if isinstance(strings, pa.ChunkedArray):
        return b"".join(_concatenated(chunk) for chunk in strings.chunks)
    _, offsets_buffer, data = strings.buffers()
    offsets = memoryview(offsets_buffer).cast("i")  # int32 offsets of a (non-large) string array
    start, end = offsets[strings.offset], offsets[strings.offset + len(strings)]
    return memoryview(data)[start:end].tobytes()
