"""Finding record boundaries in CSV bytes without a byte-by-byte loop in Python.

A newline ends a record unless it is inside a quoted field. Counting quotes tells which
newlines are inside one, provided every quote that opens a quoted section stands where a field
starts (after a delimiter, a line break, another quote, or at the start). A quote elsewhere is
a stray one, which Python's csv, pandas and DuckDB keep literally; from there on the count is
no guide, so `safe_records_end` stops before it and the caller reads on record by record.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from service.parsing.byte_counts import LF, VECTOR_BYTES, as_array, count_byte

_QUOTE, _CR = ord('"'), ord("\r")


@lru_cache(maxsize=8)
def _quoted_sections(delimiter: str) -> re.Pattern[bytes]:
    """Unquoted runs and quoted sections, each quoted section opening where a field starts.

    It matches as far as the quotes are trustworthy and stops at the first stray quote or at a
    quoted section that the data ends inside.
    """
    delim = re.escape(delimiter.encode("utf-8"))
    opening = rb"(?<![^" + delim + rb'\r\n"])"'
    return re.compile(rb'(?:[^"]*+' + opening + rb'[^"]*+")*+[^"]*+')


def safe_records_end(data: bytes, delimiter: str, *, at_eof: bool, limit: int | None = None) -> int:
    """Length of the longest prefix of `data[:limit]` made of whole records whose quotes all
    pair up.

    `data` starts at a record boundary. At the end of the file (`at_eof`, and no `limit` short
    of the end) the last record needs no newline.
    """
    size = len(data) if limit is None else min(limit, len(data))
    at_eof = at_eof and size == len(data)
    if data.find(b'"', 0, size) < 0:
        return size if at_eof else data.rfind(b"\n", 0, size) + 1
    trusted = _trusted_end(data, delimiter, size)
    if at_eof and trusted == size:
        return trusted
    return _last_record_end(data, trusted)


def _last_record_end(data: bytes, trusted: int) -> int:
    """Just past the last newline outside quotes in `data[:trusted]`, whose quotes all pair
    up; 0 if there is none."""
    # Quotes before `trusted` alternate opening and closing, so walking back over them pair by
    # pair visits exactly the stretches outside quotes; the last newline in one ends a record.
    run_end = trusted
    while True:
        closing = data.rfind(b'"', 0, run_end)
        newline = data.rfind(b"\n", closing + 1, run_end)
        if newline >= 0:
            return newline + 1
        if closing < 0:
            return 0
        run_end = data.rfind(b'"', 0, closing)


def _trusted_end(data: bytes, delimiter: str, size: int) -> int:
    """Where `_quoted_sections` stops matching `data[:size]`: at the first quote that opens a
    section away from a field's start, or that opens one the data ends inside; else `size`."""
    separator = delimiter.encode("utf-8")
    if size < VECTOR_BYTES or len(separator) != 1:
        return _quoted_sections(delimiter).match(data, 0, size).end()  # type: ignore[union-attr]
    view = as_array(data, size)
    quotes = np.flatnonzero(view == _QUOTE)
    if not len(quotes):
        return size
    openers = quotes[0::2]  # quotes alternate opening and closing while they can be trusted
    before = view[openers - 1]  # an opener at 0 reads the last byte: overruled below
    trusted = (before == separator[0]) | (before == LF) | (before == _CR) | (before == _QUOTE)
    trusted[0] |= openers[0] == 0
    stray = np.flatnonzero(~trusted)
    stop = 2 * int(stray[0]) if len(stray) else len(quotes)
    if len(quotes) % 2:
        stop = min(stop, len(quotes) - 1)  # the last section is not closed in `data[:size]`
    return int(quotes[stop]) if stop < len(quotes) else size


def runs_on(data: bytes, delimiter: str, size: int) -> bool:
    """Whether the record that `data` starts with certainly goes on past `data[:size]`.

    So when the record reader, which parses all it is given, need not be asked: no line
    break outside quotes, every quote trustworthy, no CR (a lone CR may end a record, which
    only the record reader knows).
    """
    if data.find(b"\r", 0, size) >= 0:
        return False
    if data.find(b'"', 0, size) < 0:
        return data.rfind(b"\n", 0, size) < 0
    stop = _trusted_end(data, delimiter, size)
    if stop < size and stop > 0 and data[stop - 1] not in _field_starts(delimiter):
        return False  # a stray quote: only the record reader reads on as Python's csv
    return _last_record_end(data, stop) == 0


@lru_cache(maxsize=8)
def _field_starts(delimiter: str) -> bytes:
    """Bytes a quote that opens a quoted field may follow."""
    return delimiter.encode("utf-8") + b'\r\n"'


def count_lines(data: bytes, end: int | None = None) -> int:
    """Line breaks in `data[:end]`: LF, CRLF and a lone CR each end one physical line."""
    end = len(data) if end is None else end
    lines = count_byte(data, LF, end)
    if data.find(b"\r", 0, end) >= 0:
        lines += data.count(b"\r", 0, end) - data.count(b"\r\n", 0, end)
    return lines
