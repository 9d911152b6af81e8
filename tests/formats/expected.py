"""What each format must hold, derived from the NDJSON records and the rules of each format:
the oracle the real readers' output is compared with."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import pyarrow as pa

from tests.formats.corpus import Result

TIMESTAMP = pa.timestamp("us", "UTC")
JSON_TEXT_KINDS = ("object", "array", "mixed")

# The Arrow type of every column of every corpus result, as the rules say it must be.
ARROW_TYPES: dict[str, dict[str, pa.DataType]] = {
    "every_type_csv": {
        "id": pa.int64(),
        "amount": pa.float64(),
        "ratio": pa.float64(),
        "paid": pa.bool_(),
        "day": pa.date32(),
        "at": TIMESTAMP,  # every value has an offset
        "local": pa.string(),  # none has
        "mixed_zone": pa.string(),  # some have
        "name": pa.string(),
        "zip": pa.string(),  # leading zeros
        "big": pa.string(),  # beyond 64 bits
        "empty": pa.null(),
    },
    "json_lines": {
        "id": pa.int64(),
        "price": pa.float64(),
        "tags": pa.string(),  # array: JSON text
        "meta": pa.string(),  # object: JSON text
        "any": pa.string(),  # mixed: JSON text
        "huge": pa.string(),  # mixed
        "flag": pa.bool_(),
        "note": pa.string(),
        "nothing": pa.null(),
        "extra": pa.string(),
    },
    "json_array": {
        "name": pa.string(),
        "born": pa.int64(),
        "langs": pa.string(),
        "score": pa.float64(),
    },
    "lone_surrogate": {"s": pa.string(), "n": pa.int64()},
    "header_only_csv": {"id": pa.null(), "name": pa.null(), "when": pa.null()},
    "empty_json_array": {},
}
ARROW_TYPES["every_type_tsv"] = ARROW_TYPES["every_type_csv"]


class Number(str):
    """A JSON number's exact text."""


def records(result: Result) -> list[dict[str, Any]]:
    """The records with values as JSON has them (numbers as Python numbers)."""
    return [json.loads(line) for line in result.lines()]


def exact_records(result: Result) -> list[dict[str, Any]]:
    """The records with each number as its exact text."""
    return [json.loads(line, parse_int=Number, parse_float=Number) for line in result.lines()]


def utf8(text: str) -> str:
    """A string as UTF-8 can hold it: a lone surrogate (valid in a JSON escape) as U+FFFD."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def typed_value(value: Any, exact: Any, kind: str, arrow_type: pa.DataType) -> Any:
    """What a reader of the Parquet or Arrow file must see for one value."""
    if value is None:
        return None
    if arrow_type == pa.int64():
        return int(value)
    if arrow_type == pa.float64():
        return float(value)
    if arrow_type == pa.date32():
        return date.fromisoformat(value)
    if arrow_type == TIMESTAMP:
        return datetime.fromisoformat(value)
    if arrow_type == pa.string() and kind in JSON_TEXT_KINDS:
        return JsonText(value)
    if arrow_type == pa.string():
        return canonical_text(exact)
    return value


def canonical_text(exact: Any) -> str:
    """A value as CSV writes it: the exact text of numbers, true/false, "" for null."""
    if exact is None:
        return ""
    if exact is True or exact is False:
        return "true" if exact else "false"
    if isinstance(exact, str):
        return exact if isinstance(exact, Number) else utf8(exact)
    return JsonText(_plain(exact))  # type: ignore[return-value]


def _plain(value: Any) -> Any:
    """Numbers kept as exact text turned back into JSON numbers."""
    if isinstance(value, Number):
        return json.loads(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class JsonText:
    """Equal to any JSON text that stands for `value`."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, str):
            return False
        try:
            return bool(json.loads(other) == self.value)
        except json.JSONDecodeError:
            return False

    def __repr__(self) -> str:
        return f"JsonText({self.value!r})"
