"""The fast JSON-lines readers: a pattern for blocks of flat records laid out as the schema
says, else Arrow's JSON parser on blocks of whole lines.

Once a schema is known, a block whose every line is a flat object holding exactly its keys, in
its order, each with a value of its type, is checked by one RE2 match over the whole block (the
schema's template, `_template`): a third or less of what Arrow's parser and the checks before
it cost, and that match is all the proof such a block needs (strict JSON by construction,
one object per line, no nesting). Any other block goes to Arrow.

Arrow only vouches for a block in which every line is one JSON object Arrow can type; anything
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

import functools
import math
import re
import struct
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from service.parsing.byte_counts import LF, count_byte
from service.parsing.json_depth import shallow_lines
from service.parsing.json_values import ARRAY, OBJECT, JsonSummary
from service.parsing.limits import DEFAULT_LIMITS, Limits, utf8_length
from service.parsing.type_rules import BOOLEAN, INTEGER, NULL, NUMBER, STRING

ARROW_BLOCK_BYTES = 1 << 20
# Values Arrow may build for one block (keys at every level, times lines): about 0.3 s and
# 60 MB when nearly all are nulls, the costliest case.
CELL_BUDGET = 1 << 22
# Records nested deeper go line by line: the schema is walked recursively here.
SCHEMA_DEPTH = 64
SAMPLE_LINES = 32  # the first lines of a block, to learn a schema from when there is none
LEARN_RECORDS = 256  # records of a block read line by line, to learn a schema from
# Arrow's reader is given only blocks whose every line starts with an object: it skips a
# blank line, takes a line holding just `null` for a record of nulls (and hangs on a block of
# nothing else), and crashes the process on a block that starts with `null` and a value
# after it (pyarrow 26). With every line starting with an object, its row count equals the
# line count only if each line holds exactly one value. Lines that start with `{` right
# away are counted (`bytes.count`); only a block where some do not is searched with this
# (without its last line feed), for whitespace before the `{`.
_LINE_NOT_AN_OBJECT = r"(?:\A|\n)[ \t\r]*(?:[^{ \t\r]|\z)"
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


def read_lines(
    piece: bytes,
    summary: JsonSummary,
    *,
    limits: Limits,
    schema: pa.Schema | None,
    line_feeds: int | None = None,
) -> FastLines | None:
    """Like `read_lines_fast`, reading against `schema` (None: one learnt from the block's
    first lines). `line_feeds`, when the caller has counted them, saves counting again."""
    if not piece.isascii():
        try:
            piece.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if schema is not None:
        template = _template(schema, limits.max_column_name_bytes)
        if template is not None and _matches(template, piece, len(piece)):
            if line_feeds is None:
                line_feeds = count_byte(piece, LF)
            lines = line_feeds + (0 if piece.endswith(b"\n") else 1)
            summary.records += lines
            for field in schema:
                if pa.types.is_null(field.type):
                    summary.add_column(field.name, NULL, lines, lines)
                else:
                    summary.add_column(field.name, _kind(field.type), lines, 0)
            return FastLines(_as_ndjson(piece), lines, schema)
    return read_lines_with_arrow(piece, summary, limits=limits, schema=schema)


def read_lines_with_arrow(
    piece: bytes, summary: JsonSummary, *, limits: Limits, schema: pa.Schema | None
) -> FastLines | None:
    """`read_lines` without the template: Arrow's parser, after the checks of what it is not
    trusted with. The UTF-8 of `piece` is already checked."""
    line_feeds = shallow_lines(piece, limits.max_json_depth)
    if line_feeds is None:
        return None
    lines = line_feeds + (0 if piece.endswith(b"\n") else 1)
    if piece.count(b"\n{") + piece.startswith(b"{") != lines and _matches(
        _LINE_NOT_AN_OBJECT, piece, len(piece) - piece.endswith(b"\n")
    ):
        return None
    if schema is None:
        schema = learn_schema(_first_lines(piece, SAMPLE_LINES))
        if schema is None:
            return None
    table = _read_against(piece, schema, lines)
    if table is None or table.num_rows != lines:  # two values on one line
        return None
    if not _summarisable(table, limits):
        return None
    summary.records += table.num_rows
    for name, column in zip(table.column_names, table.columns, strict=True):
        if column.null_count == len(column):  # absent from the block, or null throughout
            summary.add_column(name, NULL, table.num_rows, column.null_count)
        else:
            summary.add_column(name, _kind(column.type), table.num_rows, column.null_count)
    return FastLines(_as_ndjson(piece), lines, schema)


def _as_ndjson(piece: bytes) -> bytes:
    """A block of records, one per line, as the NDJSON written: line feeds only, and one at
    the end."""
    if not piece.endswith(b"\n"):
        piece += b"\n"
    if b"\r" in piece:
        piece = piece.replace(b"\r\n", b"\n")
    return piece


def _matches(pattern: str, data: bytes, length: int) -> bool:
    """Whether RE2 finds `pattern` in the first `length` bytes of `data`: one search over
    them as a single binary value, without a copy."""
    offsets = struct.pack("<ii", 0, length)
    value = pa.Array.from_buffers(pa.binary(), 1, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    return bool(pc.match_substring_regex(value, pattern)[0].as_py())


# JSON text of values a template takes, for each type of a schema's field: a subset of what
# Arrow reads as that type and strict JSON allows. Integers of at most 18 digits, and numbers
# of at most 18 integer digits with no positive exponent, are within signed 64 bits (the range
# `_summarisable` checks for); a longer one goes to Arrow, which looks at its value. Strings
# take no surrogate escapes (`\ud800`): Arrow refuses a lone one, which the line-by-line
# reader accepts, so such a block goes the way it always went.
_WHITESPACE = r"[ \t\r]*"
_VALUE_PATTERNS = {
    pa.int64(): r"-?(?:0|[1-9][0-9]{0,17})",
    pa.float64(): r"-?(?:0|[1-9][0-9]{0,17})(?:\.[0-9]+)?(?:[eE]-[0-9]+)?",
    pa.bool_(): r"(?:true|false)",
    pa.string(): r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]'
    r'|\\u(?:[0-9a-cA-CefEF][0-9a-fA-F]|[dD][0-7])[0-9a-fA-F]{2})*"',
    pa.null(): r"null",
}
# Key characters that a template spells as they are (a key with others goes to Arrow): no
# quote, backslash or control character, which JSON escapes, and nothing outside ASCII, which
# it may write as `\u` escapes.
_PLAIN_KEY = re.compile(r"[\x20-\x7e]+")
_KEY_PUNCTUATION = re.compile(r"([^A-Za-z0-9_ ])")


@functools.lru_cache(maxsize=16)
def _template(schema: pa.Schema, max_key_bytes: int) -> str | None:
    """An RE2 pattern matching a block (without its last line feed, or with it) whose every
    line is one flat object with exactly the keys of `schema`, in its order, each holding a
    value of its type (null only for a null field), with any JSON whitespace but line breaks
    between the tokens. None if the schema cannot be spelt so (nested or other types, keys
    that JSON may escape or that are too long, no keys)."""
    members = []
    for field in schema:
        value = _VALUE_PATTERNS.get(field.type)
        name = field.name
        if value is None or len(name) > max_key_bytes or '"' in name or "\\" in name:
            return None
        if not _PLAIN_KEY.fullmatch(name):
            return None
        key = _KEY_PUNCTUATION.sub(r"\\\1", name)
        members.append(f'{_WHITESPACE}"{key}"{_WHITESPACE}:{_WHITESPACE}{value}{_WHITESPACE}')
    if not members:
        return None
    record = rf"{_WHITESPACE}\{{{','.join(members)}\}}{_WHITESPACE}"
    return rf"\A(?:{record}\n)*(?:{record})?\z"


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
    """No key too long, no top-level integer beyond 64 bits hiding in a double, and no
    number that is not finite: records the line-by-line reader must look at."""
    for name, column in zip(table.column_names, table.columns, strict=True):
        if len(name) > limits.max_column_name_bytes // 4:
            if utf8_length(name) > limits.max_column_name_bytes:
                return False
        if pa.types.is_floating(column.type):
            largest = pc.max(pc.abs(column)).as_py()
            if largest is not None and largest >= _INT64_REACH:
                return False
    return _all_finite(table)


def _all_finite(table: pa.Table) -> bool:
    """Whether every floating-point value, nested ones too, is finite. Arrow reads NaN, Inf
    and Infinity (with either sign), which strict JSON refuses; and a number too large for a
    double, which the line-by-line reader judges. Looking at the values costs a few kernel
    calls per block; searching the bytes for those tokens cost milliseconds."""
    pending: list[pa.ChunkedArray] = list(table.columns)
    while pending:
        column = pending.pop()
        if pa.types.is_floating(column.type):
            if pc.any(pc.invert(pc.is_finite(column))).as_py():
                return False
        elif pa.types.is_struct(column.type):
            pending.extend(column.flatten())
        elif pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
            pending.append(pc.list_flatten(column))
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
