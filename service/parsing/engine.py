"""`parse_file`: opens the stored file, settles encoding and format, and runs the reader."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pyarrow as pa

from service.parsing.contract import ParseFailure, ParseOptions, ParseResult, ProgressCallback
from service.parsing.csv_engine import parse_csv
from service.parsing.decoding import Utf8Stream, choose_encoding
from service.parsing.detect import CONTENT_SAMPLE_BYTES, detect_format, looks_binary
from service.parsing.json_engine import parse_json_records
from service.parsing.progress import WRITE, ProgressReporter
from service.parsing.row_errors import ErrorLog
from service.parsing.source import DEFAULT_READ_SIZE, ByteSource, TextSource

# Measured: 2 MiB blocks parse as fast as larger ones and keep less in memory.
DEFAULT_CHUNK_SIZE = 2 * 2**20
_WHITESPACE_HEAD_LIMIT = 64 * 2**20
# How long jemalloc keeps freed pages before handing them back to the system.
_JEMALLOC_DECAY_MS = 100


async def parse_file(
    source: Path,
    result_path: Path,
    errors_path: Path,
    options: ParseOptions,
    on_progress: ProgressCallback,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> ParseResult:
    """Parses `source` into NDJSON records at `result_path` and row errors at `errors_path`.

    `chunk_size` is how many bytes are read and parsed at a time (tests shrink it to put
    block boundaries everywhere). Raises ParseFailure when the job as a whole fails.
    """
    _use_lean_memory_pool()
    try:
        return await _parse(source, result_path, errors_path, options, on_progress, chunk_size)
    except ParseFailure:
        result_path.unlink(missing_ok=True)
        raise
    except OSError as exc:
        result_path.unlink(missing_ok=True)
        raise ParseFailure("io_error", f"reading or writing failed: {exc}") from exc
    except BaseException:
        # Cancelled (the progress callback raised) or a bug: nothing half-written may stay.
        result_path.unlink(missing_ok=True)
        errors_path.unlink(missing_ok=True)
        raise


@functools.cache
def _use_lean_memory_pool() -> None:
    """Arrow's memory in this process from jemalloc, returning freed pages after 100 ms.

    Arrow's default pool (mimalloc) held 20-40 MiB more freed memory at the peak of a large CSV
    parse; jemalloc with a short decay does not, at no measurable CPU cost (a decay of 0 saves a
    little more but costs about 25% more CPU). Left alone when the operator chose a pool with
    ARROW_DEFAULT_MEMORY_POOL, or when Arrow was built without jemalloc.
    """
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    try:
        pool = pa.jemalloc_memory_pool()
        pa.jemalloc_set_decay_ms(_JEMALLOC_DECAY_MS)
    except NotImplementedError:
        return
    pa.set_memory_pool(pool)


async def _parse(
    source: Path,
    result_path: Path,
    errors_path: Path,
    options: ParseOptions,
    on_progress: ProgressCallback,
    chunk_size: int,
) -> ParseResult:
    read_size = min(max(chunk_size, 1), DEFAULT_READ_SIZE)
    raw = ByteSource(
        source, read_size=read_size, max_decompressed_bytes=options.max_decompressed_bytes
    )
    errors = ErrorLog(
        errors_path, max_errors=options.max_errors, max_stored=options.max_errors_stored
    )

    @contextlib.asynccontextmanager
    async def reopen() -> AsyncIterator[TextSource]:
        """The same content again from its start, for a CSV write pass."""
        again = ByteSource(
            source, read_size=read_size, max_decompressed_bytes=options.max_decompressed_bytes
        )
        async with again:
            text, _ = await _open_text(again, options)
            try:
                yield text
            finally:
                await text.aclose()

    async with raw, errors:
        reporter = ProgressReporter(on_progress, raw.bytes_total, rows_failed=lambda: errors.count)
        text, encoding = await _open_text(raw, options)
        try:
            format = await _detect(text, options)
            if format in ("csv", "tsv"):
                result = await parse_csv(
                    text,
                    reopen=reopen,
                    format=format,
                    options=options,
                    encoding=encoding,
                    errors=errors,
                    reporter=reporter,
                    result_path=result_path,
                    chunk_size=chunk_size,
                )
            else:
                result = await parse_json_records(
                    text,
                    format=format,
                    options=options,
                    encoding=encoding,
                    errors=errors,
                    reporter=reporter,
                    result_path=result_path,
                    chunk_size=chunk_size,
                )
        finally:
            await text.aclose()
        await reporter.update(
            WRITE, fraction=1.0, bytes_done=raw.bytes_total, rows_done=result.rows
        )
        return result


async def _detect(text: TextSource, options: ParseOptions) -> str:
    """Looks at the start of the content (then puts it back): empty, binary, which format."""
    head = await text.read_at_least(CONTENT_SAMPLE_BYTES)
    while not head.strip() and not text.at_eof and len(head) < _WHITESPACE_HEAD_LIMIT:
        head = await text.read_at_least(2 * len(head), head)
    if not head.strip() and text.at_eof:
        raise ParseFailure("empty_file", "the file is empty or holds only whitespace")
    if looks_binary(head):
        raise ParseFailure("unsupported_format", "the file is not text")
    text.unread(head)
    return detect_format(options.format, options.media_type, options.filename, head)


async def _open_text(raw: ByteSource, options: ParseOptions) -> tuple[TextSource, str]:
    """The BOM or the option decide the encoding; the bytes read for that are kept."""
    head = await raw.read()
    at_eof = not head
    while len(head) < 4 and not at_eof:
        more = await raw.read()
        at_eof = not more
        head += more
    encoding = choose_encoding(head, options.encoding)
    stream = Utf8Stream(encoding)
    converted = stream.convert(head, final=at_eof)
    return TextSource(raw, stream, converted, at_eof=at_eof), encoding.name
