"""Sizes and durations of a full run and of a quick run."""

from __future__ import annotations

from dataclasses import dataclass

MB = 1_000_000
GB = 1_000_000_000


@dataclass(frozen=True)
class Profile:
    name: str
    upload_sizes: tuple[int, ...]
    upload_rounds: tuple[int, ...]  # per size: rounds of one upload to each app, best kept
    csv_rows: int
    csv_large_bytes: int
    jsonl_rows: int
    loop_time_cap_s: float  # the plain-Python baseline stops after this long and extrapolates
    poll_seconds: float
    poll_warmup_s: float
    poll_connections: int
    busy_jobs: int  # large jobs submitted so that two keep parsing while polling is measured
    small_jobs: int
    small_clients: int
    small_wait_cap_s: float
    scaling_sizes: tuple[int, ...]
    ingest_timeout_s: float


FULL = Profile(
    name="full",
    upload_sizes=(100 * MB, 1 * GB),
    upload_rounds=(3, 2),
    csv_rows=1_000_000,
    csv_large_bytes=1 * GB,
    jsonl_rows=1_000_000,
    loop_time_cap_s=20.0,
    poll_seconds=10.0,
    poll_warmup_s=0.5,
    poll_connections=32,
    busy_jobs=2,
    small_jobs=1_000,
    small_clients=16,
    small_wait_cap_s=150.0,
    scaling_sizes=(1 * MB, 10 * MB, 100 * MB, 1 * GB),
    ingest_timeout_s=300.0,
)

QUICK = Profile(
    name="quick",
    upload_sizes=(10 * MB, 100 * MB),
    upload_rounds=(3, 2),
    csv_rows=100_000,
    csv_large_bytes=100 * MB,
    jsonl_rows=100_000,
    loop_time_cap_s=8.0,
    poll_seconds=2.0,
    poll_warmup_s=0.3,
    poll_connections=32,
    busy_jobs=4,
    small_jobs=500,
    small_clients=16,
    small_wait_cap_s=45.0,
    scaling_sizes=(1 * MB, 10 * MB, 100 * MB),
    ingest_timeout_s=90.0,
)


def human_bytes(size: int) -> str:
    """`100 MB`, `1 GB`, `1 KB`: decimal units, as used throughout the report."""
    for unit, scale in (("GB", GB), ("MB", MB), ("KB", 1_000)):
        if size >= scale:
            value = size / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{size} B"
