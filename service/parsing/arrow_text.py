"""Looking at the raw bytes behind Arrow string arrays, for checks that need no per-value work.

A question like "does any value contain a quote?" is one scan of the concatenated values,
which is much cheaper than running a per-value kernel just to learn the answer is no.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc

_SEARCH_PIECE = 1 << 18  # bytes copied at a time: a small, cache-warm copy


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


def joined_values(strings: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Each chunk's values back to back as one string value (an array of one per chunk),
    zero-copy: a pattern can then run once over all of them instead of once per value."""
    chunks = strings.chunks if isinstance(strings, pa.ChunkedArray) else [strings]
    joined = []
    for chunk in chunks:
        _, offsets_buffer, data = chunk.buffers()
        if len(chunk) == 0 or data is None:
            continue
        offsets = memoryview(offsets_buffer).cast("i")
        span = array("i", (offsets[chunk.offset], offsets[chunk.offset + len(chunk)]))
        joined.append(pa.Array.from_buffers(pa.string(), 1, [None, pa.py_buffer(span), data]))
    return pa.concat_arrays(joined) if joined else pa.array([], pa.string())


def byte_array(data: pa.Buffer) -> pa.Array:
    """The bytes of `data` as an array of uint8, zero-copy, for Arrow's kernels to scan."""
    return pa.Array.from_buffers(pa.uint8(), len(data), [None, data])


def bytes_present(strings: pa.Array | pa.ChunkedArray, needles: Iterable[bytes]) -> set[bytes]:
    """Which of the single bytes `needles` occur anywhere in the values.

    The values are copied a piece at a time so that `in` can search them: it runs at memchr's
    speed, eight times a regex's byte-by-byte search over a memoryview, which costs more than
    the copy.
    """
    wanted = set(needles)
    found: set[bytes] = set()
    for view in value_bytes(strings):
        for start in range(0, len(view), _SEARCH_PIECE):
            piece = view[start : start + _SEARCH_PIECE].tobytes()
            found.update(needle for needle in wanted - found if needle in piece)
            if found == wanted:
                return found
    return found


def min_byte(strings: pa.Array | pa.ChunkedArray) -> int:
    """The smallest byte in the values (256 if there are none): below 0x20 means a control
    character. Arrow's `min` over the bytes runs far faster than a regex character class."""
    smallest = 256
    for view in value_bytes(strings):
        found = pc.min(byte_array(pa.py_buffer(view))).as_py()
        if found is not None:
            smallest = min(smallest, found)
    return smallest


def byte_range(strings: pa.Array | pa.ChunkedArray) -> tuple[int, int]:
    """The smallest and the largest byte in the values ((256, -1) if there are none)."""
    smallest, largest = 256, -1
    for view in value_bytes(strings):
        found = pc.min_max(byte_array(pa.py_buffer(view))).as_py()
        if found["min"] is not None:
            smallest, largest = min(smallest, found["min"]), max(largest, found["max"])
    return smallest, largest
