"""Finding where one JSON value ends, in pieces and in constant memory, without a Python loop
over its tokens.

The array reader uses it for an element whose end a quick parse cannot show (one nested too
deep for orjson, say), and to skip an element longer than the longest record allowed as it
streams past.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

from service.parsing.arrow_text import byte_array

_STRING_REST = re.compile(rb'(?:[^"\\]++|\\.)*+', re.DOTALL)  # up to a closing quote
_SCALAR_END = re.compile(rb"[,\]\s]")
# Bytes looked at in one go: the arrays built for them take about twelve times as much.
_SLICE = 1 << 20
_CONTAINER, _STRING, _SCALAR = "container", "string", "scalar"


class ValueEnd:
    """Fed the text of one JSON value from its first byte on, says where the value ends."""

    def __init__(self, first_byte: int) -> None:
        if first_byte in b"{[":
            self._kind = _CONTAINER
        elif first_byte == ord('"'):
            self._kind = _STRING
        else:
            self._kind = _SCALAR
        self._started = False
        self._depth = 0
        self._in_string = False
        self._carry = b""  # a backslash whose escaped byte comes with the next piece

    def feed(self, data: bytes) -> int | None:
        """Just after the value's last byte in `data`, or None if it goes on past `data`."""
        shift = len(self._carry)
        data, self._carry = self._carry + data, b""
        if self._kind == _SCALAR:
            found = _SCALAR_END.search(data)
            end = None if found is None else found.start()
        elif self._kind == _STRING:
            end = self._string_end(data)
        else:
            end = self._container_end(data)
        return None if end is None else end - shift

    def _string_end(self, data: bytes) -> int | None:
        start = 0 if self._started else 1  # past the opening quote
        self._started = True
        stop = _STRING_REST.match(data, start).end()  # type: ignore[union-attr]
        if stop < len(data) and data[stop] == ord('"'):
            return stop + 1
        if stop < len(data):  # a backslash at the very end
            self._carry = data[stop:]
        return None

    def _container_end(self, data: bytes) -> int | None:
        position = 0
        while position < len(data):
            stop = min(position + _SLICE, len(data))
            piece = data[position:stop]
            # An odd run of backslashes at the end: the last one escapes the next byte.
            held = (len(piece) - len(piece.rstrip(b"\\"))) % 2
            if held:
                piece = piece[:-1]
            end = self._end_in(piece)
            if end is not None:
                return position + end
            position = stop - held
            if held and stop == len(data):
                self._carry = data[-1:]
                return None
        return None

    def _end_in(self, piece: bytes) -> int | None:
        """Brackets outside strings as +1/-1 steps, and the first place their running sum
        (from the depth so far) comes back to 0, all with Arrow's kernels. Escaped quotes
        and backslashes are blanked first, so every quote left opens or closes a string."""
        if not piece:
            return None
        blanked = piece.replace(b"\\\\", b"__").replace(b'\\"', b"__")
        data = byte_array(pa.py_buffer(blanked))
        quotes = pc.cumulative_sum(pc.cast(pc.equal(data, ord('"')), pa.int32()))
        parity = pc.bit_wise_and(pc.add(quotes, int(self._in_string)), 1)
        opening = pc.or_(pc.equal(data, ord("{")), pc.equal(data, ord("[")))
        closing = pc.or_(pc.equal(data, ord("}")), pc.equal(data, ord("]")))
        steps = pc.subtract(pc.cast(opening, pa.int32()), pc.cast(closing, pa.int32()))
        steps = pc.if_else(pc.equal(parity, 0), steps, 0)
        depths = pc.add(pc.cumulative_sum(steps), self._depth)
        found = pc.index(depths, 0).as_py()
        if found >= 0:
            return int(found) + 1
        self._depth = int(depths[-1].as_py())
        self._in_string = bool(parity[-1].as_py())
        return None
