"""Looking at the raw bytes behind Arrow string arrays, for checks that need no per-value work.

A question like "does any value contain a quote?" is one scan of the concatenated values,
which is much cheaper than running a per-value kernel just to learn the answer is no.
"""

from __future__ import annotations

import re

import pyarrow as pa


def value_bytes(strings: pa.Array | pa.ChunkedArray) -> list[memoryview]:
    """The concatenated UTF-8 bytes of each chunk of a (non-large) string array, zero-copy."""
    chunks = strings.chunks if isinstance(strings, pa.ChunkedArray) else [strings]
    views = []
    for chunk in chunks:
        _, offsets_buffer, data = chunk.buffers()
        if len(chunk) == 0 or data is None:
            continue
        offsets = memoryview(offsets_buffer).cast("i")
        views.append(memoryview(data)[offsets[chunk.offset] : offsets[chunk.offset + len(chunk)]])
    return views


def any_value_contains(strings: pa.Array | pa.ChunkedArray, pattern: re.Pattern[bytes]) -> bool:
    """Whether `pattern` occurs anywhere in the values (it must not span line-free values)."""
    return any(pattern.search(view) is not None for view in value_bytes(strings))
