"""The fast JSON-lines reader: Arrow's JSON parser on blocks of whole lines.

It only vouches for a block in which every line is one JSON object Arrow can type; anything
else (a bad line, a blank line, a key whose type changes, a token Arrow is laxer about than
the JSON spec, a line nested too deep) sends the block to the line-by-line reader, which owns
the row errors.

Arrow's output is a table of every key by every line, so a block whose lines hold many
different keys costs lines x keys, nearly all nulls: 10,000 lines with a key of their own each
take Arrow 7 s and 1.4 GB, 20,000 take 32 s and 5.4 GB. So Arrow never discovers the keys of a
whole block. It reads each block against a schema (new keys and other types make it refuse
the block): the one the blocks before it had, or one learnt from the block's first lines, or
from a sample of the records of a block the line-by-line reader took. Learning and reading
happen only while keys x lines stays within a budget; past it, blocks go line by line, whose
cost grows with the bytes alone.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from service.parsing.column_types import BOOLEAN, INTEGER, NULL, NUMBER, STRING
from service.parsing.json_depth import shallow_lines
from service.parsing.json_values import ARRAY, OBJECT, JsonSummary
from service.parsing.limits import DEFAULT_LIMITS, Limits, utf8_length

ARROW_BLOCK_BYTES = 1 << 20
# Values Arrow may build for one block (keys at every level, times lines): about 0.3 s and
# 60 MB when nearly all are nulls, the costliest case.
CELL_BUDGET = 1 << 22
# Records nested deeper go line by line: the schema is walked recursively here.
SCHEMA_DEPTH = 64
SAMPLE_LINES = 32  # the first lines of a block, to learn a schema from when there is none
LEARN_RECORDS = 256  # records of a block read line by line, to learn a schema from
# Arrow reads NaN and Infinity, which strict JSON refuses, and does not check UTF-8.
_LAX_TOKENS = (b"NaN", b"Infinity")
# Arrow takes a line holding just `null` for a record of nulls (pyarrow 26; and a block of
# nothing else makes it hang), where JSON lines wants a not_object error.
# Searched in "\n" + block: a pattern that starts with a plain character is searched fast.
_NULL_LINE = re.compile(rb"\n[ \t\r]*+null[ \t\r]*+(?:\n|\Z)")
# Arrow reads an integer beyond 64 bits as a double; the summary calls such a key a string.
_INT64_REACH = 2.0**63


@dataclass(frozen=True)
class FastLines:
    data: bytes  # the records as NDJSON
    rows: int
    schema: pa.Schema  # what the block was read against, for the blocks after it


def read_lines_fast(
    piece: bytes, summary: JsonSummary, limits: Limits = DEFAULT_LIMITS
) -> bytes | None:
    """The records of `piece` (whole lines) as NDJSON, or None if the block needs the slow
    reader. Adds the block's keys to `summary` only when it succeeds."""
    fast = read_lines(piece, summary, limits=limits, schema=None)
    return None if fast is None else fast.data


def read_lines(  # noqa: C901 - each way Arrow's reader may not vouch for a block is a branch
    piece: bytes, summary: JsonSummary, *, limits: Limits, schema: pa.Schema | None
) -> FastLines | None:
    """Like `read_lines_fast`, reading against `schema` (None: one learnt from the block's
    first lines)."""
    if any(token in piece for token in _LAX_TOKENS):
        return None
    if b"null" in piece and _NULL_LINE.search(b"\n" + piece):
        return None
    if not piece.isascii():
        try:
            piece.decode("utf-8")
        except UnicodeDecodeError:
            return None
    line_feeds = shallow_lines(piece, limits.max_json_depth)
    if line_feeds is None:
        return None
    lines = line_feeds + (0 if piece.endswith(b"\n") else 1)
    if schema is None:
        schema = learn_schema(_first_lines(piece, SAMPLE_LINES))
        if schema is None:
            return None
    table = _read_against(piece, schema, lines)
    if table is None or table.num_rows != lines:  # a blank line, or two objects on one line
        return None
    if not _summarisable(table, limits):
        return None
    summary.records += table.num_rows
    for name, column in zip(table.column_names, table.columns, strict=True):
        if column.null_count == len(column):  # absent from the block, or null throughout
            summary.add_column(name, NULL, table.num_rows, column.null_count)
        else:
            summary.add_column(name, _kind(column.type), table.num_rows, column.null_count)
    if not piece.endswith(b"\n"):
        piece += b"\n"
    if b"\r" in piece:
        piece = piece.replace(b"\r\n", b"\n")
    return FastLines(piece, lines, schema)


def learn_schema(lines: bytes) -> pa.Schema | None:
    """The schema Arrow finds for a few lines, dates kept as strings; None when Arrow cannot
    type them, or when they hold too many keys to be worth it."""
    if not lines:
        return None
    count = lines.count(b"\n") + (0 if lines.endswith(b"\n") else 1)
    if lines.count(b":") * count > CELL_BUDGET:  # a colon for every key, at any level
        return None
    try:
        table = pa_json.read_json(
            pa.py_buffer(lines),
            read_options=pa_json.ReadOptions(use_threads=False, block_size=ARROW_BLOCK_BYTES),
        )
    except pa.ArrowException:
        return None
    if any(_nesting(field.type) > SCHEMA_DEPTH for field in table.schema):
        return None
    return pa.schema([pa.field(f.name, _general(f.type)) for f in table.schema])


def learn_from_records(records: list[bytes]) -> pa.Schema | None:
    """A schema learnt from a sample of `records`, whole JSON objects one per line: records
    spread over all of them, fewer when they are wide (a sample costs records x keys)."""
    if not records:
        return None
    keys = max(records[0].count(b":"), 1)
    wanted = max(min(LEARN_RECORDS, math.isqrt(CELL_BUDGET // keys)), 1)
    step = max(-(-len(records) // wanted), 1)
    return learn_schema(b"\n".join(records[::step]))


def merge_schemas(known: pa.Schema | None, learnt: pa.Schema | None) -> pa.Schema | None:
    """A schema for the blocks to come: what was known widened by what was learnt (new keys,
    wider types); the known one if they cannot be reconciled."""
    if learnt is None or known is learnt:
        return known
    if known is None:
        return learnt
    try:
        return pa.unify_schemas([known, learnt], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return known


def _read_against(piece: bytes, schema: pa.Schema, lines: int) -> pa.Table | None:
    if sum(_width(field.type) for field in schema) * lines > CELL_BUDGET:
        return None
    try:
        return pa_json.read_json(
            pa.py_buffer(piece),
            read_options=pa_json.ReadOptions(use_threads=False, block_size=ARROW_BLOCK_BYTES),
            parse_options=pa_json.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="error"
            ),
        )
    except pa.ArrowException:
        return None


def _first_lines(piece: bytes, count: int) -> bytes:
    end = 0
    for _ in range(count):
        found = piece.find(b"\n", end)
        if found < 0:
            return piece
        end = found + 1
    return piece[:end]


def _summarisable(table: pa.Table, limits: Limits) -> bool:
    """No key too long, and no top-level integer beyond 64 bits hiding in a double: records
    the line-by-line reader must look at."""
    for name, column in zip(table.column_names, table.columns, strict=True):
        if len(name) > limits.max_column_name_bytes // 4:
            if utf8_length(name) > limits.max_column_name_bytes:
                return False
        if pa.types.is_floating(column.type):
            largest = pc.max(pc.abs(column)).as_py()
            if largest is not None and largest >= _INT64_REACH:
                return False
    return True


def _nesting(arrow_type: pa.DataType) -> int:
    """How deep a type nests, without recursion (Arrow builds types 1,000 deep)."""
    deepest = 0
    pending = [(arrow_type, 1)]
    while pending:
        current, depth = pending.pop()
        deepest = max(deepest, depth)
        pending.extend((current.field(i).type, depth + 1) for i in range(current.num_fields))
    return deepest


def _width(arrow_type: pa.DataType) -> int:
    """The builders Arrow keeps per line for a value of this type."""
    return 1 + sum(_width(arrow_type.field(i).type) for i in range(arrow_type.num_fields))


def _general(arrow_type: pa.DataType) -> pa.DataType:
    """Arrow takes ISO dates in strings for timestamps, which would refuse any other string
    in a later block: they are read as the strings they are."""
    if pa.types.is_temporal(arrow_type):
        return pa.string()
    if pa.types.is_struct(arrow_type):
        return pa.struct(
            [
                arrow_type.field(i).with_type(_general(arrow_type.field(i).type))
                for i in range(arrow_type.num_fields)
            ]
        )
    if pa.types.is_list(arrow_type):
        return pa.list_(arrow_type.value_field.with_type(_general(arrow_type.value_type)))
    if pa.types.is_large_list(arrow_type):
        return pa.large_list(arrow_type.value_field.with_type(_general(arrow_type.value_type)))
    return arrow_type


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
