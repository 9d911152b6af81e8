"""The types the job runner exchanges with the parsing engine (see CONTRACT.md)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

DEFAULT_MAX_RECORD_BYTES = 8 * 2**20
DEFAULT_MAX_COLUMNS = 10_000
DEFAULT_MAX_COLUMN_NAME_BYTES = 1024
DEFAULT_MAX_JSON_DEPTH = 1000
# orjson refuses deeper values, and deeper ones could reach what crashes pyarrow's reader.
MAX_JSON_DEPTH = 1000
# A failure's message ends up in the job resource, which stays small whatever the file holds.
MAX_MESSAGE_CHARS = 500


@dataclass(frozen=True)
class ParseOptions:
    format: str = "auto"  # auto | csv | tsv | jsonl | json
    delimiter: str | None = None  # one character, CSV only
    header: bool = True
    encoding: str = "auto"  # auto = BOM, then UTF-8
    max_errors: int = 1000  # more failed rows than this -> ParseFailure("too_many_errors")
    max_errors_stored: int = 10000  # row errors written to errors_path at most (all are counted)
    max_decompressed_bytes: int = 10 * 2**30
    media_type: str | None = None  # media type the upload came with (detection step 2)
    filename: str | None = None  # client file name (detection step 3, extension only)
    # Limits (see CONTRACT.md): a longer record is a row error (a header that long fails the
    # job); more columns fail the job; a longer CSV header name fails the job and a longer
    # JSON key is a row error; a record nested deeper is a row error.
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    max_columns: int = DEFAULT_MAX_COLUMNS
    max_column_name_bytes: int = DEFAULT_MAX_COLUMN_NAME_BYTES
    max_json_depth: int = DEFAULT_MAX_JSON_DEPTH  # at most MAX_JSON_DEPTH


@dataclass
class ParseProgress:
    phase: str  # "scan" | "write"
    bytes_total: int  # size of the stored file
    bytes_done: int  # bytes of the stored file consumed (compressed bytes for gzip)
    percent: float  # 0..100 over both phases, never decreasing
    rows_done: int  # never decreasing
    rows_failed: int


@dataclass
class ParseResult:
    format: str  # csv | tsv | jsonl | json
    rows: int  # records written to the result
    rows_failed: int  # all failed rows (stored or not)
    encoding: str  # e.g. "utf-8", "utf-16-le", "latin-1"
    dialect: dict[str, object] | None  # None for JSON formats
    columns: list[dict[str, object]]  # [{"name": "order_id", "type": "integer", "nulls": 0}]


class ParseFailure(Exception):
    """The whole job fails with `code`; row-level problems are row errors instead."""

    def __init__(self, code: str, message: str) -> None:
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[: MAX_MESSAGE_CHARS - 1] + "\u2026"
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


ProgressCallback = Callable[[ParseProgress], Awaitable[None]]
