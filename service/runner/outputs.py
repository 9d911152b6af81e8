"""A job's output files: a fresh directory per attempt, written back while the parse runs,
made durable and renamed into place when whole (whole or absent)."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from service.storage import AttemptPaths, fsync_dir, fsync_file

WRITEBACK_INTERVAL_S = 0.5


def fresh_output_dir(paths: AttemptPaths) -> None:
    """Start this attempt from nothing: earlier attempts' files (and spills) are removed."""
    shutil.rmtree(paths.root, ignore_errors=True)
    paths.root.mkdir(parents=True)


def remove_partials(paths: AttemptPaths) -> None:
    for path in (paths.result_partial, paths.errors_partial):
        path.unlink(missing_ok=True)


def publish(paths: AttemptPaths, *, with_result: bool) -> None:
    """Make the output durable, then rename it into place: whole or absent."""
    if not paths.errors_partial.exists():
        paths.errors_partial.touch()
    outputs = [(paths.errors_partial, paths.errors)]
    if with_result:
        outputs.append((paths.result_partial, paths.result))
    for partial, final in outputs:
        fsync_file(partial)
        partial.replace(final)
    fsync_dir(paths.root)


def count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as handle:
            return sum(1 for _ in handle)
    except FileNotFoundError:
        return 0


def datasync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


async def write_back(path: Path) -> None:
    """Push the growing output to disk while the parse runs, so the final fsync is short."""
    while True:
        await asyncio.sleep(WRITEBACK_INTERVAL_S)
        await asyncio.to_thread(datasync, path)
