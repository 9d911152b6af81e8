"""Arrow's memory pool for conversions: freed memory goes back to the system promptly."""

from __future__ import annotations

import functools
import os

import pyarrow as pa

_JEMALLOC_DECAY_MS = 100


@functools.cache
def use_lean_memory_pool() -> None:
    """jemalloc with a short decay, process-wide, unless the operator chose a pool with
    ARROW_DEFAULT_MEMORY_POOL or Arrow was built without jemalloc. Arrow's default
    (mimalloc) keeps freed pages, which shows as tens of MB of extra peak RSS per conversion.
    """
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    try:
        pool = pa.jemalloc_memory_pool()
        pa.jemalloc_set_decay_ms(_JEMALLOC_DECAY_MS)
    except NotImplementedError:
        return
    pa.set_memory_pool(pool)
