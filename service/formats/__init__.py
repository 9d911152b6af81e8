"""Results in the formats data tools read: JSON, CSV, Parquet, Arrow IPC stream.

Imports nothing from the rest of the service (no HTTP, no database).
"""

from service.formats.convert import convert
from service.formats.registry import FORMATS, Format

__all__ = ["FORMATS", "Format", "convert"]
