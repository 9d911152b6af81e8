"""Column types for CSV/TSV, decided from every value with vectorised Arrow kernels.

The values of a column arrive in batches of strings. Each batch can only remove candidate
types, so the final type is what survives all of them; nothing is decided from a sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from service.parsing.arrow_text import bytes_present, joined_values
from service.parsing.small_blocks import SMALL_BLOCK_BYTES, count_small_block, is_small
from service.parsing.type_rules import (
    BOOLEAN,
    CANDIDATES,
    DATE,
    DATETIME,
    INT64_SAFE_DIGITS,
    INTEGER,
    NULL,
    NUMBER,
    PATTERNS,
    PROBE_ROWS,
    STRING,
    BlockCounts,
    datetimes_of_length,
)

# Longer DATETIME values (a long fraction of a second) are checked one by one.
_LONGEST_FIXED_DATETIME = 64
_EXPONENTS = (b"e", b"E")
_USUAL_BOOLEANS = pa.array(["true", "false", "True", "False", "TRUE", "FALSE"])
# From this many columns a block's values are checked as one array: a dozen kernel calls per
# column cost 0.3 ms, 2.7 s for a block of 10,000 columns.
WIDE_BLOCK = 256
_INT64_MAX_TEXT, _INT64_MIN_TEXT = str(2**63 - 1), str(-(2**63))


@dataclass
class ColumnProfile:
    """What the values of one column seen so far allow it to be."""

    name: str
    nulls: int = 0
    values: int = 0
    candidates: set[str] = field(default_factory=lambda: set(CANDIDATES))

    @property
    def type(self) -> str:
        return type_of(self.candidates) if self.values else NULL

    def summary(self) -> dict[str, object]:
        return {"name": self.name, "type": self.type, "nulls": self.nulls}


def pinned(name: str, kind: str) -> ColumnProfile:
    """A profile that allows its column the one type `kind` (decided from all its values)."""
    return ColumnProfile(name, candidates={kind} & set(CANDIDATES))


def count_block(columns: list[pa.Array], candidates: list[set[str]]) -> list[BlockCounts]:
    """Checks one block of each column against the types still possible for it.

    Pure, so blocks can be checked side by side; `candidates` may be out of date (a superset
    only costs work), since merging intersects.
    """
    if _small(columns):
        return count_small_block(columns, candidates)
    if len(columns) >= WIDE_BLOCK:
        return count_wide_block(columns, candidates)
    return count_by_column(columns, candidates)


def _small(columns: list[pa.Array]) -> bool:
    """Few rows and values, none of them long, and no Arrow null (the readers give none: an
    empty field is an empty string, which `count_small_block` counts as null)."""
    rows = len(columns[0]) if columns else 0
    return (
        is_small(rows, len(columns))
        and sum(column.nbytes for column in columns) <= SMALL_BLOCK_BYTES
        and not any(column.null_count for column in columns)
    )


def count_by_column(columns: list[pa.Array], candidates: list[set[str]]) -> list[BlockCounts]:
    """`count_block`, a dozen kernel calls for each column."""
    counts = []
    for column, possible in zip(columns, candidates, strict=True):
        # The lengths' range tells at once whether there is an empty value (usually not),
        # and the date and datetime checks want it too.
        lengths = _length_range(column) if len(column) else None
        nulls = 0
        if lengths is not None and lengths[0] == 0:
            empty = pc.equal(column, "")
            nulls = pc.sum(empty).as_py() or 0
        surviving = set(possible)
        if surviving and nulls < len(column):
            if nulls:
                values, lengths = pc.filter(column, pc.invert(empty)), None
            else:
                values = column
            surviving = _surviving(values, surviving, lengths)
        counts.append(BlockCounts(nulls, len(column) - nulls, surviving))
    return counts


def type_of(candidates: set[str]) -> str:
    """The most specific type still possible for a column that has values."""
    for candidate in CANDIDATES:
        if candidate in candidates:
            return candidate
    return STRING


def block_types(candidates: list[set[str]], counts: list[BlockCounts]) -> list[str | None]:
    """The types that earlier candidates and one block's values allow; None for a column
    without values in the block (its empty values are null whatever the type)."""
    return [
        type_of(possible & block.candidates) if block.values else None
        for possible, block in zip(candidates, counts, strict=True)
    ]


def merge_counts(profiles: list[ColumnProfile], counts: list[BlockCounts]) -> None:
    for profile, block in zip(profiles, counts, strict=True):
        profile.nulls += block.nulls
        profile.values += block.values
        profile.candidates &= block.candidates


def profile_batch(profiles: list[ColumnProfile], columns: list[pa.Array]) -> None:
    """Narrows each profile by one batch of its column's string values."""
    merge_counts(profiles, count_block(columns, [p.candidates for p in profiles]))


def _probe(values: pa.Array, kind: str) -> bool:
    """A quick look at the first values: most wrong candidates fail here."""
    probe = values.slice(0, PROBE_ROWS)
    return bool(pc.all(pc.match_substring_regex(probe, PATTERNS[kind])).as_py())


def _all_match(values: pa.Array, kind: str, *, probe: bool = True) -> bool:
    if probe and not _probe(values, kind):
        return False
    if probe and len(values) <= PROBE_ROWS:
        return True  # the probe saw every value: the same match again would say the same
    return bool(pc.all(pc.match_substring_regex(values, PATTERNS[kind])).as_py())


def _length_range(values: pa.Array) -> tuple[int, int]:
    """The shortest and the longest value's length, in bytes."""
    found = pc.min_max(pc.binary_length(values)).as_py()
    return found["min"], found["max"]


def _surviving(
    values: pa.Array, candidates: set[str], lengths: tuple[int, int] | None = None
) -> set[str]:
    """The candidates that every value allows; `lengths` is the values' `_length_range` if
    known."""
    # A probe saves work only when another candidate could be tried next: a column left with
    # one candidate (most columns after their first block) is checked in full either way,
    # and a probe's pattern costs 15-50 us to compile in every block.
    probe = len(candidates) > 1
    if BOOLEAN in candidates and _booleans(values):
        return {BOOLEAN}
    if INTEGER in candidates and _integers(values):
        return candidates & {INTEGER, NUMBER}
    if NUMBER in candidates and _all_match(values, NUMBER, probe=probe):
        return {NUMBER} if _numbers_fit(values) else set()
    if DATE in candidates and _dates(values, lengths):
        return {DATE}
    if DATETIME in candidates and _datetimes(values, lengths, probe=probe):
        return {DATETIME}
    return set()


def _datetimes(values: pa.Array, lengths: tuple[int, int] | None, *, probe: bool) -> bool:
    """DATETIME's pattern over every value; when they are all as long, once over all of
    them back to back, which runs about twice as fast as once per value."""
    if probe and not _probe(values, DATETIME):
        return False
    if probe and len(values) <= PROBE_ROWS:
        return True  # the probe matched DATETIME's pattern over every value
    shortest, longest = lengths or _length_range(values)
    if shortest != longest or longest > _LONGEST_FIXED_DATETIME:
        return _all_match(values, DATETIME, probe=False)
    pattern = datetimes_of_length(longest)
    if pattern is None:
        return False
    return bool(pc.all(pc.match_substring_regex(joined_values(values), pattern)).as_py())


def _booleans(values: pa.Array) -> bool:
    if pc.all(pc.is_in(values, value_set=_USUAL_BOOLEANS)).as_py():
        return True
    return _all_match(values, BOOLEAN)  # any other mix of case


def _integers(values: pa.Array) -> bool:
    """Integer syntax without a leading zero, within signed 64 bits.

    Arrow's integer cast checks digits and range at a fraction of a regex's cost; it also
    takes leading zeros (and `0x` hex), which are refused separately.
    """
    if not _probe(values, INTEGER) or not _fit_int64(values):
        return False
    if (
        not pc.any(pc.starts_with(values, "0")).as_py()
        and not pc.any(pc.starts_with(values, "-0")).as_py()
    ):
        return True  # the usual column: no value starts with a zero, so none has a leading one
    length = pc.binary_length(values)
    leading_zero = pc.or_(
        pc.and_(pc.starts_with(values, "0"), pc.greater(length, 1)),
        pc.and_(pc.starts_with(values, "-0"), pc.greater(length, 2)),
    )
    return not pc.any(leading_zero).as_py()


def _dates(values: pa.Array, lengths: tuple[int, int] | None) -> bool:
    """YYYY-MM-DD and a real day: Arrow's date cast checks both, faster than the pattern."""
    if not _probe(values, DATE):
        return False
    if (lengths or _length_range(values)) != (10, 10):
        return False
    try:
        pc.cast(values, pa.date32())
    except pa.ArrowInvalid:
        return False
    return True


def _integers_fit(integers: pa.Array) -> bool:
    long = pc.filter(integers, pc.greater(pc.binary_length(integers), INT64_SAFE_DIGITS))
    return len(long) == 0 or _fit_int64(long)


def _fit_int64(values: pa.Array) -> bool:
    """Whether Arrow's cast takes every value as a signed 64-bit integer."""
    try:
        pc.cast(values, pa.int64())
    except (pa.ArrowInvalid, OverflowError):
        return False
    return True


def _numbers_fit(numbers: pa.Array) -> bool:
    """No integer beyond 64 bits and no value beyond a double: only long texts or exponents
    can be either, so only those few are looked at closely."""
    long = pc.greater(pc.binary_length(numbers), INT64_SAFE_DIGITS)
    if bytes_present(numbers, _EXPONENTS):
        long = pc.or_(long, pc.match_substring_regex(numbers, "[eE]"))
    risky = pc.filter(numbers, long)
    if len(risky) == 0:
        return True
    integers = pc.filter(risky, pc.match_substring_regex(risky, PATTERNS[INTEGER]))
    if not _integers_fit(integers):
        return False
    return bool(pc.all(pc.is_finite(pc.cast(risky, pa.float64()))).as_py())


def count_wide_block(columns: list[pa.Array], candidates: list[set[str]]) -> list[BlockCounts]:
    """`count_block` for a block of many columns: every value of the block in one array,
    each rule checked once over all of them, and the values that break a rule mapped back to
    their columns. It decides as the column-by-column check does."""
    rows = len(columns[0])
    if rows == 0:
        return [BlockCounts(0, 0, set(possible)) for possible in candidates]
    chunks = [
        chunk
        for column in columns
        for chunk in (column.chunks if isinstance(column, pa.ChunkedArray) else [column])
    ]
    values = pa.concat_arrays(chunks)
    empty = pc.equal(values, "")

    def breaking(ok: pa.Array) -> set[int]:
        """The columns with a value that is neither empty nor `ok`."""
        where = pc.indices_nonzero(pc.invert(pc.or_(ok, empty)))
        return set(pc.unique(pc.divide(where, rows)).to_pylist()) if len(where) else set()

    empties = pc.indices_nonzero(empty)
    nulls = [0] * len(columns)
    for column, count in _counts_by(pc.divide(empties, rows)).items():
        nulls[column] = count
    wanted = set().union(*candidates)
    failed: dict[str, set[int]] = {}
    if BOOLEAN in wanted:
        failed[BOOLEAN] = breaking(pc.match_substring_regex(values, PATTERNS[BOOLEAN]))
    integer_text = pc.match_substring_regex(values, PATTERNS[INTEGER])
    fits = _fits_int64_each(values)  # both for integers and for numbers that are integers
    if INTEGER in wanted:
        failed[INTEGER] = breaking(pc.and_(integer_text, fits))
    if NUMBER in wanted:
        number_text = pc.match_substring_regex(values, PATTERNS[NUMBER])
        failed[NUMBER] = breaking(number_text)
        failed["fit"] = breaking(_number_fits_each(values, number_text, integer_text, fits))
    if DATE in wanted:
        failed[DATE] = breaking(pc.match_substring_regex(values, PATTERNS[DATE]))
    if DATETIME in wanted:
        failed[DATETIME] = breaking(pc.match_substring_regex(values, PATTERNS[DATETIME]))
    counts = []
    for index, possible in enumerate(candidates):
        surviving = set(possible)
        if surviving and nulls[index] < rows:
            surviving = _surviving_by(index, surviving, failed)
        counts.append(BlockCounts(nulls[index], rows - nulls[index], surviving))
    return counts


def _surviving_by(index: int, candidates: set[str], failed: dict[str, set[int]]) -> set[str]:
    """`_surviving`, from the columns each rule fails."""
    if BOOLEAN in candidates and index not in failed[BOOLEAN]:
        return {BOOLEAN}
    if INTEGER in candidates and index not in failed[INTEGER]:
        return candidates & {INTEGER, NUMBER}
    if NUMBER in candidates and index not in failed[NUMBER]:
        return {NUMBER} if index not in failed["fit"] else set()
    if DATE in candidates and index not in failed[DATE]:
        return {DATE}
    if DATETIME in candidates and index not in failed[DATETIME]:
        return {DATETIME}
    return set()


def _counts_by(keys: pa.Array) -> dict[int, int]:
    if len(keys) == 0:
        return {}
    counted = pc.value_counts(keys)
    return dict(
        zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True)
    )


def _fits_int64_each(values: pa.Array) -> pa.Array:
    """For texts of integer syntax: whether each is within signed 64 bits. Up to 18 digits
    always; 19 digits when not above the bound, compared as text of the same length."""
    length = pc.binary_length(values)
    negative = pc.starts_with(values, "-")
    digits = pc.subtract(length, pc.cast(negative, pa.int32()))
    at_most_bound = pc.if_else(
        negative,
        pc.less_equal(values, _INT64_MIN_TEXT),
        pc.less_equal(values, _INT64_MAX_TEXT),
    )
    return pc.or_(
        pc.less_equal(digits, INT64_SAFE_DIGITS),
        pc.and_(pc.equal(digits, INT64_SAFE_DIGITS + 1), at_most_bound),
    )


def _number_fits_each(
    values: pa.Array, number_text: pa.Array, integer_text: pa.Array, fits: pa.Array
) -> pa.Array:
    """`_numbers_fit` for each value: a long or exponent text must be finite as a double,
    and an integer one within 64 bits."""
    risky = pc.or_(
        pc.greater(pc.binary_length(values), INT64_SAFE_DIGITS),
        pc.match_substring_regex(values, "[eE]"),
    )
    checked = pc.if_else(pc.and_(risky, number_text), values, "0")
    finite = pc.is_finite(pc.cast(checked, pa.float64()))
    return pc.or_(pc.invert(risky), pc.and_(pc.or_(pc.invert(integer_text), fits), finite))
