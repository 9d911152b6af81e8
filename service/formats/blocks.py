"""Reading the NDJSON result in blocks of whole records, and working on blocks side by side."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

BLOCK_BYTES = 2 << 20
# Arrow's readers and kernels release the GIL, so blocks are worked on in threads while the
# calling thread writes the output. One block more than there are threads is kept in flight,
# so that every thread has work while the oldest result is written; each holds its bytes and
# its result.
WORKERS = min(os.cpu_count() or 2, 4)

T = TypeVar("T")


def read_blocks(result: Path, block_bytes: int = BLOCK_BYTES) -> Iterator[bytes]:
    """The file's bytes in blocks that end at a line break (a longer record makes a longer
    block); the last one gets a line break if the file lacks it."""
    with open(result, "rb", buffering=0) as source:
        rest = b""
        while chunk := source.read(block_bytes):
            data = rest + chunk if rest else chunk
            end = data.rfind(b"\n") + 1
            if end:
                yield data[:end]
            rest = data[end:]
        if rest.strip():
            yield rest + b"\n"


def map_in_order(work: Callable[[bytes], T], blocks: Iterator[bytes]) -> Iterator[T]:
    """`work` applied to each block in worker threads, results in block order."""
    with ThreadPoolExecutor(WORKERS, thread_name_prefix="ingest-formats") as pool:
        pending: deque[Future[T]] = deque()
        try:
            for block in blocks:
                pending.append(pool.submit(work, block))
                if len(pending) > WORKERS:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
