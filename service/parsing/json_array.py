"""An incremental reader for one top-level JSON array: elements come out one by one, so a
huge array is never held whole."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum

import orjson

from service.parsing.contract import DEFAULT_MAX_RECORD_BYTES, ParseFailure
from service.parsing.decoding import decode_lossless
from service.parsing.json_scan import ValueEnd
from service.parsing.row_errors import RowError, too_long_error

_WHITESPACE = re.compile(rb"[ \t\r\n]*+")
# Where an object or array element may end: a closing bracket before `,` or `]`.
_CANDIDATE_END = re.compile(rb"[}\]][ \t\r\n]*+(?=[,\]])")
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_SCALAR = re.compile(rb"[^,\]\s]++")
_CANDIDATE_TRIES = 8
_OBJECT_SEPARATOR = re.compile(rb"}[ \t\r\n]*+,[ \t\r\n]*+{")


class _State(Enum):
    START = "expect ["  # nothing read yet
    FIRST = "expect value or ]"  # after `[`
    VALUE = "expect value"  # after `,`
    AFTER = "expect , or ]"  # after a value
    DONE = "after ]"
    BROKEN = "unreadable"  # a structural error: nothing after it can be trusted
    SKIPPING = "in an element too long to keep"


@dataclass
class ArrayStep:
    elements: list[tuple[int, bytes]] = field(default_factory=list)  # (line, element text)
    errors: list[RowError] = field(default_factory=list)
    consumed: int = 0
    lines: int = 0


class JsonArrayReader:
    """Feed it the content from the start; each call takes what it can from the buffer.

    An element longer than `max_record_bytes` is a row error; it is skipped as it streams
    past, so the caller never needs to hold more than about that much.
    """

    def __init__(self, *, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> None:
        self._state = _State.START
        self._longest = max_record_bytes
        self._skipping: ValueEnd | None = None

    @property
    def finished(self) -> bool:
        return self._state in (_State.DONE, _State.BROKEN)

    def read(  # noqa: C901 - a state machine over the array's tokens; one branch per state
        self, buffer: bytes, first_line: int, *, at_eof: bool, window: int | None = None
    ) -> ArrayStep:
        """Reads elements from `buffer`, stopping once past `window` bytes."""
        step = ArrayStep()
        position = 0
        counted_to, line = 0, first_line
        windowed = False
        if self._state is _State.SKIPPING:
            position = self._skip(buffer, 0)
        while self._state is not _State.BROKEN and self._state is not _State.SKIPPING:
            if window is not None and position >= window and step.elements:
                windowed = True
                break
            position = _WHITESPACE.match(buffer, position).end()  # type: ignore[union-attr]
            if position == len(buffer):
                break
            line += buffer.count(b"\n", counted_to, position)
            counted_to = position
            char = buffer[position : position + 1]
            if self._state is _State.START:
                if char != b"[":
                    raise ParseFailure("unsupported_format", "JSON: expected a top-level array")
                self._state, position = _State.FIRST, position + 1
            elif self._state is _State.AFTER or self._state is _State.DONE:
                if self._state is _State.AFTER and char in (b",", b"]"):
                    self._state = _State.VALUE if char == b"," else _State.DONE
                    position += 1
                    continue
                step.errors.append(_structure_error(line, self._state, buffer, position))
                self._state = _State.BROKEN
            elif char == b"]" and self._state is _State.FIRST:
                self._state, position = _State.DONE, position + 1
            else:
                limit = len(buffer) if window is None else max(window, position + 1)
                block = _object_block(buffer, position, limit, line)
                if block is not None:
                    step.elements.extend(block.elements)
                    line, counted_to = block.last_line, block.last_start
                    self._state, position = _State.AFTER, block.end
                    continue
                end = _element_end(buffer, position)
                if end is None and len(buffer) - position <= self._longest:
                    break
                if end is not None and end - position <= self._longest:
                    step.elements.append((line, buffer[position:end]))
                    self._state, position = _State.AFTER, end
                    continue
                raw = decode_lossless(buffer[position : position + 1024])
                step.errors.append(too_long_error(line, self._longest, raw))
                if end is not None:
                    self._state, position = _State.AFTER, end
                    continue
                # Not ended within the longest record allowed: dropped as it streams past.
                self._skipping = ValueEnd(buffer[position])
                self._state = _State.SKIPPING
                position = self._skip(buffer, position)
                if self._state is _State.SKIPPING:
                    break
        if self._state is _State.SKIPPING:
            line += buffer.count(b"\n", counted_to, position)
            counted_to = position
        if at_eof and not self.finished and not windowed:
            line += buffer.count(b"\n", counted_to, position)
            counted_to = position
            step.errors.append(
                RowError.of(line, "json", "the JSON array is cut off before its `]`", "")
            )
            self._state = _State.BROKEN
        if self._state is _State.BROKEN:
            position = len(buffer)
        step.consumed = position
        step.lines = line - first_line + buffer.count(b"\n", counted_to, position)
        return step

    def _skip(self, buffer: bytes, start: int) -> int:
        """Feeds the element being skipped; where reading goes on (the end of `buffer` if
        the element goes on past it)."""
        assert self._skipping is not None
        end = self._skipping.feed(buffer[start:])
        if end is None:
            return len(buffer)
        self._skipping, self._state = None, _State.AFTER
        return start + end


@dataclass
class _Block:
    elements: list[tuple[int, bytes]]
    end: int  # just after the last element
    last_start: int  # where the last element starts
    last_line: int  # and its line


def _object_block(buffer: bytes, start: int, limit: int, line: int) -> _Block | None:
    """Many object elements at once, when one orjson call can vouch for their boundaries.

    Every `}, {` between `start` and `limit` is a candidate boundary. If the stretch up to
    the last one parses as an array of exactly that many objects, each top-level comma is one
    of the candidates, and there are as many commas as candidates: so all are boundaries.
    """
    separators = list(_OBJECT_SEPARATOR.finditer(buffer, start, limit))
    if not separators:
        return None
    end = separators[-1].start() + 1
    try:
        values = orjson.loads(b"[" + buffer[start:end] + b"]")
    except orjson.JSONDecodeError:
        return None
    if len(values) != len(separators) or not all(type(value) is dict for value in values):
        return None
    elements = []
    element_start = start
    for separator in separators:
        elements.append((line, buffer[element_start : separator.start() + 1]))
        last_start, last_line = element_start, line
        element_start = separator.end() - 1
        line += buffer.count(b"\n", last_start, element_start)
    return _Block(elements, end, last_start, last_line)


def _element_end(buffer: bytes, start: int) -> int | None:
    """Where the element starting at `start` ends, or None if the buffer ends first."""
    first = buffer[start]
    if first == ord('"'):
        match = _STRING.match(buffer, start)
        return None if match is None else match.end()
    if first not in b"{[":
        match = _SCALAR.match(buffer, start)
        if match is None or match.end() == len(buffer):
            return None
        return match.end()
    # Fast path: the first candidate end that parses is the element's end, because a value
    # that parses is complete and a complete value cannot continue.
    candidate = _CANDIDATE_END.search(buffer, start)
    tries = 0
    while candidate is not None and tries < _CANDIDATE_TRIES:
        end = candidate.start() + 1
        try:
            orjson.loads(buffer[start:end])
            return end
        except orjson.JSONDecodeError:
            candidate = _CANDIDATE_END.search(buffer, candidate.end())
            tries += 1
    length = ValueEnd(first).feed(buffer[start:])
    return None if length is None else start + length


def _structure_error(line: int, state: _State, buffer: bytes, position: int) -> RowError:
    found = buffer[position : position + 40].decode("utf-8", "replace")
    where = "after the array" if state is _State.DONE else "between elements"
    return RowError.of(line, "json", f"unexpected {found[:1]!r} {where}", found)
