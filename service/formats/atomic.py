"""Writing a file so that it is whole or absent: a temporary name beside it, fsync, rename,
fsync of the directory."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_output(destination: Path) -> Iterator[Path]:
    """A temporary path beside `destination` to write; renamed over it when the block ends
    without an exception, removed otherwise. Each call has its own temporary name, so two
    processes converting at once cannot mix their bytes (the last rename wins, whole)."""
    handle, name = tempfile.mkstemp(
        dir=destination.parent, prefix=f".{destination.name}.", suffix=".tmp"
    )
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        _fsync_file(temporary)
        os.replace(temporary, destination)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_file(destination.parent)


def _fsync_file(path: Path) -> None:
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
