"""The parsing engine: a stored file in, typed NDJSON records, column summary and row errors out.

Nothing here imports the rest of the service (no HTTP, no database).
"""

from service.parsing.contract import (
    ParseFailure,
    ParseOptions,
    ParseProgress,
    ParseResult,
    ProgressCallback,
)
from service.parsing.engine import parse_file

__all__ = [
    "ParseFailure",
    "ParseOptions",
    "ParseProgress",
    "ParseResult",
    "ProgressCallback",
    "parse_file",
]
