"""What each column type is: the text patterns its values match, and what a block of values
says about a column. Shared by the Arrow checks (`column_types`) and the Python ones for small
blocks (`small_blocks`), which must decide alike."""

from __future__ import annotations

import functools
from dataclasses import dataclass

NULL = "null"
BOOLEAN = "boolean"
INTEGER = "integer"
NUMBER = "number"
DATE = "date"
DATETIME = "datetime"
STRING = "string"

# The calendar is in the pattern: month lengths, and 29 February in leap years only (ISO
# 8601's proleptic Gregorian calendar, in which year 0000 is one, as Arrow's date cast has it).
_DAY_IN_ANY_YEAR = (
    r"((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)"
)
_LEAP_YEAR = r"([0-9]{2}(0[48]|[2468][048]|[13579][26])|(0[048]|[2468][048]|[13579][26])00)"
_DATE = r"([0-9]{4}-" + _DAY_IN_ANY_YEAR + "|" + _LEAP_YEAR + "-02-29)"
_HOUR, _MINUTE = r"([01][0-9]|2[0-3])", r"[0-5][0-9]"
_TIME = _HOUR + ":" + _MINUTE + "(:" + _MINUTE + r"(\.[0-9]+)?)?"
_ZONE = "(Z|[+-]" + _HOUR + "(:?" + _MINUTE + ")?)?"
PATTERNS = {
    # Each case spelled out: RE2's (?i) folds Unicode, and would take `falſe` (long s).
    BOOLEAN: r"^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])$",
    # No leading zero: `007` and zip codes keep the column a string.
    INTEGER: r"^-?(0|[1-9][0-9]*)$",
    # JSON's number syntax, so the text itself can be written as the JSON value.
    NUMBER: r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$",
    DATE: "^" + _DATE + "$",
    DATETIME: "^" + _DATE + "[T ]" + _TIME + _ZONE + "$",
}
CANDIDATES = (BOOLEAN, INTEGER, NUMBER, DATE, DATETIME)
# A probe looks at this many values first; a block this long is checked by patterns alone.
PROBE_ROWS = 64
INT64_SAFE_DIGITS = 18  # any integer text this long or shorter fits in signed 64 bits


@dataclass(frozen=True)
class BlockCounts:
    """What one block of values says about a column."""

    nulls: int
    values: int
    candidates: set[str]


@functools.cache
def datetimes_of_length(length: int) -> str | None:
    """A pattern for any number of DATETIME values of `length` characters back to back, or
    None if no value that long is one.

    Each of its alternatives matches exactly `length` characters, so a match cannot start a
    value anywhere but at a multiple of `length`: it matches just when every value does.
    """
    seconds = [("", 0), (":" + _MINUTE, 3)]
    fractions = range(1, length)
    seconds += [(":" + _MINUTE + rf"\.[0-9]{{{digits}}}", 4 + digits) for digits in fractions]
    hour = "[+-]" + _HOUR
    zones = [("", 0), ("Z", 1), (hour, 3), (hour + _MINUTE, 5), (hour + ":" + _MINUTE, 6)]
    date_and_minute = len("YYYY-MM-DDThh:mm")
    endings = [
        second + zone
        for second, second_length in seconds
        for zone, zone_length in zones
        if date_and_minute + second_length + zone_length == length
    ]
    if not endings:
        return None
    one = _DATE + "[T ]" + _HOUR + ":" + _MINUTE + "(" + "|".join(endings) + ")"
    return "^(" + one + ")*$"
