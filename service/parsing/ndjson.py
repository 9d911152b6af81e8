"""Typed CSV records as NDJSON, built column-wise with Arrow kernels instead of a row loop.

Each column becomes an array of JSON value texts; joining them element-wise with the keys
gives one string per record, and the string array's data buffer *is* the NDJSON output.
"""

from __future__ import annotations

from typing import TypeAlias

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from service.parsing.arrow_text import byte_range, bytes_present, min_byte, value_bytes
from service.parsing.type_rules import BOOLEAN, DATE, DATETIME, INTEGER, NULL, NUMBER

# Backslash first, so the backslashes of the other escapes are not doubled.
_COMMON_ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))
# A boolean column holds only true/false in any case, so a value's length is enough.
_BOOLEAN_BY_LENGTH = pa.array(["null", "", "", "", "true", "false"])
# ASCII letters from `a` on are lowercase; RE2's case folding also lets some non-ASCII
# letters through the boolean pattern (`ſ` for `s`), so they are told apart too.
_LOWERCASE_ASCII = (ord("a"), 0x7F)

# Whether a column's values need quotes around them: never, always, or (an array) in the rows
# where it is False, the array being True where the value is null.
Quoting: TypeAlias = bool | pa.Array


def render_records(
    columns: list[pa.Array],
    names: list[str],
    types: list[str],
    *,
    without_empty: list[bool] | None = None,
) -> memoryview:
    """NDJSON for one batch: key order is column order, empty values are null.

    `without_empty` tells the columns known to hold no empty value, which then need no
    search for one (two kernel calls per column: most of the cost of a block of thousands of
    columns).
    """
    if not columns or len(columns[0]) == 0:
        return memoryview(b"")
    # The text between two values (a key, and the quotes of string values) goes into one
    # separator, so that a single element-wise join builds every record: each argument of it
    # costs about as much as any other, whether a constant or a column.
    parts: list[pa.Scalar | pa.Array] = []
    closing: Quoting = False
    for index, (column, name, kind) in enumerate(zip(columns, names, types, strict=True)):
        key = ("," if index else "{") + orjson.dumps(name).decode() + ":"
        full = without_empty is not None and without_empty[index]
        values, quoting = _json_values(column, kind, full=full)
        parts.extend((_separator(closing, key, quoting), values))
        closing = quoting
    parts.append(_separator(closing, "}\n", False))
    return _concatenated(pc.binary_join_element_wise(*parts, ""))


def _separator(closing: Quoting, text: str, opening: Quoting) -> pa.Scalar | pa.Array:
    """`text` after the closing quote of the previous value and before the opening quote of
    the next, in the rows where those values are quoted."""

    def after_closing(suffix: str) -> pa.Scalar | pa.Array:
        if isinstance(closing, bool):
            return pa.scalar(('"' if closing else "") + text + suffix)
        return pc.if_else(closing, text + suffix, '"' + text + suffix)

    if isinstance(opening, bool):
        return after_closing('"' if opening else "")
    return pc.if_else(opening, after_closing(""), after_closing('"'))


def _json_values(column: pa.Array, kind: str, *, full: bool = False) -> tuple[pa.Array, Quoting]:
    """The column as JSON value texts, and where they still need surrounding quotes."""
    if kind == NULL:
        return pa.repeat(pa.scalar("null"), len(column)), False
    if kind == BOOLEAN:
        if full and _lowercase_ascii(column):
            return column, False  # all `true` or `false` already: the text is the JSON
        return pc.take(_BOOLEAN_BY_LENGTH, pc.binary_length(column)), False
    empty = pa.nulls(0, pa.bool_()) if full else pc.equal(column, "")
    has_nulls = not full and bool(pc.any(empty).as_py())
    if kind in (INTEGER, NUMBER):
        # The type check admitted only JSON number syntax, so the exact text is the value.
        values: pa.Array = column
        quoting: Quoting = False
    else:
        # Dates and datetimes: their patterns admit nothing that needs escaping.
        values = column if kind in (DATE, DATETIME) else _escaped(column)
        quoting = empty if has_nulls else True
    if has_nulls:
        values = pc.if_else(empty, "null", values)
    return values, quoting


def _lowercase_ascii(column: pa.Array) -> bool:
    smallest, largest = byte_range(column)
    return _LOWERCASE_ASCII[0] <= smallest and largest <= _LOWERCASE_ASCII[1]


def _escaped(column: pa.Array) -> pa.Array:
    """String contents escaped for JSON (without the surrounding quotes).

    Searching for one byte is fast and for a class of bytes is not, so control characters are
    found by the smallest byte: once tabs and line breaks are escaped, any byte still below
    0x20 is one of the rare ones, and orjson escapes the column instead.
    """
    controls = min_byte(column) < 0x20
    escapes = _COMMON_ESCAPES if controls else _COMMON_ESCAPES[:2]
    # Each escape adds only backslashes and letters, so what needs escaping is known up front.
    present = bytes_present(column, [char.encode() for char, _ in escapes])
    escaped = column
    for char, escape in escapes:
        if char.encode() in present:
            escaped = pc.replace_substring(escaped, char, escape)
    if controls and min_byte(escaped) < 0x20:
        return pa.array([orjson.dumps(v).decode()[1:-1] for v in column.to_pylist()], pa.string())
    return escaped


def _concatenated(strings: pa.Array | pa.ChunkedArray) -> memoryview:
    """The values of a string array back to back: a view of its data buffer, no copy."""
    views = value_bytes(strings)
    if len(views) == 1:
        return views[0]
    return memoryview(b"".join(views))
