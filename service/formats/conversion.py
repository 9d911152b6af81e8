"""The one entry point: a succeeded job's NDJSON result in another format, written durably."""

from __future__ import annotations

from pathlib import Path

from service.formats.atomic import atomic_output
from service.formats.columns import Plan
from service.formats.json_array import write_json_array
from service.formats.memory import use_lean_memory_pool
from service.formats.registry import FORMATS
from service.formats.tabular import write_arrow_stream, write_parquet
from service.formats.text_csv import write_csv


def convert(result: Path, columns: list[dict[str, object]], format: str, destination: Path) -> None:
    """Writes `result` (NDJSON, one record a line) in `format` to `destination`, whole or not
    at all: a temporary file beside it is fsync'd, renamed into place, and the directory
    fsync'd. `columns` is the job's `result.columns`. Synchronous and CPU-heavy: run it in a
    worker process or thread, never on an event loop.

    Raises ValueError for a format that is not converted (see FORMATS), OSError when reading
    or writing fails; values never make it fail (a column whose values do not fit its type
    is written as their exact text).
    """
    known = FORMATS.get(format)
    if known is None or not known.converted:
        raise ValueError(f"no conversion to {format!r}; converted formats: {_converted()}")
    use_lean_memory_pool()
    plan = Plan.of(columns)
    with atomic_output(destination) as temporary:
        if format == "json":
            write_json_array(result, temporary)
        elif format == "csv":
            write_csv(result, plan, temporary)
        elif format == "parquet":
            write_parquet(result, plan, temporary)
        else:
            write_arrow_stream(result, plan, temporary)


def _converted() -> str:
    return ", ".join(f.name for f in FORMATS.values() if f.converted)
