"""CSV/TSV: a scan pass that reads, checks and types every value, then a write pass.

Types come from all values, so no record can be written before the last one is read. The scan
keeps memory bounded by spilling the parsed string columns to an Arrow IPC file next to the
result; the write pass reads it back block by block and renders NDJSON in the final column
types. Both passes work on several blocks at once, one per core.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiofiles
import pyarrow as pa

from service.parsing.column_types import BlockCounts, ColumnProfile, count_block, merge_counts
from service.parsing.contract import ParseFailure, ParseOptions, ParseResult
from service.parsing.csv_arrow import internal_names, read_fast
from service.parsing.csv_framing import count_lines, safe_records_end
from service.parsing.csv_records import RecordsRead, read_records
from service.parsing.decoding import displayable
from service.parsing.detect import SNIFF_SAMPLE_BYTES, sniff_delimiter
from service.parsing.ndjson import render_records
from service.parsing.progress import SCAN, WRITE, ProgressReporter
from service.parsing.row_errors import ErrorLog, RowError
from service.parsing.source import TextSource

SCAN_SHARE = 0.5  # of the percent: scanning and writing take about as long as each other


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 2


# Blocks in flight at once, in each phase: one per core, and a few at most to bound memory.
_PARSE_THREADS = _RENDER_THREADS = min(max(_usable_cores(), 2), 4)


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
    lines: int  # from the record reader; for Arrow's blocks the scan counts them itself
    rows: int = 0
    errors: list[RowError] = field(default_factory=list)
    table: pa.Table | None = None
    counts: list[BlockCounts] = field(default_factory=list)


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
    """Reads every record once: row errors out, column profiles narrowed, strings spilled.

    Finding record boundaries is cheap and sequential, so it runs here; each block of whole
    records then knows its first line and is parsed on its own in `parsers`, blocks side by
    side. Their results are taken in file order: typed and spilled in `keeper` (overlapping
    the parsing), errors logged, progress reported.
    """
    schema = pa.schema([(name, pa.string()) for name in internal_names(layout.field_count)])
    loop = asyncio.get_running_loop()
    rows = 0
    target = chunk_size
    parsing: deque[asyncio.Future[_Step]] = deque()
    keeping: asyncio.Future[None] | None = None

    async def take_oldest() -> None:
        nonlocal rows, keeping
        step = await parsing.popleft()
        rows += step.rows
        if step.table is not None:
            merge_counts(profiles, step.counts)
            if keeping is not None:
                await keeping
            keeping = loop.run_in_executor(keeper, spill.write_table, step.table)
        await errors.add(step.errors)
        reporter.rows_failed = errors.count
        await reporter.update(
            SCAN,
            fraction=text.bytes_done / max(text.bytes_total, 1),
            bytes_done=text.bytes_done,
            rows_done=rows,
        )

    with (
        ThreadPoolExecutor(_PARSE_THREADS, thread_name_prefix="ingest-csv-parse") as parsers,
        ThreadPoolExecutor(1, thread_name_prefix="ingest-csv-keep") as keeper,
        pa.OSFile(str(spill_path), "wb") as sink,
        pa.ipc.new_stream(sink, schema) as spill,
    ):
        try:
            while True:
                if len(buffer) < target and not text.at_eof:
                    buffer = await text.read_at_least(target, buffer)
                if not buffer:
                    break
                end = safe_records_end(
                    buffer, layout.delimiter, at_eof=text.at_eof, limit=chunk_size
                )
                if end == 0 and len(buffer) > chunk_size:  # a record longer than a chunk
                    end = safe_records_end(buffer, layout.delimiter, at_eof=text.at_eof)
                if end > 0:
                    piece = memoryview(buffer)[:end]
                    parsing.append(
                        loop.run_in_executor(parsers, _parse_block, piece, layout, line, profiles)
                    )
                    line += count_lines(buffer, end)
                    consumed = end
                elif text.at_eof or len(buffer) >= chunk_size:
                    # No stretch of trustworthy quotes: the record reader finds the boundary.
                    step = await asyncio.to_thread(
                        _read_records, buffer, layout, line, text.at_eof, chunk_size, profiles
                    )
                    if step.consumed == 0:
                        target = max(target, 2 * len(buffer))  # a record longer than that
                        continue
                    parsing.append(_done(loop, step))
                    line += step.lines
                    consumed = step.consumed
                else:
                    continue
                target = chunk_size
                buffer = buffer[consumed:]
                while parsing and (len(parsing) > _PARSE_THREADS or parsing[0].done()):
                    await take_oldest()
            while parsing:
                await take_oldest()
            if keeping is not None:
                await keeping
        finally:
            unfinished: list[asyncio.Future[Any]] = list(parsing)
            if keeping is not None:
                unfinished.append(keeping)
            for future in unfinished:
                future.cancel()
            if unfinished:
                await asyncio.wait(unfinished)  # the spill file is closed only after them
    return rows


def _done(loop: asyncio.AbstractEventLoop, step: _Step) -> asyncio.Future[_Step]:
    future: asyncio.Future[_Step] = loop.create_future()
    future.set_result(step)
    return future


def _parse_block(
    piece: memoryview, layout: _Layout, line: int, profiles: list[ColumnProfile]
) -> _Step:
    """Whole records starting on `line`: Arrow if it takes them all, else record by record;
    then their values checked against the column types still possible."""
    table = read_fast(piece, delimiter=layout.delimiter, field_count=layout.field_count)
    if table is not None:
        step = _Step(len(piece), 0, table.num_rows, table=table)
    else:
        step = _table_step(_read_slowly(bytes(piece), layout, line, at_eof=True), layout)
    return _counted(step, profiles)


def _read_records(
    buffer: bytes,
    layout: _Layout,
    line: int,
    at_eof: bool,
    chunk_size: int,
    profiles: list[ColumnProfile],
) -> _Step:
    batch = _read_slowly(buffer, layout, line, at_eof=at_eof, min_bytes=chunk_size)
    return _counted(_table_step(batch, layout), profiles)


def _table_step(batch: RecordsRead, layout: _Layout) -> _Step:
    table = None
    if batch.rows:
        columns = [pa.array(values, pa.string()) for values in zip(*batch.rows, strict=True)]
        table = pa.table(columns, names=internal_names(layout.field_count))
    return _Step(batch.consumed, batch.lines, len(batch.rows), batch.errors, table)


def _counted(step: _Step, profiles: list[ColumnProfile]) -> _Step:
    if step.table is not None:
        # A snapshot of the candidates: another block may narrow them meanwhile, harmlessly.
        step.counts = count_block(step.table.columns, [set(p.candidates) for p in profiles])
    return step


def _read_slowly(
    data: bytes, layout: _Layout, line: int, *, at_eof: bool, min_bytes: int | None = None
) -> RecordsRead:
    return read_records(
        data,
        delimiter=layout.delimiter,
        expected_fields=layout.field_count,
        first_line=line,
        at_eof=at_eof,
        encoding=layout.encoding,
        min_bytes=min_bytes,
    )


async def _write(
    spill_path: Path,
    result_path: Path,
    layout: _Layout,
    profiles: list[ColumnProfile],
    rows: int,
    reporter: ProgressReporter,
    text: TextSource,
) -> None:
    """Renders the spilled blocks on all cores, writing them in order as they complete."""
    types = [profile.type for profile in profiles]
    loop = asyncio.get_running_loop()
    written = 0
    rendering: deque[asyncio.Future[tuple[memoryview, int]]] = deque()
    with (
        ThreadPoolExecutor(
            max_workers=_RENDER_THREADS, thread_name_prefix="ingest-csv-render"
        ) as pool,
        pa.OSFile(str(spill_path), "rb") as source,
        pa.ipc.open_stream(source) as spilled,
    ):
        async with aiofiles.open(result_path, "wb") as out:
            try:
                while True:
                    # One more than the threads, so none waits while a result is written.
                    while len(rendering) <= _RENDER_THREADS:
                        batch = _next_batch(spilled)
                        if batch is None:
                            break
                        rendering.append(
                            loop.run_in_executor(pool, _render, batch, layout.names, types)
                        )
                    if not rendering:
                        break
                    data, count = await rendering.popleft()
                    await out.write(data)
                    written += count
                    await reporter.update(
                        WRITE,
                        fraction=written / max(rows, 1),
                        bytes_done=text.bytes_done,
                        rows_done=written,
                    )
            finally:
                for future in rendering:
                    future.cancel()
                if rendering:
                    await asyncio.wait(rendering)


def _next_batch(spilled: pa.ipc.RecordBatchStreamReader) -> pa.RecordBatch | None:
    try:
        return spilled.read_next_batch()
    except StopIteration:
        return None


def _render(batch: pa.RecordBatch, names: list[str], types: list[str]) -> tuple[memoryview, int]:
    return render_records(batch.columns, names, types), batch.num_rows
