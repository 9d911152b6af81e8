"""Row-level errors: what one looks like, and the log that counts, stores and caps them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import orjson

from service.parsing.contract import ParseFailure
from service.parsing.decoding import displayable
from service.parsing.threads import ParseThreads

RAW_CHARS = 200
MESSAGE_CHARS = 300


@dataclass(frozen=True)
class RowError:
    line: int  # 1-based physical line where the record starts
    # field_count | decode | json | not_object | too_long | unterminated_quote | too_deep
    # | key_too_long
    type: str
    message: str
    raw: str

    @classmethod
    def of(cls, line: int, type: str, message: str, raw_text: str) -> RowError:
        # Only the start of the raw text is kept: cut before stripping, so a huge record is
        # never copied whole.
        raw = raw_text[: RAW_CHARS + 2].rstrip("\r\n")[:RAW_CHARS]
        return cls(line, type, displayable(message[:MESSAGE_CHARS]), displayable(raw))


def field_count_error(line: int, expected: int, got: int, raw_text: str) -> RowError:
    return RowError.of(line, "field_count", f"expected {expected} fields, got {got}", raw_text)


def decode_error(line: int, encoding: str, raw_text: str) -> RowError:
    return RowError.of(line, "decode", f"bytes that are not valid {encoding}", raw_text)


def too_long_error(line: int, limit: int, raw_text: str) -> RowError:
    return RowError.of(line, "too_long", f"the record is longer than {limit} bytes", raw_text)


def unterminated_quote_error(line: int, raw_text: str, *, limit: int | None = None) -> RowError:
    """A quoted field opened in the record that starts on `line` is not closed before the end
    of the file, or (`limit`) within that many bytes of the record's start."""
    where = "before the end of the file" if limit is None else f"within {limit} bytes"
    message = f"a quoted field that starts in this record is not closed {where}"
    return RowError.of(line, "unterminated_quote", message, raw_text)


def _write(file: BinaryIO, data: bytes) -> None:
    """Written through to the file, so that nothing is left buffered for the close."""
    file.write(data)
    file.flush()


class ErrorLog:
    """Writes errors in file order as NDJSON, at most `max_stored`, and counts them all.

    More than `max_errors` failed rows fail the job with `too_many_errors`. The file is
    created with the first error stored: a parse without row errors leaves none.
    """

    def __init__(self, path: Path, *, max_errors: int, max_stored: int) -> None:
        self._path = path
        self._max_errors = max_errors
        self._max_stored = max_stored
        self._file: BinaryIO | None = None
        self._writer = ParseThreads("ingest-errors", 1)
        self.count = 0

    async def __aenter__(self) -> ErrorLog:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Cancelled while a write ran in its thread: it finishes before the file closes.
        self._writer.__exit__(exc_type, exc, tb)
        if self._file is not None:
            self._file.close()
            self._file = None

    async def add(self, errors: list[RowError]) -> None:
        if not errors:
            return
        room = max(self._max_stored - self.count, 0)
        if room:
            if self._file is None:
                # Created and closed on the event loop: with nothing buffered each is a
                # single system call, cheaper than a hand-off to a thread.
                self._file = open(self._path, "wb")
            lines = b"".join(
                orjson.dumps(
                    {"line": e.line, "type": e.type, "message": e.message, "raw": e.raw},
                    option=orjson.OPT_APPEND_NEWLINE,
                )
                for e in errors[:room]
            )
            await self._writer.run(_write, self._file, lines)
        self.count += len(errors)
        if self.count > self._max_errors:
            raise ParseFailure(
                "too_many_errors",
                f"more than {self._max_errors} rows failed (first at line {errors[0].line})"
                if self.count == len(errors)
                else f"more than {self._max_errors} rows failed",
            )
