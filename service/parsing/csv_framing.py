"""Finding record boundaries in CSV bytes without a byte-by-byte loop.

A newline ends a record unless it is inside a quoted field. Counting quotes tells which
newlines are inside one, provided every quote that would open a field stands where a field
starts (after a delimiter, a line break, another quote or at the start). A quote elsewhere is a
stray one that Python's csv, pandas and DuckDB keep literally; from there on the count is no
guide, so `safe_records_end` stops before it and the caller reads that part record by record.
"""

from __future__ import annotations

import re
from functools import lru_cache


@lru_cache(maxsize=8)
def _records_pattern(delimiter: str) -> re.Pattern[bytes]:
    delim = re.escape(delimiter.encode("utf-8"))
    unquoted = rb'[^"\n]*+'
    quoted = rb"(?<![^" + delim + rb'\r\n"])"[^"]*+"'
    record = unquoted + rb"(?:" + quoted + unquoted + rb")*+\n"
    return re.compile(rb"(?:" + record + rb")*+")


def safe_records_end(data: bytes, delimiter: str, *, at_eof: bool) -> int:
    """Length of the longest prefix of `data` made of whole records whose quotes all pair up.

    `data` starts at a record boundary. At the end of the file the last record needs no newline.
    """
    if b'"' not in data:
        if at_eof:
            return len(data)
        return data.rfind(b"\n") + 1
    pattern = _records_pattern(delimiter)
    end = pattern.match(data).end()  # type: ignore[union-attr]
    if at_eof and end < len(data):
        rest = data[end:]
        if not rest.endswith(b"\n") and pattern.fullmatch(rest + b"\n"):
            return len(data)
    return end


def count_lines(data: bytes) -> int:
    """Line breaks in `data`: LF, CRLF and a lone CR each end one physical line."""
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")
