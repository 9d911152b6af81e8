"""How deeply JSON text nests, told from its bytes before any JSON parser sees it.

pyarrow's JSON reader recurses natively and crashes the whole process on a value nested some
20,000 deep; orjson stops at 1,024 and the standard library at Python's recursion limit. So a
record nested deeper than the limit is turned away on its bytes alone.
"""

from __future__ import annotations

import re
from functools import lru_cache

import pyarrow as pa
import pyarrow.compute as pc

_OPENING_AS_BRACE = bytes.maketrans(b"[", b"{")
_ALL_BUT_OPENING_AND_LF = bytes(sorted(set(range(256)) - set(b"[{\n")))
_BRACKET_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 and -1 as int8
_ALL_BUT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[{]}")))
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)


def shallow_lines(piece: bytes, max_depth: int) -> int | None:
    """The line feeds in a block of JSON lines if no line nests deeper than `max_depth`,
    else None.

    A line nests at most as deep as it has opening brackets. One translate keeps only those
    (as `{`) and the line feeds, a small string for ordinary data, where a run of more than
    `max_depth` braces is the only way a line can be too deep. Lines with such a run (a long
    array of arrays, say) are measured exactly.
    """
    skeleton = piece.translate(_OPENING_AS_BRACE, _ALL_BUT_OPENING_AND_LF)
    line_feeds = skeleton.count(b"\n")
    run = _braces(max_depth + 1)
    found = skeleton.find(run)
    if found < 0:
        return line_feeds
    lines = piece.split(b"\n")
    while found >= 0:
        index = skeleton.count(b"\n", 0, found)
        if nesting_depth(lines[index]) > max_depth:
            return None
        next_line = skeleton.find(b"\n", found)
        found = -1 if next_line < 0 else skeleton.find(run, next_line)
    return line_feeds


@lru_cache(maxsize=4)
def _braces(count: int) -> bytes:
    return b"{" * count


def too_deep(record: bytes, max_depth: int) -> bool:
    """Whether the JSON text `record` nests deeper than `max_depth`; a look at its brackets
    only when it has more opening ones than that."""
    if record.count(b"{") + record.count(b"[") <= max_depth:
        return False
    return nesting_depth(record) > max_depth


def nesting_depth(text: bytes) -> int:
    """The deepest nesting of brackets outside strings (for broken JSON, as deep as a parser
    would go before it gives up): strings removed by a regex, the brackets left turned into
    +1/-1 steps, and the deepest running sum found by Arrow's kernels."""
    structure = _STRING.sub(b"", text)
    quote = structure.find(b'"')
    if quote >= 0:  # a string left open: all after it is inside that string
        structure = structure[:quote]
    steps = structure.translate(_BRACKET_STEPS, _ALL_BUT_BRACKETS)
    if not steps:
        return 0
    deltas = pa.Array.from_buffers(pa.int8(), len(steps), [None, pa.py_buffer(steps)])
    deepest = pc.max(pc.cumulative_sum(pc.cast(deltas, pa.int32()))).as_py()
    return max(int(deepest), 0)
