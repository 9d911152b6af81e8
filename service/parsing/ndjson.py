"""Typed CSV records as NDJSON, built column-wise with Arrow kernels instead of a row loop.

Each column becomes an array of JSON value texts; joining them element-wise with the keys
gives one string per record, and the string array's data buffer *is* the NDJSON output.
"""

from __future__ import annotations

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from service.parsing.column_types import BOOLEAN, INTEGER, NULL, NUMBER

_NEEDS_ESCAPE = r'[\x00-\x1f"\\]'


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
    empty = pc.equal(column, "")
    if kind == NULL:
        return pc.if_else(empty, "null", "null")
    if kind in (INTEGER, NUMBER):
        # The type check admitted only JSON number syntax, so the exact text is the value.
        values = column
    elif kind == BOOLEAN:
        values = pc.if_else(pc.equal(pc.utf8_lower(column), "true"), "true", "false")
    else:
        values = _json_strings(column)
    return pc.if_else(empty, "null", values)


def _json_strings(column: pa.Array) -> pa.Array:
    quoted = pc.binary_join_element_wise(pa.scalar('"'), column, pa.scalar('"'), "")
    needs_escape = pc.match_substring_regex(column, _NEEDS_ESCAPE)
    if not pc.any(needs_escape).as_py():
        return quoted
    escaped = [
        orjson.dumps(value).decode() for value in pc.filter(column, needs_escape).to_pylist()
    ]
    return pc.replace_with_mask(quoted, needs_escape, pa.array(escaped, pa.string()))


def _concatenated(strings: pa.Array) -> bytes:
    if isinstance(strings, pa.ChunkedArray):
        return b"".join(_concatenated(chunk) for chunk in strings.chunks)
    _, offsets_buffer, data = strings.buffers()
    offsets = memoryview(offsets_buffer).cast("i")  # int32 offsets of a (non-large) string array
    start, end = offsets[strings.offset], offsets[strings.offset + len(strings)]
    return memoryview(data)[start:end].tobytes()
