"""Results in the formats data tools read: JSON, CSV, Parquet, Arrow IPC stream.

Imports nothing from the rest of the service (no HTTP, no database). `FORMATS` loads nothing
heavy; `convert` loads pyarrow on first use, so that reading the table (content negotiation
in the API process) does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from service.formats.registry import FORMATS, Format

if TYPE_CHECKING:
    from service.formats.conversion import convert

__all__ = ["FORMATS", "Format", "convert"]


def __getattr__(name: str) -> Any:
    if name == "convert":
        from service.formats.conversion import convert

        return convert
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
