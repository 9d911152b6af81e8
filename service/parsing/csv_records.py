"""The record-by-record CSV reader: Python's csv module with physical line numbers.

It is the reference for the fast Arrow reader, and it takes over wherever that one cannot be
trusted: rows with the wrong field count, undecodable bytes, stray quotes, CR-only line ends.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

from service.parsing.decoding import SURROGATES, decode_lossless
from service.parsing.row_errors import RowError, decode_error, field_count_error


@dataclass
class RecordsRead:
    rows: list[list[str]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    consumed: int = 0  # bytes of input taken, always whole records
    lines: int = 0  # physical lines in those bytes


class _Lines:
    """Feeds csv.reader whole physical lines and remembers where it got to."""

    def __init__(self, text: str, at_eof: bool) -> None:
        self._text = text
        self._at_eof = at_eof
        self.position = 0  # characters handed out so far
        self.count = 0  # lines handed out so far
        self.exhausted = False

    def __iter__(self) -> Iterator[str]:
        for line in io.StringIO(self._text, newline=""):
            end = self.position + len(line)
            if not self._at_eof and not (
                line.endswith("\n") or (line.endswith("\r") and end < len(self._text))
            ):
                break  # a cut-off last line, or a CR whose LF may be in the next block
            self.position = end
            self.count += 1
            yield line
        self.exhausted = True


def read_records(
    data: bytes,
    *,
    delimiter: str,
    expected_fields: int | None,
    first_line: int,
    at_eof: bool,
    encoding: str = "utf-8",
    max_records: int | None = None,
    min_bytes: int | None = None,
    check_decoding: bool = True,
) -> RecordsRead:
    """Reads whole records from `data`, which starts at a record boundary on `first_line`.

    Stops at the last complete record (all of them when `at_eof`), after `max_records`
    records, or once at least `min_bytes` characters are taken. Records whose field count is
    not `expected_fields` (when given) or that hold undecodable bytes become row errors.
    """
    csv.field_size_limit(sys.maxsize)
    text = decode_lossless(data)
    lines = _Lines(text, at_eof)
    reader = csv.reader(lines, delimiter=delimiter, quotechar='"', strict=False)
    batch = RecordsRead()
    taken_chars = 0
    taken_lines = 0
    records = 0
    for row in reader:
        if lines.exhausted and not at_eof:
            break  # the record runs on past the end of `data`
        start_chars, start_lines = taken_chars, taken_lines
        taken_chars, taken_lines = lines.position, lines.count
        if not row:
            continue
        records += 1
        line_number = first_line + start_lines
        raw = text[start_chars:taken_chars]
        if check_decoding and any(SURROGATES.search(value) for value in row):
            batch.errors.append(decode_error(line_number, encoding, raw))
        elif expected_fields is not None and len(row) != expected_fields:
            batch.errors.append(field_count_error(line_number, expected_fields, len(row), raw))
        else:
            batch.rows.append(row)
        if (max_records is not None and records >= max_records) or (
            min_bytes is not None and taken_chars >= min_bytes
        ):
            break
    batch.consumed = len(text[:taken_chars].encode("utf-8", "surrogateescape"))
    batch.lines = taken_lines
    return batch
