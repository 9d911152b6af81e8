"""A small block in Python, value by value: its type checks and its NDJSON.

An Arrow kernel call costs tens of microseconds whatever its length, and compiling an RE2
pattern 15-50 us more, so checking a 13-row block of 8 columns took about 2 ms in a dozen
calls per column: most of a tiny file's parse. Python's `re` holds its patterns compiled, and
a few hundred values are matched in a fraction of that. The rules are `type_rules.PATTERNS`
(all of them ASCII, so `re` over text and RE2 over UTF-8 agree) and the same range checks.
Rendering a few rows is likewise cheaper in a loop than in a column-wise join of Arrow
arrays, which would first have to be made from the rows. `tests/parsing/test_small_blocks.py`
holds both to the Arrow versions' answers, byte for byte.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

import orjson
import pyarrow as pa

from service.parsing.type_rules import (
    BOOLEAN,
    CANDIDATES,
    DATE,
    DATETIME,
    INT64_SAFE_DIGITS,
    INTEGER,
    NULL,
    NUMBER,
    PATTERNS,
    PROBE_ROWS,
    STRING,
    BlockCounts,
)

# Up to this many values (and at most `PROBE_ROWS` rows) a block is checked here; Python is
# still far ahead there (64 × 64 values: 1.5 ms against the kernels' 13 ms).
SMALL_BLOCK_VALUES = 4096
# and at most this many bytes of values: long ones are matched faster by RE2 than copied out.
SMALL_BLOCK_BYTES = 256 * 1024
# `fullmatch` rather than the anchors: Python's `$` also matches before a final newline.
_MATCHERS = {kind: re.compile(pattern[1:-1]).fullmatch for kind, pattern in PATTERNS.items()}
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_LONGEST_INT64_TEXT = len(str(_INT64_MIN))


def count_small_block(
    columns: Sequence[pa.Array | pa.ChunkedArray], candidates: list[set[str]]
) -> list[BlockCounts]:
    """`column_types.count_block` for a block of a few rows: the same counts."""
    return count_small_columns([column.to_pylist() for column in columns], candidates)


def is_small(rows: int, columns: int) -> bool:
    """Whether `rows` × `columns` values are few enough to be checked here. Enough for the
    record reader's rows: they hold no Arrow null, nor more bytes than the piece they come
    from (`column_types` checks both for Arrow's columns)."""
    return rows <= PROBE_ROWS and rows * columns <= SMALL_BLOCK_VALUES


def count_small_columns(
    columns: Sequence[Sequence[str]], candidates: list[set[str]]
) -> list[BlockCounts]:
    """`count_small_block` for columns of Python strings (empty: null)."""
    counts = []
    for column, possible in zip(columns, candidates, strict=True):
        values = [value for value in column if value]
        nulls = len(column) - len(values)
        surviving = set(possible)
        if surviving and values:
            surviving = _surviving(values, surviving)
        counts.append(BlockCounts(nulls, len(values), surviving))
    return counts


def _surviving(values: list[str], candidates: set[str]) -> set[str]:
    """The first candidate, in `CANDIDATES` order, that every value matches; integers also
    keep NUMBER. A number that does not fit (an integer beyond 64 bits, a value beyond a
    double's range) allows nothing."""
    for kind in CANDIDATES:
        if kind not in candidates or not _all_match(values, kind):
            continue
        if kind == INTEGER:
            if all(map(_fits_int64, values)):
                return candidates & {INTEGER, NUMBER}
            continue
        if kind == NUMBER:
            return {NUMBER} if all(map(_number_fits, values)) else set()
        return {kind}
    return set()


def _all_match(values: list[str], kind: str) -> bool:
    return all(map(_MATCHERS[kind], values))


def _fits_int64(text: str) -> bool:
    if len(text) <= INT64_SAFE_DIGITS:
        return True
    return len(text) <= _LONGEST_INT64_TEXT and _INT64_MIN <= int(text) <= _INT64_MAX


def _number_fits(text: str) -> bool:
    """A number of JSON syntax: within 64 bits if it is an integer, finite as a double."""
    if len(text) <= INT64_SAFE_DIGITS and "e" not in text and "E" not in text:
        return True
    if _MATCHERS[INTEGER](text) and not _fits_int64(text):
        return False
    return math.isfinite(float(text))


def render_rows(rows: Sequence[Sequence[str]], names: Sequence[str], types: Sequence[str]) -> bytes:
    """`ndjson.render_records` for records given as rows of strings: the same bytes."""
    keys = [
        ("," if index else "{") + orjson.dumps(name).decode() + ":"
        for index, name in enumerate(names)
    ]
    renderers = [_RENDERERS[kind] for kind in types]
    fields = list(zip(keys, renderers, strict=True))
    return "".join(
        "".join([key + render(value) for (key, render), value in zip(fields, row, strict=True)])
        + "}\n"
        for row in rows
    ).encode()


def _quoted(value: str) -> str:
    return '"' + value + '"' if value else "null"


def _string(value: str) -> str:
    return orjson.dumps(value).decode() if value else "null"


# How each type writes a value's text as JSON (an empty value is null). The type checks let
# through only what the type's pattern takes: numbers in JSON's syntax, booleans in any case,
# dates and datetimes with nothing to escape.
_RENDERERS: dict[str, Callable[[str], str]] = {
    NULL: lambda value: "null",
    BOOLEAN: lambda value: ("true" if len(value) == 4 else "false") if value else "null",
    INTEGER: lambda value: value or "null",
    NUMBER: lambda value: value or "null",
    DATE: _quoted,
    DATETIME: _quoted,
    STRING: _string,
}
