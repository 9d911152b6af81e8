"""A block of flat records read by Arrow's CSV reader, cut at every quote mark.

The parser writes each record of a result as `{"key":value,...}`: the keys in the columns'
order, no spaces. In a block without a backslash (so without an escaped character), a quote
mark can only open or close a key or a string value, so cutting each line at its quote marks
gives every record the same fields: `{`, then for each column its key and either `:value,`
(a number or a boolean) or `:`, the string, `,` (the last column ends with `}` instead).
Arrow's CSV reader cuts at one byte for about half the CPU its JSON reader spends parsing the
same records (0.30 against 0.59 CPU-s for the 79 MB bench CSV's 157 MB result).

The keys are read too, and every one must be the expected one; a record laid out in any
other way (a null string, a nested value, a space, another key order) makes the reader, the
key check or a cast fail, and the block is then left to the JSON reader (None).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from service.formats.columns import BOOLEAN, DATE, DATETIME, INTEGER, NUMBER, STRING, Column

# Kinds written as JSON strings, which Arrow's JSON reader gives as strings, and the type it
# gives each kind written bare; this reader gives the same.
_QUOTED = frozenset({STRING, DATE, DATETIME})
_BARE = {INTEGER: pa.int64(), NUMBER: pa.float64(), BOOLEAN: pa.bool_()}
_BACKSLASH = re.compile(rb"\\")
_NULL = pa.scalar(None, pa.string())
_KEY_TYPE = pa.dictionary(pa.int32(), pa.string())
_PARSE = pa_csv.ParseOptions(delimiter='"', quote_char=False, double_quote=False, escape_char=False)


@dataclass(frozen=True)
class _Field:
    name: str
    key: str  # the CSV column holding the key of every record
    value: str  # the CSV column holding the value (bare values with `:` before, `,` after)
    bare: pa.DataType | None  # the type to cast a bare value to; None for a string


@dataclass(frozen=True)
class _Layout:
    columns: list[str]  # the CSV columns of a line, in order
    fields: list[_Field]
    convert: pa_csv.ConvertOptions


def flat_layout(columns: Sequence[Column], types: Mapping[str, pa.DataType]) -> bool:
    """Whether records of these columns, read in these types, can be read by `read_flat`:
    those `flat_text_layout` takes, each asked for in the type Arrow's JSON reader gives it."""
    if not flat_text_layout(columns):
        return False
    wanted = (pa.string() if c.kind in _QUOTED else _BARE[c.kind] for c in columns)
    return all(types.get(c.name) == t for c, t in zip(columns, wanted, strict=True))


def flat_text_layout(columns: Sequence[Column]) -> bool:
    """Whether records of these columns can be read by `read_flat` or `flat_texts`: scalars
    only, none demoted, and no nulls in the quoted ones (a null is not quoted, so it would
    shift the fields after it)."""
    return bool(columns) and all(
        not c.demoted and (c.kind in _BARE or (c.kind in _QUOTED and not c.nullable))
        for c in columns
    )


def read_flat(block: memoryview, columns: Sequence[Column]) -> dict[str, pa.Array] | None:
    """The block's columns in the types Arrow's JSON reader gives them, or None if the block
    is not laid out as `flat_layout` allows (the columns must pass it)."""
    values = _values(block, columns)
    if values is None:
        return None
    try:
        return {f.name: v if f.bare is None else pc.cast(_text(v), f.bare) for f, v in values}
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None


def flat_texts(block: memoryview, columns: Sequence[Column]) -> list[pa.Array] | None:
    """Each column's values as their JSON text, strings unquoted and null for null (the
    columns must pass `flat_text_layout`); None if the block is not laid out so. A number's
    or a boolean's text is not checked here."""
    values = _values(block, columns)
    if values is None:
        return None
    return [v if f.bare is None else _text(v) for f, v in values]


def _values(block: memoryview, columns: Sequence[Column]) -> list[tuple[_Field, pa.Array]] | None:
    """Each column's value field as the CSV reader gives it, the keys checked; None if the
    block is not laid out as the parser writes records."""
    if _BACKSLASH.search(block):
        return None
    layout = _layout(tuple((c.name, c.kind) for c in columns))
    read = pa_csv.ReadOptions(
        column_names=layout.columns, use_threads=False, block_size=len(block) + 1
    )
    try:
        table = pa_csv.read_csv(
            pa.py_buffer(block),
            read_options=read,
            parse_options=_PARSE,
            convert_options=layout.convert,
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    values = []
    for field in layout.fields:
        keys = table.column(field.key).combine_chunks().dictionary
        if len(keys) != 1 or keys[0].as_py() != field.name:
            return None
        values.append((field, table.column(field.value).combine_chunks()))
    return values


def _text(field: pa.Array) -> pa.Array:
    """`:value,` (or `:value}`) as `value`; `:null,` as null."""
    values = pc.utf8_slice_codeunits(field, 1, -1)
    nulls = pc.equal(values, "null")
    if pc.any(nulls).as_py():
        values = pc.if_else(nulls, _NULL, values)
    return values


@functools.lru_cache(maxsize=64)
def _layout(columns: tuple[tuple[str, str], ...]) -> _Layout:
    position = 0  # the `{` before the first key
    fields: list[_Field] = []
    for name, kind in columns:
        key = position + 1
        if kind in _QUOTED:  # key, `:`, the string, then `,` or `}`
            fields.append(_Field(name, f"f{key}", f"f{key + 2}", None))
            position = key + 3
        else:  # key, then `:value,` or `:value}`
            fields.append(_Field(name, f"f{key}", f"f{key + 1}", _BARE[kind]))
            position = key + 1
    names = [f"f{i}" for i in range(position + 1)]
    types = {f.key: _KEY_TYPE for f in fields} | {f.value: pa.string() for f in fields}
    convert = pa_csv.ConvertOptions(
        column_types=types,
        include_columns=[c for f in fields for c in (f.key, f.value)],
        strings_can_be_null=False,
        null_values=[],
    )
    return _Layout(names, fields, convert)
