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
IN_FLIGHT = WORKERS + 1

T = TypeVar("T")


def read_blocks(result: Path, block_bytes: int = BLOCK_BYTES) -> Iterator[memoryview]:
    """The file's bytes in blocks that end at a line break (a longer record makes a longer
    block); the last one gets a line break if the file lacks it. Each block is a view of the
    bytes one read returned: the partial record after its last line break is read again
    with the next block, rather than copied in front of it."""
    with open(result, "rb", buffering=0) as source:
        while chunk := source.read(block_bytes):
            end = chunk.rfind(b"\n") + 1
            while end == 0 and (more := source.read(block_bytes)):
                chunk += more
                end = chunk.rfind(b"\n") + 1
            if end == 0:  # the file ends without a line break
                if chunk.strip():
                    yield memoryview(chunk + b"\n")
                return
            if end < len(chunk):
                source.seek(end - len(chunk), os.SEEK_CUR)
            yield memoryview(chunk)[:end]


def map_in_order(work: Callable[[memoryview], T], blocks: Iterator[memoryview]) -> Iterator[T]:
    """`work` applied to each block in worker threads, results in block order."""
    with ThreadPoolExecutor(WORKERS, thread_name_prefix="ingest-formats") as pool:
        pending: deque[Future[T]] = deque()
        try:
            for block in blocks:
                pending.append(pool.submit(work, block))
                if len(pending) > IN_FLIGHT:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
