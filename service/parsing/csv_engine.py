"""CSV/TSV: a scan pass that reads, checks and types every value, then a write pass.

The scan keeps memory bounded by spilling the parsed string columns to an Arrow IPC file next
to the result; the write pass reads it back batch by batch and renders NDJSON in the final
column types. Blocks are parsed in a worker thread while the next one is being read.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiofiles
import pyarrow as pa

from service.parsing.column_types import ColumnProfile, profile_batch
from service.parsing.contract import ParseFailure, ParseOptions, ParseResult
from service.parsing.csv_arrow import internal_names, read_fast
from service.parsing.csv_framing import count_lines, safe_records_end
from service.parsing.csv_records import RecordBatch, read_records
from service.parsing.decoding import displayable
from service.parsing.detect import SNIFF_SAMPLE_BYTES, sniff_delimiter
from service.parsing.ndjson import render_records
from service.parsing.progress import SCAN, WRITE, ProgressReporter
from service.parsing.row_errors import ErrorLog, RowError
from service.parsing.source import TextSource

SCAN_SHARE = 0.5  # of the percent: scanning and writing take about as long as each other


@dataclass
class _Layout:
    delimiter: str
    field_count: int
    names: list[str]
    encoding: str


@dataclass
class _Step:
    """One block of the scan: how much input it took and what came out."""

    consumed: int
    lines: int
    rows: int = 0
    errors: list[RowError] = field(default_factory=list)


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
    reporter.set_scan_share(SCAN_SHARE)
    buffer = await text.read_at_least(max(SNIFF_SAMPLE_BYTES, chunk_size))
    delimiter = _delimiter(format, options, buffer, at_eof=text.at_eof)
    buffer, layout, consumed, lines = await _read_header(
        text, buffer, delimiter, header=options.header, encoding=encoding
    )
    spill_path = result_path.with_name(f".{result_path.name}.{uuid.uuid4().hex}.scan.arrow")
    profiles = [ColumnProfile(name) for name in layout.names]
    try:
        rows = await _scan(
            text, buffer[consumed:], layout, profiles, spill_path, errors, reporter, lines + 1,
            chunk_size,
        )  # fmt: skip
        await _write(spill_path, result_path, layout, profiles, rows, reporter, text)
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
        return options.delimiter
    if format == "tsv":
        return "\t"
    return sniff_delimiter(sample, at_eof=at_eof)


async def _read_header(
    text: TextSource, buffer: bytes, delimiter: str, *, header: bool, encoding: str
) -> tuple[bytes, _Layout, int, int]:
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
        return buffer, _Layout(delimiter, len(fields), names, encoding), first.consumed, first.lines
    names = [f"col{index}" for index in range(1, len(fields) + 1)]
    return buffer, _Layout(delimiter, len(fields), names, encoding), 0, 0


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


async def _scan(
    text: TextSource,
    buffer: bytes,
    layout: _Layout,
    profiles: list[ColumnProfile],
    spill_path: Path,
    errors: ErrorLog,
    reporter: ProgressReporter,
    line: int,
    chunk_size: int,
) -> int:
    schema = pa.schema([(name, pa.string()) for name in internal_names(layout.field_count)])
    rows = 0
    target = chunk_size
    with pa.OSFile(str(spill_path), "wb") as sink, pa.ipc.new_stream(sink, schema) as spill:
        while True:
            if len(buffer) < target and not text.at_eof:
                buffer = await text.read_at_least(target, buffer)
            if not buffer:
                break
            step = await asyncio.to_thread(
                _scan_step, buffer, text.at_eof, layout, line, chunk_size, profiles, spill
            )
            if step is None:
                if text.at_eof:
                    raise AssertionError("the CSV scan made no progress at the end of the file")
                target = max(target, 2 * len(buffer))
                continue
            target = chunk_size
            buffer = buffer[step.consumed :]
            line += step.lines
            rows += step.rows
            await errors.add(step.errors)
            reporter.rows_failed = errors.count
            await reporter.update(
                SCAN,
                fraction=text.bytes_done / max(text.bytes_total, 1),
                bytes_done=text.bytes_done,
                rows_done=rows,
            )
    return rows


def _scan_step(
    buffer: bytes,
    at_eof: bool,
    layout: _Layout,
    line: int,
    chunk_size: int,
    profiles: list[ColumnProfile],
    spill: pa.ipc.RecordBatchStreamWriter,
) -> _Step | None:
    """Parses whole records from the start of `buffer`; None when it needs more input."""
    end = 0
    if len(buffer) > chunk_size:
        end = safe_records_end(buffer[:chunk_size], layout.delimiter, at_eof=False)
    if end == 0:  # a small buffer, or a record longer than a chunk
        end = safe_records_end(buffer, layout.delimiter, at_eof=at_eof)
    if end > 0:
        piece = buffer[:end]
        table = read_fast(piece, delimiter=layout.delimiter, field_count=layout.field_count)
        if table is not None:
            _keep(table.columns, profiles, spill)
            return _Step(consumed=end, lines=count_lines(piece), rows=table.num_rows)
        batch = _read_slowly(piece, layout, line, at_eof=True)
    else:
        if not at_eof and len(buffer) < chunk_size:
            return None
        batch = _read_slowly(buffer, layout, line, at_eof=at_eof, min_bytes=chunk_size)
        if batch.consumed == 0:
            return None
    columns = [pa.array(values, pa.string()) for values in zip(*batch.rows, strict=True)]
    if columns:
        _keep(columns, profiles, spill)
    return _Step(batch.consumed, batch.lines, len(batch.rows), batch.errors)


def _read_slowly(
    data: bytes, layout: _Layout, line: int, *, at_eof: bool, min_bytes: int | None = None
) -> RecordBatch:
    return read_records(
        data,
        delimiter=layout.delimiter,
        expected_fields=layout.field_count,
        first_line=line,
        at_eof=at_eof,
        encoding=layout.encoding,
        min_bytes=min_bytes,
    )


def _keep(
    columns: list[pa.Array] | list[pa.ChunkedArray],
    profiles: list[ColumnProfile],
    spill: pa.ipc.RecordBatchStreamWriter,
) -> None:
    table = pa.table(columns, names=internal_names(len(columns)))
    for batch in table.to_batches():
        profile_batch(profiles, batch.columns)
        spill.write_batch(batch)


async def _write(
    spill_path: Path,
    result_path: Path,
    layout: _Layout,
    profiles: list[ColumnProfile],
    rows: int,
    reporter: ProgressReporter,
    text: TextSource,
) -> None:
    types = [profile.type for profile in profiles]
    written = 0
    with pa.OSFile(str(spill_path), "rb") as source, pa.ipc.open_stream(source) as spilled:
        async with aiofiles.open(result_path, "wb") as out:
            while True:
                rendered = await asyncio.to_thread(_render_next, spilled, layout.names, types)
                if rendered is None:
                    break
                data, count = rendered
                await out.write(data)
                written += count
                await reporter.update(
                    WRITE,
                    fraction=written / max(rows, 1),
                    bytes_done=text.bytes_done,
                    rows_done=written,
                )


def _render_next(
    spilled: pa.ipc.RecordBatchStreamReader, names: list[str], types: list[str]
) -> tuple[bytes, int] | None:
    try:
        batch = spilled.read_next_batch()
    except StopIteration:
        return None
    return render_records(batch.columns, names, types), batch.num_rows
