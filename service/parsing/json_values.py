"""JSON values: strict loading, and the per-key summary that becomes `result.columns`."""

from __future__ import annotations

import functools
import json
import re
import sys
from dataclasses import dataclass

import orjson

from service.parsing.contract import MAX_JSON_DEPTH, ParseFailure
from service.parsing.decoding import decode_lossless, displayable
from service.parsing.json_depth import too_deep
from service.parsing.limits import DEFAULT_LIMITS, Limits, utf8_length
from service.parsing.row_errors import RowError, decode_error, too_long_error
from service.parsing.type_rules import BOOLEAN, INTEGER, NULL, NUMBER, STRING

OBJECT = "object"
ARRAY = "array"
MIXED = "mixed"

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# orjson reads an integer beyond 64 bits as a float; only a run of 19 digits can be one.
_LONG_DIGITS = re.compile(rb"[0-9]{19}")


class NotJson(ValueError):
    pass


def _reject_constant(name: str) -> object:
    raise NotJson(f"{name} is not JSON")


def load_json(data: bytes) -> object:
    """One JSON value. orjson first; the standard library only for what orjson refuses but
    JSON allows (numbers beyond a double, lone surrogate escapes)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as fast_error:
        try:
            return _load_exactly(data)
        except (ValueError, RecursionError):
            raise NotJson(str(fast_error)) from None


def _load_exactly(data: bytes) -> object:
    """The standard library's reading: integers of any size kept exact."""
    _allow_nesting_in_the_standard_library()
    return json.loads(data.decode("utf-8"), parse_constant=_reject_constant)


@functools.cache
def _allow_nesting_in_the_standard_library() -> None:
    """Python's json recurses once per level, counted against the recursion limit (1,000 by
    default, less the frames already on the stack), which would refuse records that are
    within the depth allowed. Raised once, never lowered."""
    needed = MAX_JSON_DEPTH + 1000
    if sys.getrecursionlimit() < needed:
        sys.setrecursionlimit(needed)


def kind_of(value: object) -> str:
    if value is None:
        return NULL
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int):
        return INTEGER
    if isinstance(value, float):
        return NUMBER
    if isinstance(value, str):
        return STRING
    if isinstance(value, dict):
        return OBJECT
    return ARRAY


def merge_kinds(old: str, new: str) -> str:
    if old == new or new == NULL:
        return old
    if old == NULL:
        return new
    if {old, new} == {INTEGER, NUMBER}:
        return NUMBER
    return MIXED


@dataclass
class _KeyStats:
    kind: str = NULL
    present: int = 0
    nulls: int = 0
    # An integer beyond signed 64 bits was seen: a key of numbers is then summarised as
    # `string`, as CSV types such a column.
    beyond_int64: bool = False


class JsonSummary:
    """Each top-level key in first-seen order, with its type and how many records lack it
    or hold null there.

    With `max_keys`, one key more fails the job with `too_many_columns` as soon as it is
    seen.
    """

    def __init__(self, *, max_keys: int | None = None) -> None:
        self.records = 0
        self._keys: dict[str, _KeyStats] = {}
        self._max_keys = max_keys

    def __len__(self) -> int:
        return len(self._keys)

    def _new_key(self, key: str) -> _KeyStats:
        if self._max_keys is not None and len(self._keys) >= self._max_keys:
            raise ParseFailure(
                "too_many_columns",
                f"the records hold more than {self._max_keys} distinct top-level keys",
            )
        stats = self._keys[key] = _KeyStats()
        return stats

    def add(self, record: dict[str, object]) -> None:
        self.records += 1
        keys = self._keys
        for key, value in record.items():
            stats = keys.get(key)
            if stats is None:
                stats = self._new_key(key)
            stats.present += 1
            if value is None:
                stats.nulls += 1
            else:
                stats.kind = merge_kinds(stats.kind, kind_of(value))
                if type(value) is int and not INT64_MIN <= value <= INT64_MAX:
                    stats.beyond_int64 = True

    def add_column(
        self, key: str, kind: str, present: int, nulls: int, *, beyond_int64: bool = False
    ) -> None:
        """Merges what a vectorised reader found for one key in a block of records."""
        stats = self._keys.get(key)
        if stats is None:
            stats = self._new_key(key)
        stats.present += present
        stats.nulls += nulls
        stats.kind = merge_kinds(stats.kind, kind)
        stats.beyond_int64 = stats.beyond_int64 or beyond_int64

    def merge(self, later: JsonSummary) -> None:
        """Adds what a summary of the records after these found."""
        self.records += later.records
        for key, stats in later._keys.items():
            self.add_column(
                key, stats.kind, stats.present, stats.nulls, beyond_int64=stats.beyond_int64
            )

    def columns(self) -> list[dict[str, object]]:
        return [
            {
                "name": displayable(key),
                "type": _summary_type(stats),
                "nulls": self.records - stats.present + stats.nulls,
            }
            for key, stats in self._keys.items()
        ]


def _summary_type(stats: _KeyStats) -> str:
    if stats.beyond_int64 and stats.kind in (INTEGER, NUMBER):
        return STRING
    return stats.kind


def check_record(
    data: bytes, line: int, encoding: str, limits: Limits = DEFAULT_LIMITS
) -> dict[str, object] | RowError:
    """A JSON object from one record's bytes, or the row error it is.

    Its length and nesting are checked on its bytes before any parser sees them.
    """
    if len(data) > limits.max_record_bytes:
        return too_long_error(line, limits.max_record_bytes, decode_lossless(data[:1024]))
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return decode_error(line, encoding, decode_lossless(data))
    if too_deep(data, limits.max_json_depth):
        message = f"nested deeper than {limits.max_json_depth} levels"
        return RowError.of(line, "too_deep", message, data[:1024].decode("utf-8", "replace"))
    try:
        value = load_json(data)
    except NotJson as exc:
        return RowError.of(line, "json", f"invalid JSON: {exc}", data.decode("utf-8"))
    if not isinstance(value, dict):
        kind = kind_of(value)
        return RowError.of(
            line, "not_object", f"expected a JSON object, got {_article(kind)} {kind}",
            data.decode("utf-8"),
        )  # fmt: skip
    long_key = _long_key(value, limits.max_column_name_bytes)
    if long_key is not None:
        limit = limits.max_column_name_bytes
        message = f"the key {long_key[:40]!r}... is longer than {limit} bytes"
        return RowError.of(line, "key_too_long", message, data[:1024].decode("utf-8", "replace"))
    if _may_hide_long_integers(value) and _LONG_DIGITS.search(data):
        try:
            exact = _load_exactly(data)
        except (ValueError, RecursionError):
            return value
        if isinstance(exact, dict):
            return exact
    return value


def _long_key(record: dict[str, object], limit: int) -> str | None:
    for key in record:
        if len(key) > limit // 4 and utf8_length(key) > limit:  # at most 4 bytes a character
            return key
    return None


def _may_hide_long_integers(record: dict[str, object]) -> bool:
    """orjson reads an integer beyond 64 bits as a float: a top-level float that large may
    have been one."""
    return any(type(value) is float and abs(value) >= 2.0**63 for value in record.values())


def _article(kind: str) -> str:
    return "an" if kind[0] in "aeiou" else "a"
