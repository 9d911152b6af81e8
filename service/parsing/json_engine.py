"""JSON lines and JSON arrays: one pass that checks each record, keeps it as sent and
summarises its top-level keys."""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import aiofiles

from service.parsing.contract import ParseOptions, ParseResult
from service.parsing.futures import cancel_and_wait
from service.parsing.json_array import JsonArrayReader
from service.parsing.json_arrow import read_lines_fast
from service.parsing.json_values import JsonSummary, check_record
from service.parsing.progress import WRITE, ProgressReporter
from service.parsing.row_errors import ErrorLog, RowError
from service.parsing.source import TextSource

_JSON_WHITESPACE = b" \t\r\n"
_THREADS = min(max(os.cpu_count() or 2, 2), 4)  # blocks checked at once


@dataclass
class _Output:
    data: bytes = b""
    rows: int = 0
    errors: list[RowError] = field(default_factory=list)
    summary: JsonSummary = field(default_factory=JsonSummary)


async def parse_json_records(
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
    worker threads, and writes their results in file order."""
    summary = JsonSummary()
    array = JsonArrayReader() if format == "json" else None
    loop = asyncio.get_running_loop()
    rows = 0
    line = 1
    buffer = b""
    target = chunk_size
    checking: deque[asyncio.Future[_Output]] = deque()

    async def take_oldest() -> None:
        nonlocal rows
        output = await checking.popleft()
        await out.write(output.data)
        summary.merge(output.summary)
        rows += output.rows
        await errors.add(output.errors)
        await reporter.read_up_to(WRITE, text.bytes_done, rows)

    with ThreadPoolExecutor(_THREADS, thread_name_prefix="ingest-json") as checkers:
        async with aiofiles.open(result_path, "wb") as out:
            try:
                while True:
                    if len(buffer) < target and not text.at_eof:
                        buffer = await text.read_at_least(target, buffer)
                    if not buffer and text.at_eof and (array is None or array.finished):
                        break
                    if array is None:
                        end = buffer.rfind(b"\n", 0, chunk_size) + 1
                        if end == 0:
                            end = len(buffer) if text.at_eof else buffer.rfind(b"\n") + 1
                        if end == 0:
                            target = 2 * len(buffer)
                            continue
                        piece = buffer[:end]
                        checking.append(
                            loop.run_in_executor(checkers, _json_lines, piece, line, encoding)
                        )
                        consumed, lines = end, piece.count(b"\n")
                    else:
                        step = await asyncio.to_thread(
                            array.read, buffer, line, at_eof=text.at_eof, window=chunk_size
                        )
                        if step.consumed == 0 and not text.at_eof:
                            target = 2 * len(buffer)
                            continue
                        checking.append(
                            loop.run_in_executor(
                                checkers, _json_elements, step.elements, step.errors, encoding
                            )
                        )
                        consumed, lines = step.consumed, step.lines
                    target = chunk_size
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


def _json_lines(piece: bytes, first_line: int, encoding: str) -> _Output:
    output = _Output()
    summary = output.summary
    fast = read_lines_fast(piece, summary)
    if fast is not None:
        output.data, output.rows = fast, fast.count(b"\n")
        return output
    records = (
        (first_line + offset, record, record)
        for offset, line in enumerate(piece.split(b"\n"))
        if (record := line[:-1] if line.endswith(b"\r") else line).strip(_JSON_WHITESPACE)
    )
    _check_records(output, records, encoding)
    return output


def _json_elements(
    elements: list[tuple[int, bytes]], structure_errors: list[RowError], encoding: str
) -> _Output:
    output = _Output()
    summary = output.summary
    # Line breaks in an element are whitespace between tokens (JSON strings cannot hold
    # them raw), so blanking them keeps each record exactly as sent, on one line.
    texts = [element.replace(b"\r", b" ").replace(b"\n", b" ") for _, element in elements]
    fast = read_lines_fast(b"\n".join(texts) + b"\n", summary) if texts else None
    if fast is not None:
        output.data, output.rows = fast, len(texts)
    else:
        records = (
            (line, element, text) for (line, element), text in zip(elements, texts, strict=True)
        )
        _check_records(output, records, encoding)
    output.errors.extend(structure_errors)
    output.errors.sort(key=lambda error: error.line)
    return output


def _check_records(
    output: _Output, records: Iterable[tuple[int, bytes, bytes]], encoding: str
) -> None:
    """Checks each (line, record, text to keep) in turn: a bad record becomes a row error, a
    good one goes into the summary and its text, one per line, into `output.data`."""
    kept: list[bytes] = []
    for line, record, text in records:
        checked = check_record(record, line, encoding)
        if isinstance(checked, RowError):
            output.errors.append(checked)
            continue
        output.summary.add(checked)
        kept.append(text)
    kept.append(b"")
    output.data = b"\n".join(kept) if len(kept) > 1 else b""
    output.rows = len(kept) - 1
