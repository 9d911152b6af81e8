"""One block of NDJSON records as an Arrow record batch in the plan's types.

Arrow's JSON reader types the scalar columns (the plan already knows their types, so nothing
is inferred); the columns it cannot read, or a whole block it refuses, come from the raw
value texts instead. A column whose values do not fit its type is reported for demotion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from service.formats.columns import (
    BOOLEAN,
    DATE,
    DATETIME,
    INTEGER,
    NULL,
    NUMBER,
    STRING,
    Column,
    Plan,
)
from service.formats.raw_values import NULL_TEXT, canonical_text, json_text, raw_columns

# How Arrow's JSON reader reads each column type; dates and datetimes are read as text and
# cast afterwards, where a value that does not fit can be told from a broken record.
_READ_TYPES: dict[str, pa.DataType] = {
    INTEGER: pa.int64(),
    NUMBER: pa.float64(),
    BOOLEAN: pa.bool_(),
    DATE: pa.string(),
    DATETIME: pa.string(),
    STRING: pa.string(),
    NULL: pa.null(),
}


@dataclass(frozen=True)
class TypedBlock:
    batch: pa.RecordBatch | None  # None when a column must be demoted first
    demote: frozenset[str]


def typed_block(block: memoryview, plan: Plan) -> TypedBlock:
    arrays = _read(block, plan)
    typed: list[pa.Array] = []
    demote: set[str] = set()
    for column in plan.columns:
        finished = _finish(arrays[column.name], column)
        if finished is None:
            demote.add(column.name)
        else:
            typed.append(finished)
    if demote:
        return TypedBlock(None, frozenset(demote))
    return TypedBlock(pa.RecordBatch.from_arrays(typed, schema=plan.schema), frozenset())


def _read(block: memoryview, plan: Plan) -> dict[str, pa.Array]:
    """Each column's values as Arrow's JSON reader gives them, or from their raw texts."""
    readable = [c for c in plan.columns if _arrow_reads(c)]
    table = _read_json(block, readable) if readable else None
    arrays: dict[str, pa.Array] = {}
    if table is not None:
        arrays = {c.name: one_chunk(table.column(c.name)) for c in readable}
    rest = [c for c in plan.columns if c.name not in arrays]
    if rest:
        raw = raw_columns(block, [c.name for c in rest])
        arrays.update((c.name, _from_raw(r, c)) for c, r in zip(rest, raw, strict=True))
    return arrays


def _arrow_reads(column: Column) -> bool:
    """Whether Arrow's reader can give this column: scalar types, and dates or datetimes
    written as text after a demotion (numbers demoted to text are not JSON strings)."""
    if column.json_text:
        return False
    return not column.demoted or column.kind in (DATE, DATETIME, STRING)


def _read_json(block: memoryview, columns: list[Column]) -> pa.Table | None:
    schema = pa.schema([pa.field(c.name, _READ_TYPES[c.kind]) for c in columns])
    try:
        table = pa_json.read_json(
            pa.py_buffer(block),
            read_options=pa_json.ReadOptions(use_threads=False, block_size=len(block) + 1),
            parse_options=pa_json.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="ignore"
            ),
        )
    except pa.ArrowException:
        return None  # a value of another JSON type than its column's, a duplicate key, ...
    return table


def one_chunk(column: pa.ChunkedArray) -> pa.Array:
    """A column Arrow's reader gave for one block: one chunk, taken as it is (combining
    chunks copies them, even a single one)."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _from_raw(raw: pa.Array, column: Column) -> pa.Array:
    """Raw value texts as the array Arrow's reader would have given (or text, if they do
    not fit: `_finish` then asks for a demotion)."""
    if column.json_text:
        return json_text(raw)
    if column.demoted or column.kind in (STRING, DATE, DATETIME):
        return canonical_text(raw)
    nulls = pc.equal(raw, NULL_TEXT)
    if column.kind == NULL:
        return pa.nulls(len(raw)) if pc.all(nulls).as_py() else raw
    if column.kind == BOOLEAN:
        if not pc.all(pc.is_in(raw, pa.array([b"true", b"false", NULL_TEXT]))).as_py():
            return raw
        return pc.if_else(nulls, None, pc.equal(raw, b"true"))
    text = pc.if_else(nulls, None, raw).cast(pa.string())
    try:
        return pc.cast(text, _READ_TYPES[column.kind])
    except (pa.ArrowInvalid, OverflowError):
        return raw


def _finish(values: pa.Array, column: Column) -> pa.Array | None:
    """The values in the column's target type, or None if one of them does not fit it."""
    target = column.target
    if values.type == target:
        if column.kind == NUMBER and not column.demoted and not _finite(values):
            return None
        return values
    if column.kind in (DATE, DATETIME) and not column.demoted:
        try:
            return pc.cast(values, target)
        except pa.ArrowInvalid:
            return None  # a datetime without an offset, or finer than microseconds
    return None


def _finite(values: pa.Array) -> bool:
    """No value beyond a double's range (such a JSON number is read as infinity)."""
    if values.null_count == len(values):
        return True
    bounds = pc.min_max(values).as_py()
    return math.isfinite(bounds["min"]) and math.isfinite(bounds["max"])
