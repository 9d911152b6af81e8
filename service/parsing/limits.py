"""The limits every reader honours, so that no file can make a parse unbounded.

A record longer than `max_record_bytes` is a row error, and the readers never buffer more than
about that much while looking for the end of one. More than `max_columns` columns fail the job,
and so does a CSV header name longer than `max_column_name_bytes` (a JSON key that long makes
its record a row error). A JSON record nested deeper than `max_json_depth` is a row error,
decided from its bytes before any JSON parser sees it.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.parsing.contract import (
    DEFAULT_MAX_COLUMN_NAME_BYTES,
    DEFAULT_MAX_COLUMNS,
    DEFAULT_MAX_JSON_DEPTH,
    DEFAULT_MAX_RECORD_BYTES,
    MAX_JSON_DEPTH,
    ParseOptions,
)


@dataclass(frozen=True)
class Limits:
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    max_columns: int = DEFAULT_MAX_COLUMNS
    max_column_name_bytes: int = DEFAULT_MAX_COLUMN_NAME_BYTES
    max_json_depth: int = DEFAULT_MAX_JSON_DEPTH

    def __post_init__(self) -> None:
        for name in ("max_record_bytes", "max_columns", "max_column_name_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 1 <= self.max_json_depth <= MAX_JSON_DEPTH:
            raise ValueError(f"max_json_depth must be between 1 and {MAX_JSON_DEPTH}")

    @classmethod
    def of(cls, options: ParseOptions) -> Limits:
        return cls(
            max_record_bytes=options.max_record_bytes,
            max_columns=options.max_columns,
            max_column_name_bytes=options.max_column_name_bytes,
            max_json_depth=options.max_json_depth,
        )


DEFAULT_LIMITS = Limits()


def utf8_length(text: str) -> int:
    """Bytes of `text` in UTF-8 (a lone surrogate counts as the three bytes it would take)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))
