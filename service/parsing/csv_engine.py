"""CSV/TSV: a scan pass that reads, checks, types and writes every value, then a write pass
if needed.

Types come from all values, so no record is certain to be right before the last one is read.
The scan writes the output early in the types seen so far (right for most files); if the final
types differ, the write pass reads the content again from its start and writes it all in the
final types. Nothing is kept between the passes but the types.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

from service.parsing.column_types import ColumnProfile, pinned
from service.parsing.contract import ParseFailure, ParseOptions, ParseResult
from service.parsing.csv_framing import count_lines, runs_on
from service.parsing.csv_records import RecordsRead, line_end, overlong_record_error, read_records
from service.parsing.csv_scan import Layout, scan
from service.parsing.decoding import SURROGATES, decode_lossless, displayable
from service.parsing.detect import SNIFF_SAMPLE_BYTES, sniff_delimiter
from service.parsing.early_output import EarlyOutput
from service.parsing.limits import Limits, utf8_length
from service.parsing.progress import SCAN, WRITE, ProgressReporter
from service.parsing.row_errors import RAW_CHARS, ErrorLog, RowError, decode_error
from service.parsing.source import TextSource

# Shares of the percent for the scan. While the output is written early, the scan is nearly
# all the work; once a write pass is certain, that pass takes about as long as the scan.
EARLY_SCAN_SHARE = 0.9
SCAN_SHARE = 0.5
# The header is looked for in this much of the first buffer before all of it.
HEADER_FIRST_BYTES = 64 * 1024


async def parse_csv(
    text: TextSource,
    *,
    reopen: Callable[[], AbstractAsyncContextManager[TextSource]],
    format: str,
    options: ParseOptions,
    encoding: str,
    errors: ErrorLog,
    reporter: ProgressReporter,
    result_path: Path,
    chunk_size: int,
) -> ParseResult:
    """`reopen` gives the same content again from its start, for the write pass."""
    reporter.set_scan_share(EARLY_SCAN_SHARE)
    buffer = await text.read_at_least(max(SNIFF_SAMPLE_BYTES, chunk_size))
    delimiter = _delimiter(format, options, buffer, at_eof=text.at_eof)
    limits = Limits.of(options)
    head = await _read_header(
        text, buffer, delimiter, header=options.header, encoding=encoding, limits=limits
    )
    layout = head.layout
    if head.undecodable is not None:
        await errors.add([head.undecodable])
    profiles = [ColumnProfile(name) for name in layout.names]
    output = EarlyOutput()
    rows = await scan(
        text,
        head.buffer[head.consumed :],
        layout,
        profiles,
        result_path=result_path,
        output=output,
        errors=errors,
        reporter=reporter,
        phase=SCAN,
        line=head.lines + 1,
        chunk_size=chunk_size,
        on_abandon=SCAN_SHARE,
    )
    types = [profile.type for profile in profiles]
    if output.resume(types).row < rows:
        async with reopen() as again:
            await _write_pass(
                again, layout, types, options, limits, reporter, result_path, chunk_size, rows
            )
    return ParseResult(
        format=format,
        rows=rows,
        rows_failed=errors.count,
        encoding=encoding,
        dialect={"delimiter": delimiter, "quotechar": '"', "header": options.header},
        columns=[profile.summary() for profile in profiles],
    )


async def _write_pass(
    text: TextSource,
    layout: Layout,
    types: list[str],
    options: ParseOptions,
    limits: Limits,
    reporter: ProgressReporter,
    result_path: Path,
    chunk_size: int,
    rows: int,
) -> None:
    """The output again from the first record, in the final types.

    The same scan over the same content, with each column allowed its final type only: every
    block then renders in the final types and is written. Its row errors were logged by the
    first pass, so they are dropped here.
    """
    buffer = await text.read_at_least(max(SNIFF_SAMPLE_BYTES, chunk_size))
    head = await _read_header(
        text,
        buffer,
        layout.delimiter,
        header=options.header,
        encoding=layout.encoding,
        limits=limits,
    )
    output = EarlyOutput()
    written = await scan(
        text,
        head.buffer[head.consumed :],
        layout,
        [pinned(name, kind) for name, kind in zip(layout.names, types, strict=True)],
        result_path=result_path,
        output=output,
        errors=None,
        reporter=reporter,
        phase=WRITE,
        line=head.lines + 1,
        chunk_size=chunk_size,
        on_abandon=SCAN_SHARE,
    )
    if written != rows or output.resume(types).row < rows:
        raise RuntimeError("the write pass did not read the content as the scan did")


def _delimiter(format: str, options: ParseOptions, sample: bytes, *, at_eof: bool) -> str:
    if options.delimiter:
        if len(options.delimiter) != 1 or options.delimiter in '"\r\n':
            raise ParseFailure(
                "unsupported_format", f"{options.delimiter!r} cannot be a CSV delimiter"
            )
        return options.delimiter
    if format == "tsv":
        return "\t"
    return sniff_delimiter(sample, at_eof=at_eof)


async def _read_header(  # noqa: C901 - each header failure (too long, left open, too wide, a name too long) is a branch of its own
    text: TextSource, buffer: bytes, delimiter: str, *, header: bool, encoding: str, limits: Limits
) -> _Header:
    """The first record: the column names, or (header=false) just the field count.

    Blank lines before it are dropped (and counted). It must end within the longest record
    allowed, and name no more columns than allowed, or the job fails.
    """
    blank_lines = 0
    while True:
        lead = len(buffer) - len(buffer.lstrip(b"\r\n"))
        if lead == len(buffer) and buffer.endswith(b"\r") and not text.at_eof:
            lead -= 1  # a CR whose LF may come next: the pair is one line
        if lead:
            blank_lines += count_lines(buffer, lead)
            buffer = buffer[lead:]
        _refuse_too_many_fields(buffer, delimiter, limits, header=header)
        first = RecordsRead()
        if len(buffer) > HEADER_FIRST_BYTES:
            # The reader decodes all it is given, and the buffer holds megabytes: a first
            # record that ends within its start is read from that start alone.
            first = _first_record(
                buffer[:HEADER_FIRST_BYTES], delimiter, 1 + blank_lines, False, limits
            )
        if not (first.rows or first.errors):
            examined = min(len(buffer), limits.max_record_bytes + 1)
            # Not one whole record yet (it runs on past what is examined): no need to parse.
            if text.at_eof or not runs_on(buffer, delimiter, examined):
                first = _first_record(buffer, delimiter, 1 + blank_lines, text.at_eof, limits)
        if first.rows or first.errors or text.at_eof:
            break
        if len(buffer) > limits.max_record_bytes:
            first.errors.append(
                overlong_record_error(buffer, 1 + blank_lines, limits.max_record_bytes)
            )
            break
        buffer = await text.read_at_least(
            min(2 * len(buffer) + 1, limits.max_record_bytes + 1), buffer
        )
    if first.errors:
        raise _header_failure(first.errors[0], header=header)
    if not first.rows:
        raise ParseFailure("empty_file", "the file holds no records")
    fields = first.rows[0]
    if len(fields) > limits.max_columns:
        raise _too_many_columns(len(fields), limits.max_columns, header=header)
    header_line = 1 + blank_lines
    if not header:
        names = [f"col{index}" for index in range(1, len(fields) + 1)]
        layout = Layout(delimiter, len(fields), names, encoding, limits.max_record_bytes)
        return _Header(buffer, layout, 0, blank_lines, None)
    for position, name in enumerate(fields, start=1):
        if utf8_length(name) > limits.max_column_name_bytes:
            raise ParseFailure(
                "column_name_too_long",
                f"the name of column {position} is longer than "
                f"{limits.max_column_name_bytes} bytes",
            )
    undecodable = None
    if any(SURROGATES.search(name) for name in fields):
        raw = decode_lossless(buffer[: min(first.consumed, 4 * RAW_CHARS)])
        undecodable = decode_error(header_line, encoding, raw)
    names = unique_names([displayable(name) for name in fields])
    layout = Layout(delimiter, len(fields), names, encoding, limits.max_record_bytes)
    return _Header(buffer, layout, first.consumed, blank_lines + first.lines, undecodable)


def _first_record(
    data: bytes, delimiter: str, line: int, at_eof: bool, limits: Limits
) -> RecordsRead:
    return read_records(
        data,
        delimiter=delimiter,
        expected_fields=None,
        first_line=line,
        at_eof=at_eof,
        max_records=1,
        check_decoding=False,
        max_record_bytes=limits.max_record_bytes,
    )


def _refuse_too_many_fields(data: bytes, delimiter: str, limits: Limits, *, header: bool) -> None:
    """Fails at once when the first line is whole, within the longest record allowed and
    without quotes, and has more fields than allowed: a long line of delimiters would
    otherwise be parsed into millions of fields first."""
    cut = line_end(data, at_eof=True)
    if cut is None or cut > limits.max_record_bytes + 2:
        return  # not whole yet, or too long: the header is then refused for its length
    first = data[:cut]
    if b'"' in first:
        return  # quoted delimiters do not separate fields: the record reader counts them
    fields = first.count(delimiter.encode("utf-8")) + 1
    if fields > limits.max_columns:
        raise _too_many_columns(fields, limits.max_columns, header=header)


def _too_many_columns(fields: int, limit: int, *, header: bool) -> ParseFailure:
    what = "header" if header else "first record"
    return ParseFailure(
        "too_many_columns", f"the {what} has {fields} fields; at most {limit} columns are allowed"
    )


@dataclass
class _Header:
    buffer: bytes  # the content from the header on (blank lines before it dropped)
    layout: Layout
    consumed: int  # bytes of `buffer` the header takes (0 with header=false)
    lines: int  # physical lines before the first data record's line
    undecodable: RowError | None  # a `decode` error for a header with undecodable bytes


def _header_failure(error: RowError, *, header: bool) -> ParseFailure:
    what = "the header" if header else "the first record (which sets the columns)"
    if error.type == "too_long":
        return ParseFailure("header_too_long", f"{what} is longer than allowed: {error.message}")
    return ParseFailure("header_unterminated_quote", f"{what}: {error.message}")


def unique_names(raw: list[str]) -> list[str]:
    """Blank names become `colN` (N = position), repeats get `_2`, `_3`, ...

    Each base name remembers the next suffix to try. Names only ever join `seen`, so every
    suffix below that one is still taken: the result is the same as trying from `_2` each
    time, in linear time.
    """
    names: list[str] = []
    seen: set[str] = set()
    next_suffix: dict[str, int] = {}
    for position, name in enumerate(raw, start=1):
        base = name if name.strip() else f"col{position}"
        candidate = base
        if candidate in seen:
            suffix = next_suffix.get(base, 2)
            candidate = f"{base}_{suffix}"
            while candidate in seen:
                suffix += 1
                candidate = f"{base}_{suffix}"
            next_suffix[base] = suffix + 1
        seen.add(candidate)
        names.append(candidate)
    return names
