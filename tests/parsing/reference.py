"""Plain-Python models of what the parser must produce, written for clarity rather than
speed: the property tests check the parser's vectorised code against them."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date


def expected_values(rows: list[list[str]], types: list[str]) -> list[list[object]]:
    """CSV cells as the records must hold them, given the column types: an empty cell is
    null, a boolean is true or false, anything else keeps its text."""

    def convert(value: str, kind: str) -> object:
        if value == "":
            return None
        if kind == "boolean":
            return value.lower() == "true"
        return value

    return [[convert(v, k) for v, k in zip(row, types, strict=True)] for row in rows]


def reference_type(values: list[str]) -> str:  # noqa: C901 - the reference typing rules, written out one by one on purpose
    """The type of a column holding these cells, decided one value at a time."""
    present = [v for v in values if v != ""]
    if not present:
        return "null"

    def every(test: Callable[[str], bool]) -> bool:
        return all(test(v) for v in present)

    def is_int(v: str) -> bool:
        return re.fullmatch(r"-?(0|[1-9][0-9]*)", v) is not None and -(2**63) <= int(v) < 2**63

    def is_number(v: str) -> bool:
        if re.fullmatch(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?", v) is None:
            return False
        if re.fullmatch(r"-?[0-9]+", v) and not is_int(v):
            return False
        return float(v) not in (float("inf"), float("-inf"))

    def is_date(v: str) -> bool:
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", v[:10]) is None:
            return False
        try:
            date.fromisoformat(v[:10])
        except ValueError:
            return False
        return True

    time = (
        r"([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]+)?)?"
        r"(Z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)?"
    )
    if every(lambda v: v.lower() in ("true", "false")):
        return "boolean"
    if every(is_int):
        return "integer"
    if every(is_number):
        return "number"
    if every(lambda v: len(v) == 10 and is_date(v)):
        return "date"
    if every(lambda v: is_date(v) and re.fullmatch("[T ]" + time, v[10:]) is not None):
        return "datetime"
    return "string"
