"""JSON lines and JSON arrays: one pass that checks each record, keeps it as sent and
summarises its top-level keys."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import aiofiles

from service.parsing.contract import ParseOptions, ParseResult
from service.parsing.json_array import JsonArrayReader
from service.parsing.json_arrow import read_lines_fast
from service.parsing.json_values import JsonSummary, check_record
from service.parsing.progress import WRITE, ProgressReporter
from service.parsing.row_errors import ErrorLog, RowError
from service.parsing.source import TextSource

_JSON_WHITESPACE = b" \t\r\n"


@dataclass
class _Output:
    data: bytes = b""
    rows: int = 0
    errors: list[RowError] = field(default_factory=list)


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
    summary = JsonSummary()
    array = JsonArrayReader() if format == "json" else None
    rows = 0
    line = 1
    buffer = b""
    target = chunk_size
    async with aiofiles.open(result_path, "wb") as out:
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
                output = await asyncio.to_thread(_json_lines, piece, line, encoding, summary)
                consumed, lines = end, piece.count(b"\n")
            else:
                step = array.read(buffer, line, at_eof=text.at_eof, window=chunk_size)
                if step.consumed == 0 and not text.at_eof:
                    target = 2 * len(buffer)
                    continue
                output = await asyncio.to_thread(
                    _json_elements, step.elements, step.errors, encoding, summary
                )
                consumed, lines = step.consumed, step.lines
            target = chunk_size
            buffer = buffer[consumed:]
            line += lines
            await out.write(output.data)
            rows += output.rows
            await errors.add(output.errors)
            reporter.rows_failed = errors.count
            await reporter.update(
                WRITE,
                fraction=text.bytes_done / max(text.bytes_total, 1),
                bytes_done=text.bytes_done,
                rows_done=rows,
            )
    return ParseResult(
        format=format,
        rows=rows,
        rows_failed=errors.count,
        encoding=encoding,
        dialect=None,
        columns=summary.columns(),
    )


def _json_lines(piece: bytes, first_line: int, encoding: str, summary: JsonSummary) -> _Output:
    fast = read_lines_fast(piece, summary)
    if fast is not None:
        return _Output(fast, fast.count(b"\n"))
    output = _Output()
    kept: list[bytes] = []
    for offset, line in enumerate(piece.split(b"\n")):
        record = line[:-1] if line.endswith(b"\r") else line
        if not record.strip(_JSON_WHITESPACE):
            continue
        checked = check_record(record, first_line + offset, encoding)
        if isinstance(checked, RowError):
            output.errors.append(checked)
            continue
        summary.add(checked)
        kept.append(record)
    kept.append(b"")
    output.data = b"\n".join(kept) if len(kept) > 1 else b""
    output.rows = len(kept) - 1
    return output


def _json_elements(
    elements: list[tuple[int, bytes]],
    structure_errors: list[RowError],
    encoding: str,
    summary: JsonSummary,
) -> _Output:
    output = _Output()
    kept: list[bytes] = []
    for line, element in elements:
        checked = check_record(element, line, encoding)
        if isinstance(checked, RowError):
            output.errors.append(checked)
            continue
        summary.add(checked)
        # Line breaks in an element are whitespace between tokens (JSON strings cannot hold
        # them raw), so blanking them keeps the record exactly as sent, on one line.
        kept.append(element.replace(b"\r", b" ").replace(b"\n", b" "))
    kept.append(b"")
    output.data = b"\n".join(kept) if len(kept) > 1 else b""
    output.rows = len(kept) - 1
    output.errors.extend(structure_errors)
    output.errors.sort(key=lambda error: error.line)
    return output
