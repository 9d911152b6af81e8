"""The exact JSON text of each top-level value, for records Arrow's JSON reader cannot type:
objects, arrays, mixed columns, integers beyond 64 bits, records laid out in other ways.

msgspec cuts records into raw value texts without building them; the standard library's
decoder takes over for a block msgspec refuses (it rejects lone surrogate escapes, which JSON
allows and the parser keeps).
"""

from __future__ import annotations

import functools
import json
import re
from array import array
from collections.abc import Sequence
from itertools import accumulate
from json.decoder import scanstring  # type: ignore[attr-defined]
from operator import attrgetter

import msgspec
import orjson
import pyarrow as pa
import pyarrow.compute as pc

NULL_TEXT = b"null"
_NULL_RAW = msgspec.Raw(NULL_TEXT)
_BACKSLASH = re.compile(rb"\\")
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def raw_columns(block: memoryview, names: Sequence[str]) -> list[pa.Array]:
    """For each name, a binary array of the raw value texts in the block's records, one per
    record; `null` where the record holds null or lacks the key."""
    try:
        records = _decoder(tuple(names)).decode_lines(block)
        columns: list[list[bytes]] = [
            list(map(attrgetter(f"f{i}"), records)) for i in range(len(names))
        ]
    except msgspec.DecodeError:
        columns = _raw_columns_stdlib(block, names)
    return [_binary(values) for values in columns]


def json_text(raw: pa.Array) -> pa.Array:
    """The raw texts as strings, null for JSON null."""
    return pc.if_else(pc.equal(raw, NULL_TEXT), None, raw).cast(pa.string())


def canonical_text(raw: pa.Array) -> pa.Array:
    """Each value as text: a JSON string as the string it stands for, null as null, anything
    else (numbers, booleans, objects, arrays) as its exact JSON text."""
    quoted = pc.starts_with(raw, '"')
    texts = pc.if_else(quoted, pc.binary_slice(raw, 1, -1), raw)
    texts = pc.if_else(pc.equal(raw, NULL_TEXT), None, texts).cast(pa.string())
    if _any_backslash(raw):  # strings with escapes: decoded one by one
        escaped = pc.and_(quoted, pc.match_substring(raw, "\\"))
        decoded = [decode_json_string(value) for value in pc.filter(raw, escaped).to_pylist()]
        texts = pc.replace_with_mask(texts, escaped, pa.array(decoded, pa.string()))
    return texts


def decode_json_string(text: bytes) -> str:
    """A JSON string literal's value. A lone surrogate escape, which JSON allows but UTF-8
    cannot hold, becomes U+FFFD."""
    try:
        value: str = orjson.loads(text)
        return value
    except orjson.JSONDecodeError:
        decoded: str = json.loads(text)
        return decoded.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _any_backslash(raw: pa.Array) -> bool:
    _, offsets, data = raw.buffers()
    return data is not None and _BACKSLASH.search(memoryview(data)) is not None


@functools.lru_cache(maxsize=32)
def _decoder(names: tuple[str, ...]) -> msgspec.json.Decoder[object]:
    """Decodes a record into just these keys, as raw texts; every other key is skipped."""
    fields = [(f"f{i}", msgspec.Raw, _NULL_RAW) for i in range(len(names))]
    record = msgspec.defstruct(
        "Record", fields, rename={f"f{i}": name for i, name in enumerate(names)}
    )
    return msgspec.json.Decoder(record)


def _binary(values: list[bytes]) -> pa.Array:
    """A binary array of the values, built from their concatenation and lengths."""
    offsets = array("i", accumulate(map(len, values), initial=0))
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(values))]
    return pa.Array.from_buffers(pa.binary(), len(values), buffers)


def _raw_columns_stdlib(block: memoryview, names: Sequence[str]) -> list[list[bytes]]:
    columns: list[list[bytes]] = [[] for _ in names]
    for line in bytes(block).decode("utf-8").splitlines():
        if not line.strip():
            continue
        items = _raw_items(line)
        for column, name in zip(columns, names, strict=True):
            column.append(items.get(name, "null").encode())
    return columns


def _raw_items(line: str) -> dict[str, str]:
    """The top-level keys of one JSON object and the exact text of their values."""
    items: dict[str, str] = {}
    index = _skip(line, _skip(line, 0) + 1)  # past `{`
    if line[index] == "}":
        return items
    while True:
        key, index = scanstring(line, index + 1)  # past the key's closing quote
        index = _skip(line, _skip(line, index) + 1)  # past `:`
        _, end = _DECODER.raw_decode(line, index)
        items[key] = line[index:end]
        index = _skip(line, end)
        if line[index] == "}":
            return items
        index = _skip(line, index + 1)  # past `,`


def _skip(line: str, index: int) -> int:
    match = _WHITESPACE.match(line, index)
    assert match is not None  # the pattern matches the empty string
    return match.end()
