"""JSON values: strict loading, and the per-key summary that becomes `result.columns`."""

from __future__ import annotations

import json
from dataclasses import dataclass

import orjson

from service.parsing.column_types import BOOLEAN, INTEGER, NULL, NUMBER, STRING
from service.parsing.decoding import decode_lossless
from service.parsing.row_errors import RowError, decode_error

OBJECT = "object"
ARRAY = "array"
MIXED = "mixed"


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
            return json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            raise NotJson(str(fast_error)) from None


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


class JsonSummary:
    """Each top-level key in first-seen order, with its type and how many records lack it
    or hold null there."""

    def __init__(self) -> None:
        self.records = 0
        self._keys: dict[str, _KeyStats] = {}

    def add(self, record: dict[str, object]) -> None:
        self.records += 1
        keys = self._keys
        for key, value in record.items():
            stats = keys.get(key)
            if stats is None:
                stats = keys[key] = _KeyStats()
            stats.present += 1
            if value is None:
                stats.nulls += 1
            else:
                stats.kind = merge_kinds(stats.kind, kind_of(value))

    def add_column(self, key: str, kind: str, present: int, nulls: int) -> None:
        """Merges what a vectorised reader found for one key in a block of records."""
        stats = self._keys.get(key)
        if stats is None:
            stats = self._keys[key] = _KeyStats()
        stats.present += present
        stats.nulls += nulls
        stats.kind = merge_kinds(stats.kind, kind)

    def merge(self, later: JsonSummary) -> None:
        """Adds what a summary of the records after these found."""
        self.records += later.records
        for key, stats in later._keys.items():
            self.add_column(key, stats.kind, stats.present, stats.nulls)

    def columns(self) -> list[dict[str, object]]:
        return [
            {"name": key, "type": stats.kind, "nulls": self.records - stats.present + stats.nulls}
            for key, stats in self._keys.items()
        ]


def check_record(data: bytes, line: int, encoding: str) -> dict[str, object] | RowError:
    """A JSON object from one record's bytes, or the row error it is."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return decode_error(line, encoding, decode_lossless(data))
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
    return value


def _article(kind: str) -> str:
    return "an" if kind[0] in "aeiou" else "a"
