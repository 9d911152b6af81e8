"""The formats a result can be downloaded in: one table for content negotiation."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Format:
    name: str  # the `?format=` value
    media_type: str  # Content-Type of the download; `Accept` is matched against it
    extension: str  # appended to the original file name in Content-Disposition
    converted: bool  # False: the NDJSON result itself, served as it is


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("ndjson", "application/x-ndjson", "ndjson", converted=False),
        Format("json", "application/json", "json", converted=True),
        Format("csv", "text/csv; charset=utf-8", "csv", converted=True),
        Format("parquet", "application/vnd.apache.parquet", "parquet", converted=True),
        Format("arrow", "application/vnd.apache.arrow.stream", "arrows", converted=True),
    )
}
