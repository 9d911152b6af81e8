"""A job's output files: a fresh directory per attempt, written back while the parse runs,
made durable and renamed into place when whole (whole or absent)."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from service.storage import AttemptPaths, fsync_dir, fsync_file
from service.sync_many import sync_for_each

# Short, so that little is left to write when the parse ends: the final fsync of an 80 MB
# CSV's result (157 MB) held its job 0.38-0.51 s to succeeded with 0.5 s, 0.26-0.38 s with
# 0.1 s; the 1 GB CSV 5.1-5.4 s against 4.5-4.8 s.
WRITEBACK_INTERVAL_S = 0.1
# The output is written back once this much more of it was written since the last time:
# smaller outputs (those of the small jobs that run in batches) are left to the final fsync,
# since a batch of small jobs slowed past 0.1 s by a busy machine would otherwise sync each
# job's file on its own. Measured on the output, not the upload: a small gzip upload can
# expand to gigabytes.
WRITEBACK_MIN_BYTES = 1 << 20


def fresh_output_dir(paths: AttemptPaths) -> None:
    """Start this attempt from nothing: earlier attempts' files (and spills) are removed."""
    shutil.rmtree(paths.root, ignore_errors=True)
    paths.root.mkdir(parents=True)


def remove_partials(paths: AttemptPaths) -> None:
    for path in (paths.result_partial, paths.errors_partial):
        path.unlink(missing_ok=True)


def publish(paths: AttemptPaths, *, with_result: bool) -> None:
    """Make one attempt's output durable, then rename it into place: whole or absent (a
    failed job publishes its row errors only, `with_result=False`)."""
    error = publish_many([paths], with_result=with_result)[0]
    if error is not None:
        raise error


def fresh_output_dirs(attempts: Sequence[AttemptPaths]) -> list[OSError | None]:
    """`fresh_output_dir` for each attempt (one thread trip for a batch): None or its error."""
    errors: list[OSError | None] = []
    for paths in attempts:
        try:
            fresh_output_dir(paths)
        except OSError as exc:
            errors.append(exc)
        else:
            errors.append(None)
    return errors


def publish_many(
    attempts: Sequence[AttemptPaths], *, with_result: bool = True
) -> list[OSError | None]:
    """Publish a batch's outputs with the durable work shared: every file is made durable
    before any rename, then every directory (all at once where that is cheaper, see
    `sync_many`). Each job's output is still whole or absent; a job whose files fail gets its
    error back, the others are published. A parse without row errors wrote no errors file,
    and none is published (readers take it as empty)."""
    errors: list[OSError | None] = [None] * len(attempts)
    with_errors = [paths.errors_partial.exists() for paths in attempts]

    def files(n: int) -> list[Path]:
        paths = attempts[n]
        return ([paths.errors_partial] if with_errors[n] else []) + (
            [paths.result_partial] if with_result else []
        )

    def rename(n: int) -> None:
        paths = attempts[n]
        if with_errors[n]:
            paths.errors_partial.replace(paths.errors)
        if with_result:
            paths.result_partial.replace(paths.result)

    sync_for_each(errors, files, fsync_file)
    for n in range(len(attempts)):
        if errors[n] is None:
            try:
                rename(n)
            except OSError as exc:
                errors[n] = exc
    sync_for_each(errors, lambda n: [attempts[n].root], fsync_dir)
    _sync_parents(attempts, errors)
    return errors


def _sync_parents(attempts: Sequence[AttemptPaths], errors: list[OSError | None]) -> None:
    """fsync the directory holding the jobs' directories, made at the attempts' start: on
    a file system that does not commit a new directory's entry with its own fsync, the
    job's output would otherwise not be reachable after a power cut."""
    for parent in {paths.root.parent for paths in attempts}:
        try:
            fsync_dir(parent)
        except OSError as exc:
            for n, paths in enumerate(attempts):
                if errors[n] is None and paths.root.parent == parent:
                    errors[n] = exc


def count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as handle:
            return sum(1 for _ in handle)
    except FileNotFoundError:
        return 0


def datasync(path: Path) -> None:
    """Write the file's data to disk, then drop its pages that are now clean from the page
    cache (pages written since stay until the next call).

    On the 2-core benchmark VM, while its memory was not yet full of page cache, writing a
    big result into pages the cache kept cost seconds of system time: the 1 GB bench CSV
    (2.3 GB of NDJSON) took 5.8-7.2 s to parse, 4-5.4 s of it system time, against 4.2-4.8 s
    and 1.5-2.4 s with the pages dropped (alike once the cache had filled the memory). It
    also keeps one big result from pushing everything else out of the cache. A download of
    the result soon after reads it from disk instead of memory."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fdatasync(fd)
        if hasattr(os, "posix_fadvise"):  # not on macOS
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


async def write_back(path: Path) -> None:
    """Push the growing output to disk while the parse runs, so the final fsync is short
    and the written pages can leave the page cache (see `datasync`)."""
    synced = 0
    while True:
        await asyncio.sleep(WRITEBACK_INTERVAL_S)
        size = _size(path)
        if size - synced >= WRITEBACK_MIN_BYTES:
            await asyncio.to_thread(datasync, path)
            synced = size


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
