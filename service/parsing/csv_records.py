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
from service.parsing.limits import utf8_length
from service.parsing.row_errors import (
    RAW_CHARS,
    RowError,
    decode_error,
    field_count_error,
    too_long_error,
    unterminated_quote_error,
)


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
    max_record_bytes: int | None = None,
) -> RecordsRead:
    """Reads whole records from `data`, which starts at a record boundary on `first_line`.

    Stops at the last complete record (all of them when `at_eof`), after `max_records`
    records, or once at least `min_bytes` characters are taken. Records whose field count is
    not `expected_fields` (when given) or that hold undecodable bytes become row errors.

    A record cut off by the end of the file inside a quoted field, or longer than
    `max_record_bytes`, becomes a row error too; reading then stops right after that record's
    first line, where the caller resumes, so that nothing after the line is swallowed.
    """
    csv.field_size_limit(sys.maxsize)
    text = decode_lossless(data)
    lines = _Lines(text, at_eof)
    reader = csv.reader(lines, delimiter=delimiter, quotechar='"', strict=False)
    batch = RecordsRead()
    # Most text decodes cleanly: one search of all of it spares one for each value.
    undecodable = check_decoding and SURROGATES.search(text) is not None
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
        broken = _broken_record(
            raw, line_number, cut_off=lines.exhausted, max_record_bytes=max_record_bytes
        )
        if broken is not None:
            error, first_line_chars = broken
            batch.errors.append(error)
            taken_chars, taken_lines = start_chars + first_line_chars, start_lines + 1
            break
        if undecodable and any(SURROGATES.search(value) for value in row):
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


def _broken_record(
    raw: str, line: int, *, cut_off: bool, max_record_bytes: int | None
) -> tuple[RowError, int] | None:
    """The row error for a record the reader cannot take, and the length of its first line.

    `cut_off`: the reader asked for more lines in the middle of this record and the file had
    none, which it only does inside a quoted field.
    """
    if cut_off:
        return unterminated_quote_error(line, raw), first_line_length(raw)
    if max_record_bytes is None or len(raw) <= max_record_bytes // 4:
        return None  # a character takes at most four bytes
    body = raw.rstrip("\r\n")
    if utf8_length(body) <= max_record_bytes:
        return None
    first = first_line_length(body)
    if first < len(body):  # it goes on past its first line: a quoted field runs on
        error = unterminated_quote_error(line, raw, limit=max_record_bytes)
    else:
        error = too_long_error(line, max_record_bytes, raw)
    return error, first_line_length(raw)


def first_line_length(text: str) -> int:
    """Characters up to and including the first line break (LF, CRLF or a lone CR), or all."""
    lf, cr = text.find("\n"), text.find("\r")
    if cr < 0 or 0 <= lf < cr:
        return len(text) if lf < 0 else lf + 1
    return cr + 2 if text.startswith("\n", cr + 1) else cr + 1


def line_end(data: bytes, *, at_eof: bool) -> int | None:
    """Just after the first line break in `data` (LF, CRLF or a lone CR); None if it holds
    none yet (a CR at its very end may be the first half of a CRLF)."""
    lf = data.find(b"\n")
    cr = data.find(b"\r", 0, len(data) if lf < 0 else lf)
    if cr < 0:
        return None if lf < 0 else lf + 1
    if cr + 1 < len(data):
        return cr + 2 if data[cr + 1] == 0x0A else cr + 1
    return cr + 1 if at_eof else None


def overlong_record_error(data: bytes, line: int, limit: int) -> RowError:
    """The error for the record at the start of `data` when it does not end within `limit`
    bytes: a record that goes on past a first line of at most `limit` bytes does so inside a
    quoted field; otherwise its first line alone is too long."""
    lf, cr = data.find(b"\n", 0, limit + 1), data.find(b"\r", 0, limit + 1)
    raw = decode_lossless(data[: 4 * RAW_CHARS])
    if lf >= 0 or cr >= 0:
        return unterminated_quote_error(line, raw, limit=limit)
    return too_long_error(line, limit, raw)
