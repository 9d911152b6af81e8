"""Column types for CSV/TSV, decided from every value with vectorised Arrow kernels.

The values of a column arrive in batches of strings. Each batch can only remove candidate
types, so the final type is what survives all of them; nothing is decided from a sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

NULL = "null"
BOOLEAN = "boolean"
INTEGER = "integer"
NUMBER = "number"
DATE = "date"
DATETIME = "datetime"
STRING = "string"

_DATE = r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]+)?)?"
_ZONE = r"(Z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)?"
PATTERNS = {
    BOOLEAN: r"(?i)^(true|false)$",
    # No leading zero: `007` and zip codes keep the column a string.
    INTEGER: r"^-?(0|[1-9][0-9]*)$",
    # JSON's number syntax, so the text itself can be written as the JSON value.
    NUMBER: r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$",
    DATE: "^" + _DATE + "$",
    DATETIME: "^" + _DATE + "[T ]" + _TIME + _ZONE + "$",
}
_CANDIDATES = (BOOLEAN, INTEGER, NUMBER, DATE, DATETIME)
_PROBE_ROWS = 64
_INT64_SAFE_DIGITS = 18  # any integer text this long or shorter fits in signed 64 bits


@dataclass
class ColumnProfile:
    """What the values of one column seen so far allow it to be."""

    name: str
    nulls: int = 0
    values: int = 0
    candidates: set[str] = field(default_factory=lambda: set(_CANDIDATES))

    @property
    def type(self) -> str:
        if self.values == 0:
            return NULL
        for candidate in _CANDIDATES:
            if candidate in self.candidates:
                return candidate
        return STRING

    def summary(self) -> dict[str, object]:
        return {"name": self.name, "type": self.type, "nulls": self.nulls}


def profile_batch(profiles: list[ColumnProfile], columns: list[pa.Array]) -> None:
    """Narrows each profile by one batch of its column's string values."""
    for profile, column in zip(profiles, columns, strict=True):
        empty = pc.equal(column, "")
        nulls = pc.sum(empty).as_py() or 0
        profile.nulls += nulls
        profile.values += len(column) - nulls
        if not profile.candidates or nulls == len(column):
            continue
        values = pc.filter(column, pc.invert(empty)) if nulls else column
        profile.candidates = _surviving(values, profile.candidates)


def _all_match(values: pa.Array, kind: str) -> bool:
    pattern = PATTERNS[kind]
    probe = values.slice(0, _PROBE_ROWS)
    if not pc.all(pc.match_substring_regex(probe, pattern)).as_py():
        return False
    return bool(pc.all(pc.match_substring_regex(values, pattern)).as_py())


def _surviving(values: pa.Array, candidates: set[str]) -> set[str]:
    if BOOLEAN in candidates and _all_match(values, BOOLEAN):
        return {BOOLEAN}
    if INTEGER in candidates and _all_match(values, INTEGER):
        return candidates & {INTEGER, NUMBER} if _integers_fit(values) else set()
    if NUMBER in candidates and _all_match(values, NUMBER):
        return {NUMBER} if _numbers_fit(values) else set()
    if DATE in candidates and _all_match(values, DATE) and _valid_dates(values):
        return {DATE}
    if DATETIME in candidates and _all_match(values, DATETIME) and _valid_dates(values):
        return {DATETIME}
    return set()


def _integers_fit(integers: pa.Array) -> bool:
    long = pc.filter(integers, pc.greater(pc.utf8_length(integers), _INT64_SAFE_DIGITS))
    if len(long) == 0:
        return True
    try:
        pc.cast(long, pa.int64())
    except (pa.ArrowInvalid, OverflowError):
        return False
    return True


def _numbers_fit(numbers: pa.Array) -> bool:
    """No integer beyond 64 bits and no value beyond a double: only long texts or exponents
    can be either, so only those few are looked at closely."""
    risky = pc.filter(
        numbers,
        pc.or_(
            pc.greater(pc.utf8_length(numbers), _INT64_SAFE_DIGITS),
            pc.match_substring(numbers, "e", ignore_case=True),
        ),
    )
    if len(risky) == 0:
        return True
    integers = pc.filter(risky, pc.match_substring_regex(risky, PATTERNS[INTEGER]))
    if not _integers_fit(integers):
        return False
    return bool(pc.all(pc.is_finite(pc.cast(risky, pa.float64()))).as_py())


def _valid_dates(values: pa.Array) -> bool:
    """The calendar check the pattern cannot make (no 30 February)."""
    try:
        pc.cast(pc.utf8_slice_codeunits(values, 0, 10), pa.date32())
    except pa.ArrowInvalid:
        return False
    return True
