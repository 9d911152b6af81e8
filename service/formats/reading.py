"""A block's columns as Arrow's JSON reader gives them, and the raw JSON text of the others.

Records of flat scalar columns are first tried by Arrow's CSV reader cut at quote marks
(`flat_records`), which gives the same arrays for about half the CPU.

Arrow's reader is fast but only gives JSON scalars in the types asked for; it refuses a whole
block in which one value is of another JSON type than its column's (a number in a string
column, an object anywhere). Columns it cannot give, and every column of a block it
refuses, come from the raw text of each value instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.json as pa_json

from service.formats.columns import Column
from service.formats.flat_records import flat_layout, read_flat
from service.formats.raw_values import raw_columns

# The type to ask Arrow's reader for a column, or None for its raw text.
ReadType = Callable[[Column], pa.DataType | None]


@dataclass(frozen=True)
class BlockColumns:
    read: dict[str, pa.Array]  # by Arrow's reader, in the types asked for
    raw: dict[str, pa.Array]  # binary: each value's JSON text, `null` where null or missing


def read_columns(block: memoryview, columns: Sequence[Column], read_type: ReadType) -> BlockColumns:
    wanted = {c.name: t for c in columns if (t := read_type(c)) is not None}
    if flat_layout(columns, wanted) and (flat := read_flat(block, columns)) is not None:
        return BlockColumns(flat, {})
    table = read_json(block, wanted) if wanted else None
    read = {} if table is None else {name: one_chunk(table.column(name)) for name in wanted}
    rest = [c.name for c in columns if c.name not in read]
    raw = dict(zip(rest, raw_columns(block, rest), strict=True)) if rest else {}
    return BlockColumns(read, raw)


def read_json(block: memoryview, types: dict[str, pa.DataType]) -> pa.Table | None:
    """The block's records with these keys in these types (others are skipped), or None if
    Arrow refuses a value (of another JSON type than asked, a duplicate key, ...)."""
    schema = pa.schema(list(types.items()))
    try:
        return pa_json.read_json(
            pa.py_buffer(block),
            read_options=pa_json.ReadOptions(use_threads=False, block_size=len(block) + 1),
            parse_options=pa_json.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="ignore"
            ),
        )
    except pa.ArrowException:
        return None


def one_chunk(column: pa.ChunkedArray) -> pa.Array:
    """A column Arrow's reader gave for one block: one chunk, taken as it is (combining
    chunks copies them, even a single one)."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
