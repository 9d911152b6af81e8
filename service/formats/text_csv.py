"""CSV (RFC 4180) from the NDJSON result: a header row of the column names, then each record's
values in canonical text: numbers exactly as written in the result (`9.50` stays `9.50`),
`true`/`false`, nothing for null, strings as they are, objects and arrays as JSON text.

Values are quoted only where RFC 4180 needs it (a comma, a quote, a line break), and an empty
string is written `""` so that readers that can (PostgreSQL's COPY) tell it from null, except
in a file of one column, where a null is `""` too: an empty line would be skipped by readers.
Lines end with CRLF.

Records laid out as the parser writes them (compact, every key in column order) are cut at
their quote marks by Arrow's CSV reader (`flat_records`), which gives every value's text as
written. Where that layout does not hold for every column (null strings), Arrow's JSON reader
reads them instead; it cannot give a number's text, only its value, so the number values are
first put in quotes. In any other block the numbers, objects and arrays come from their raw
JSON text.
"""

from __future__ import annotations

import re
from array import array
from functools import partial
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from service.formats.blocks import map_in_order, read_blocks
from service.formats.columns import (
    BOOLEAN,
    DATE,
    DATETIME,
    INTEGER,
    NULL,
    NUMBER,
    Column,
    Plan,
)
from service.formats.flat_records import flat_text_layout, flat_texts
from service.formats.raw_values import NULL_TEXT, canonical_text
from service.formats.reading import one_chunk, read_columns, read_json

LINE_END = "\r\n"
_NEEDS_QUOTES = (",", '"', "\n", "\r")
_NEEDS_QUOTES_BYTES = tuple(re.compile(re.escape(c.encode())) for c in _NEEDS_QUOTES)
_NUMBERS = (INTEGER, NUMBER)
# Columns whose canonical text never holds a character that needs quoting.
_PLAIN = (INTEGER, NUMBER, BOOLEAN, NULL, DATE, DATETIME)
_BOOLEAN_TEXTS = pa.array(["true", "false"])


def write_csv(result: Path, plan: Plan, target: Path) -> None:
    with open(target, "wb") as out:
        if not plan.columns:
            return
        out.write(header(plan).encode())
        for lines in map_in_order(partial(csv_lines, plan=plan), read_blocks(result)):
            out.write(lines)


def header(plan: Plan) -> str:
    return ",".join(_quoted_if_needed(name) for name in plan.names) + LINE_END


def csv_lines(block: memoryview, plan: Plan) -> memoryview:
    texts = _texts_flat(block, plan) or _texts_numbers_quoted(block, plan) or _texts(block, plan)
    fields = [
        texts[i] if column.kind in _PLAIN else _csv_fields(texts[i])
        for i, column in enumerate(plan.columns)
    ]
    if not fields or len(fields[0]) == 0:
        return memoryview(b"")
    # A row of one empty field would be a blank line, which readers skip: write it `""`, as
    # Python's csv module does (in a one-column file, null and "" then read the same).
    empty = '""' if len(fields) == 1 else ""
    options = pc.JoinOptions(null_handling="replace", null_replacement=empty)
    lines = pc.binary_join_element_wise(*fields, ",", options=options)
    lines = pc.binary_join_element_wise(lines, "", LINE_END)
    return _data(lines)


def _texts_flat(block: memoryview, plan: Plan) -> list[pa.Array] | None:
    """Each column's canonical text, cut from records laid out as the parser writes them by
    Arrow's CSV reader (`flat_records`); None for a block laid out otherwise, or whose number
    or boolean texts are not what their column holds."""
    if not flat_text_layout(plan.columns):
        return None
    texts = flat_texts(block, plan.columns)
    if texts is None:
        return None
    for column, text in zip(plan.columns, texts, strict=True):
        if column.kind in _NUMBERS and not _all_numbers(text):
            return None
        if column.kind == BOOLEAN and not _boolean_texts(text):
            return None
    return texts


def _boolean_texts(texts: pa.Array) -> bool:
    return bool(pc.all(pc.is_in(pc.drop_null(texts), _BOOLEAN_TEXTS), min_count=0).as_py())


def _texts_numbers_quoted(block: memoryview, plan: Plan) -> list[pa.Array] | None:
    """Each column's canonical text, all by Arrow's JSON reader, the numbers put in quotes
    first; None if the block is not laid out as the parser writes records, or holds values
    Arrow cannot give as text (objects, arrays)."""
    if any(c.json_text for c in plan.columns):
        return None
    types = {c.name: pa.string() if c.kind in _NUMBERS else _read_type(c) for c in plan.columns}
    table = read_json(_numbers_quoted(block, plan.columns), types)
    if table is None:
        return None
    texts = []
    for column in plan.columns:
        values = one_chunk(table.column(column.name))
        text = _number_texts(values) if column.kind in _NUMBERS else _text(column, values)
        if text is None:
            return None
        texts.append(text)
    return texts


def _texts(block: memoryview, plan: Plan) -> list[pa.Array]:
    """Each column's canonical text: by Arrow's JSON reader where it can give it, from the
    values' raw JSON text otherwise (numbers, objects, arrays, mixed columns)."""
    columns = read_columns(block, plan.columns, _read_type)
    return [
        _text(c, columns.read[c.name])
        if c.name in columns.read
        else canonical_text(columns.raw[c.name])
        for c in plan.columns
    ]


def _read_type(column: Column) -> pa.DataType | None:
    """What Arrow's reader is asked for: values whose text it gives exactly."""
    if column.json_text or column.kind in _NUMBERS:
        return None
    if column.kind == BOOLEAN:
        return pa.bool_()
    if column.kind == NULL:
        return pa.null()
    return pa.string()


def _numbers_quoted(block: memoryview, columns: tuple[Column, ...]) -> memoryview:
    """The block with every value of a number column in quotes, where records are laid out
    as the parser writes them: `{"a":1,"b":"x"}`. A key separator (`,"b":`) holds unescaped
    quotes, so it cannot occur inside a JSON string; a record laid out otherwise is left
    with a lone quote, or a number where a string is expected, and Arrow refuses it."""
    keys = [orjson.dumps(c.name) for c in columns]
    separators = [(b"," if i else b"{") + key + b":" for i, key in enumerate(keys)] + [b"}\n"]
    quoted = [c.kind in _NUMBERS for c in columns] + [False]
    data = _one_value(block)
    for i, separator in enumerate(separators):
        before, after = i > 0 and quoted[i - 1], quoted[i]
        if before or after:
            replacement = (b'"' if before else b"") + separator + (b'"' if after else b"")
            data = pc.replace_substring(data, separator, replacement)
    return _data(data)


def _one_value(data: memoryview) -> pa.Array:
    """A binary array holding `data` as its one value, without copying it."""
    offsets = pa.py_buffer(array("i", [0, len(data)]))
    return pa.Array.from_buffers(pa.binary(), 1, [None, offsets, pa.py_buffer(data)])


def _text(column: Column, values: pa.Array) -> pa.Array:
    """Canonical text of a column as Arrow's reader gave it."""
    if column.kind == BOOLEAN:
        return pc.if_else(values, "true", "false")
    if column.kind == NULL:
        return pa.nulls(len(values), pa.string())
    return values


def _number_texts(values: pa.Array) -> pa.Array | None:
    """The texts of a number column put in quotes, or None if one of them is not a number
    (the block was not laid out as assumed)."""
    texts = pc.if_else(pc.equal(values, NULL_TEXT.decode()), None, values)
    return texts if _all_numbers(texts) else None


def _all_numbers(texts: pa.Array) -> bool:
    """Every text not null is a number's."""
    try:
        pc.cast(texts, pa.float64())
    except pa.ArrowInvalid:
        return False
    return True


def _csv_fields(texts: pa.Array) -> pa.Array:
    """The values quoted where RFC 4180 needs it, and empty strings as `""`."""
    data = texts.buffers()[2]
    present = [
        c
        for c, pattern in zip(_NEEDS_QUOTES, _NEEDS_QUOTES_BYTES, strict=True)
        if data is not None and pattern.search(memoryview(data)) is not None
    ]
    needs_quotes = pc.equal(pc.binary_length(texts), 0)
    for char in present:
        needs_quotes = pc.or_(needs_quotes, pc.match_substring(texts, char))
    if not pc.any(needs_quotes).as_py():
        return texts
    escaped = pc.replace_substring(texts, '"', '""') if '"' in present else texts
    quoted = pc.binary_join_element_wise('"', escaped, '"', "")
    return pc.if_else(needs_quotes, quoted, texts)


def _quoted_if_needed(text: str) -> str:
    if text and not any(c in text for c in _NEEDS_QUOTES):
        return text
    return '"' + text.replace('"', '""') + '"'


def _data(strings: pa.Array) -> memoryview:
    """The values of a string array back to back: a view of its data buffer, no copy."""
    _, offsets_buffer, data = strings.buffers()
    offsets = memoryview(offsets_buffer).cast("i")
    start, end = offsets[strings.offset], offsets[strings.offset + len(strings)]
    return memoryview(data)[start:end]
