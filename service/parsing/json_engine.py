"""JSON lines and JSON arrays: one pass that checks each record, keeps it as sent and
summarises its top-level keys."""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow as pa

from service.parsing.byte_counts import LF, count_byte
from service.parsing.cancelling import cancel_and_wait
from service.parsing.contract import ParseOptions, ParseResult
from service.parsing.decoding import decode_lossless
from service.parsing.json_array import JsonArrayReader
from service.parsing.json_arrow import learn_from_records, merge_schemas, read_lines
from service.parsing.json_values import JsonSummary, check_record
from service.parsing.limits import Limits
from service.parsing.progress import WRITE, ProgressReporter
from service.parsing.row_errors import ErrorLog, RowError, too_long_error
from service.parsing.source import TextSource
from service.parsing.threads import ON_THE_LOOP_BYTES, ParseThreads, run_here

_JSON_WHITESPACE = b" \t\r\n"
_THREADS = min(max(os.cpu_count() or 2, 2), 4)  # blocks checked at once


@dataclass
class _Output:
    data: bytes = b""
    rows: int = 0
    errors: list[RowError] = field(default_factory=list)
    summary: JsonSummary = field(default_factory=JsonSummary)
    schema: pa.Schema | None = None  # what Arrow may read the next blocks against
    # JSON lines: the errors' lines count from 1 at the block's first line, and the block
    # spans this many line feeds. Counting them is left to the worker threads, so the
    # event loop never scans a block; results are numbered as they are taken, in order.
    relative: bool = False
    line_feeds: int = 0


async def parse_json_records(  # noqa: C901 - one read-frame-dispatch loop for JSON lines and arrays, as in csv_scan.scan
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
    """Cuts the content into blocks of whole records here, checks blocks side by side in
    worker threads, and writes their results in file order.

    No block is longer than the longest record allowed, so a longer line or element is found
    while cutting: it becomes a row error and is skipped as it streams past.
    """
    limits = Limits.of(options)
    summary = JsonSummary(max_keys=limits.max_columns)
    schema: pa.Schema | None = None  # learnt from the blocks taken so far, in file order
    array = JsonArrayReader(max_record_bytes=limits.max_record_bytes) if format == "json" else None
    loop = asyncio.get_running_loop()
    rows = 0
    line = 1  # of the buffer's start (JSON arrays)
    next_line = 1  # of the oldest block being checked (JSON lines)
    buffer = b""
    longest = limits.max_record_bytes
    window = min(chunk_size, longest)
    target = window
    skipping = False  # inside a line too long to keep, up to its line feed
    checking: deque[asyncio.Future[_Output]] = deque()

    async def take_oldest() -> None:
        nonlocal rows, schema, next_line
        output = await checking.popleft()
        if len(output.data) > ON_THE_LOOP_BYTES:
            await writer.run(out.write, output.data)
        elif output.data:
            out.write(output.data)
        summary.merge(output.summary)
        schema = merge_schemas(schema, output.schema)
        rows += output.rows
        if output.relative:
            if output.errors:
                shift = next_line - 1
                output.errors = [replace(e, line=e.line + shift) for e in output.errors]
            next_line += output.line_feeds
        await errors.add(output.errors)
        await reporter.read_up_to(WRITE, text.bytes_done, rows)

    def check(piece: bytes) -> asyncio.Future[_Output]:
        if len(piece) <= ON_THE_LOOP_BYTES:
            return run_here(_json_lines, piece, encoding, limits, schema)
        return checkers.run(_json_lines, piece, encoding, limits, schema)

    # The result is opened and closed on the event loop (one system call each) and written
    # in a thread: aiofiles' open and close were two more hand-offs to a thread per parse.
    # Opened first, so closed last: after a write running when the parse stops has finished.
    with (
        pa.OSFile(str(result_path), "wb") as out,
        ParseThreads("ingest-json", _THREADS) as checkers,
        ParseThreads("ingest-json-write", 1) as writer,
    ):
        try:
            while True:
                if len(buffer) < target and not text.at_eof:
                    buffer = await text.read_at_least(target, buffer)
                if skipping:
                    end = buffer.find(b"\n") + 1
                    if end == 0:
                        buffer, target = b"", window
                        await reporter.read_up_to(WRITE, text.bytes_done, rows)
                        if text.at_eof:
                            break
                        continue
                    buffer, skipping = buffer[end:], False
                    checking.append(_done(loop, _Output(relative=True, line_feeds=1)))
                if not buffer and text.at_eof and (array is None or array.finished):
                    break
                if array is None:
                    end = buffer.rfind(b"\n", 0, window) + 1
                    if end == 0:  # the first line is longer than a block
                        end = buffer.find(b"\n", window) + 1
                        if end == 0 and text.at_eof:
                            end = len(buffer)
                    if end == 0 and len(buffer) <= longest:
                        target = max(window, min(2 * len(buffer), longest + 1))
                        continue
                    if end == 0 or _line_length(buffer, end) > longest:
                        # One line: no line feed before `end` - 1 (see above).
                        error = too_long_error(1, longest, decode_lossless(buffer[:1024]))
                        ends_line = buffer[end - 1 : end] == b"\n"
                        skipped = _Output(errors=[error], relative=True, line_feeds=int(ends_line))
                        checking.append(_done(loop, skipped))
                        if end == 0:  # the rest of it is dropped as it comes
                            buffer, skipping, target = b"", True, window
                            continue
                    else:
                        checking.append(check(buffer[:end]))
                    consumed, lines = end, 0
                else:
                    step = await asyncio.to_thread(
                        array.read, buffer, line, at_eof=text.at_eof, window=window
                    )
                    if step.consumed == 0 and not text.at_eof:
                        target = max(window, min(2 * len(buffer), 2 * longest + 2))
                        continue
                    checking.append(
                        checkers.run(
                            _json_elements,
                            step.elements,
                            step.errors,
                            encoding,
                            limits,
                            schema,
                        )
                    )
                    consumed, lines = step.consumed, step.lines
                target = window
                buffer = buffer[consumed:]
                line += lines
                while checking and (len(checking) > _THREADS or checking[0].done()):
                    await take_oldest()
            while checking:
                await take_oldest()
        finally:
            await cancel_and_wait(checking)
    return ParseResult(
        format=format,
        rows=rows,
        rows_failed=errors.count,
        encoding=encoding,
        dialect=None,
        columns=summary.columns(),
    )


def _line_length(buffer: bytes, end: int) -> int:
    """Bytes of the line ending at `end` (just after its line feed, or the end of the file),
    without its line break."""
    length = end - 1 if buffer[end - 1 : end] == b"\n" else end
    return length - 1 if buffer[length - 1 : length] == b"\r" else length


def _done(loop: asyncio.AbstractEventLoop, output: _Output) -> asyncio.Future[_Output]:
    future: asyncio.Future[_Output] = loop.create_future()
    future.set_result(output)
    return future


def _json_lines(piece: bytes, encoding: str, limits: Limits, schema: pa.Schema | None) -> _Output:
    """A block of whole lines; its errors' lines count from 1 at its first line."""
    line_feeds = count_byte(piece, LF)
    output = _Output(
        summary=JsonSummary(max_keys=limits.max_columns), relative=True, line_feeds=line_feeds
    )
    fast = read_lines(piece, output.summary, limits=limits, schema=schema, line_feeds=line_feeds)
    if fast is not None:
        output.data, output.rows, output.schema = fast.data, fast.rows, fast.schema
        return output
    records = (
        (1 + offset, record, record)
        for offset, line in enumerate(piece.split(b"\n"))
        if (record := line[:-1] if line.endswith(b"\r") else line).strip(_JSON_WHITESPACE)
    )
    _check_records(output, records, encoding, limits)
    return output


def _json_elements(
    elements: list[tuple[int, bytes]],
    structure_errors: list[RowError],
    encoding: str,
    limits: Limits,
    schema: pa.Schema | None,
) -> _Output:
    output = _Output(summary=JsonSummary(max_keys=limits.max_columns))
    # Line breaks in an element are whitespace between tokens (JSON strings cannot hold
    # them raw), so blanking them keeps each record exactly as sent, on one line.
    texts = [element.replace(b"\r", b" ").replace(b"\n", b" ") for _, element in elements]
    fast = (
        read_lines(b"\n".join(texts) + b"\n", output.summary, limits=limits, schema=schema)
        if texts
        else None
    )
    if fast is not None:
        output.data, output.rows, output.schema = fast.data, len(texts), fast.schema
    else:
        records = (
            (line, element, text) for (line, element), text in zip(elements, texts, strict=True)
        )
        _check_records(output, records, encoding, limits)
    output.errors.extend(structure_errors)
    output.errors.sort(key=lambda error: error.line)
    return output


def _check_records(
    output: _Output, records: Iterable[tuple[int, bytes, bytes]], encoding: str, limits: Limits
) -> None:
    """Checks each (line, record, text to keep) in turn: a bad record becomes a row error, a
    good one goes into the summary and its text, one per line, into `output.data`. A sample
    of the good ones teaches Arrow the schema of the blocks to come."""
    kept: list[bytes] = []
    for line, record, text in records:
        checked = check_record(record, line, encoding, limits)
        if isinstance(checked, RowError):
            output.errors.append(checked)
            continue
        output.summary.add(checked)
        kept.append(text)
    output.schema = learn_from_records(kept)
    kept.append(b"")
    output.data = b"\n".join(kept) if len(kept) > 1 else b""
    output.rows = len(kept) - 1
