"""One block of NDJSON records as an Arrow record batch in the plan's types.

Arrow's JSON reader types the scalar columns (the plan already knows their types, so nothing
is inferred), or, for flat records, Arrow's CSV reader in the same types (`reading.py`); the
columns the JSON reader cannot read, or a whole block it refuses, come from the raw value
texts instead. A column whose values do not fit its type is reported for demotion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

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
from service.formats.raw_values import NULL_TEXT, canonical_text, json_text
from service.formats.reading import read_columns

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
    columns = read_columns(block, plan.columns, _read_type)
    arrays = dict(columns.read)
    for column in plan.columns:
        if column.name in columns.raw:
            arrays[column.name] = _from_raw(columns.raw[column.name], column)
    return arrays


def _read_type(column: Column) -> pa.DataType | None:
    """Arrow's reader gives the scalar columns, and dates or datetimes written as text after
    a demotion; not numbers demoted to text (they are not JSON strings)."""
    if column.json_text or (column.demoted and column.kind not in (DATE, DATETIME, STRING)):
        return None
    return _READ_TYPES[column.kind]


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
