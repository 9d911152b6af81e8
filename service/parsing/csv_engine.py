"""CSV/TSV: a scan pass that reads, checks and types every value, then a write pass if needed.

Types come from all values, so no record is certain to be right before the last one is read.
The scan writes the output early in the types seen so far (right for most files) and spills
the parsed strings to an Arrow IPC file next to the result, keeping memory bounded; if the
final types differ, the write pass redoes the output from the spill where it went wrong.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from service.parsing.column_types import ColumnProfile
from service.parsing.contract import ParseFailure, ParseOptions, ParseResult
from service.parsing.csv_records import read_records
from service.parsing.csv_rewrite import rewrite
from service.parsing.csv_scan import Layout, scan
from service.parsing.decoding import displayable
from service.parsing.detect import SNIFF_SAMPLE_BYTES, sniff_delimiter
from service.parsing.early_output import EarlyOutput
from service.parsing.progress import ProgressReporter
from service.parsing.row_errors import ErrorLog
from service.parsing.source import TextSource

# Shares of the percent for the scan. While the output is written early, the scan is nearly
# all the work; once a write pass is certain, that pass takes about as long as the scan.
EARLY_SCAN_SHARE = 0.9
SCAN_SHARE = 0.5


async def parse_csv(
    text: TextSource,
    *,
    format: str,
    options: ParseOptions,
    encoding: str,
    errors: ErrorLog,
    reporter: ProgressReporter,
    result_path: Path,
    chunk_size: int,
) -> ParseResult:
    reporter.set_scan_share(EARLY_SCAN_SHARE)
    buffer = await text.read_at_least(max(SNIFF_SAMPLE_BYTES, chunk_size))
    delimiter = _delimiter(format, options, buffer, at_eof=text.at_eof)
    buffer, layout, consumed, lines = await _read_header(
        text, buffer, delimiter, header=options.header, encoding=encoding
    )
    spill_path = result_path.with_name(f".{result_path.name}.{uuid.uuid4().hex}.scan.arrow")
    profiles = [ColumnProfile(name) for name in layout.names]
    output = EarlyOutput()
    try:
        rows = await scan(
            text,
            buffer[consumed:],
            layout,
            profiles,
            spill_path=spill_path,
            result_path=result_path,
            output=output,
            errors=errors,
            reporter=reporter,
            line=lines + 1,
            chunk_size=chunk_size,
            on_abandon=SCAN_SHARE,
        )
        types = [profile.type for profile in profiles]
        start = output.resume(types)
        if start.row < rows:
            await rewrite(
                spill_path,
                result_path,
                layout.names,
                types,
                start=start,
                rows=rows,
                reporter=reporter,
                text=text,
            )
    finally:
        spill_path.unlink(missing_ok=True)
    return ParseResult(
        format=format,
        rows=rows,
        rows_failed=errors.count,
        encoding=encoding,
        dialect={"delimiter": delimiter, "quotechar": '"', "header": options.header},
        columns=[profile.summary() for profile in profiles],
    )


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


async def _read_header(
    text: TextSource, buffer: bytes, delimiter: str, *, header: bool, encoding: str
) -> tuple[bytes, Layout, int, int]:
    """The first record: the column names, or (header=false) just the field count."""
    while True:
        first = read_records(
            buffer,
            delimiter=delimiter,
            expected_fields=None,
            first_line=1,
            at_eof=text.at_eof,
            max_records=1,
            check_decoding=False,
        )
        if first.rows or text.at_eof:
            break
        buffer = await text.read_at_least(2 * len(buffer) + 1, buffer)
    if not first.rows:
        raise ParseFailure("empty_file", "the file holds no records")
    fields = first.rows[0]
    if header:
        names = unique_names([displayable(name) for name in fields])
        return buffer, Layout(delimiter, len(fields), names, encoding), first.consumed, first.lines
    names = [f"col{index}" for index in range(1, len(fields) + 1)]
    return buffer, Layout(delimiter, len(fields), names, encoding), 0, 0


def unique_names(raw: list[str]) -> list[str]:
    """Blank names become `colN` (N = position), repeats get `_2`, `_3`, ..."""
    names: list[str] = []
    seen: set[str] = set()
    for position, name in enumerate(raw, start=1):
        base = name if name.strip() else f"col{position}"
        candidate, suffix = base, 2
        while candidate in seen:
            candidate, suffix = f"{base}_{suffix}", suffix + 1
        seen.add(candidate)
        names.append(candidate)
    return names
