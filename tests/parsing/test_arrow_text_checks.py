"""Checks that run over the raw bytes of many values at once decide exactly as checks of
each value: DATETIME values of one length back to back, and single bytes searched."""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import example, given, settings
from hypothesis import strategies as st

from service.parsing.arrow_text import bytes_present, joined_values
from service.parsing.type_rules import DATETIME, PATTERNS, datetimes_of_length

_EACH = re.compile(PATTERNS[DATETIME])

# Datetimes and near misses: every part that the pattern checks, right and wrong.
_PIECES = st.lists(
    st.sampled_from(
        [
            "2024",
            "2023",
            "1900",
            "2000",
            "0000",
            "-",
            "02",
            "13",
            "12",
            "29",
            "30",
            "31",
            "00",
            "T",
            " ",
            "t",
            "23",
            "24",
            ":",
            "59",
            "60",
            ".",
            "5",
            "123",
            "Z",
            "z",
            "+",
            "01",
            "0130",
            "1",
            "9",
        ]
    ),
    max_size=14,
).map("".join)
_DATETIMES = st.one_of(_PIECES, st.from_regex(_EACH, fullmatch=True))


def _check(values: list[str]) -> None:
    lengths = {len(value) for value in values}
    for length in lengths:
        same = [value for value in values if len(value) == length]
        pattern = datetimes_of_length(length)
        if pattern is None:
            assert not any(_EACH.match(value) for value in same)
            continue
        expected = all(_EACH.match(value) for value in same)
        joined = joined_values(pa.chunked_array([pa.array(same)]).slice(0))
        assert bool(pc.all(pc.match_substring_regex(joined, pattern)).as_py()) == expected
        for value in same:  # and one value at a time
            assert bool(re.fullmatch(pattern[1:-1], value)) == bool(_EACH.match(value))


@settings(max_examples=300, deadline=None)
@given(st.lists(_DATETIMES, min_size=1, max_size=8))
@example(["2024-02-29T10:00:00Z", "2023-02-29T10:00:00Z"])
@example(["2024-01-01T10:00", "2024-01-01T10:0"])
@example(["2024-01-01T10:00:00+0130", "2024-01-01T10:00:00.12345"])
@example(["2000-02-29 23:59:59.1+01:00", "0000-02-29 23:59:59.1+01:00"])
def test_values_of_one_length_back_to_back(values: list[str]) -> None:
    _check(values)


def test_a_slice_of_an_array_is_joined_from_its_own_values() -> None:
    values = pa.array(["x", "2024-01-01T10:00Z", "2024-01-01T10:00Z", "y"]).slice(1, 2)
    assert joined_values(values).to_pylist() == ["2024-01-01T10:00Z" * 2]
    assert datetimes_of_length(17) is not None
    assert datetimes_of_length(18) is None


def test_bytes_are_found_in_any_piece_and_only_within_a_slice() -> None:

    long = "a" * 300_000
    values = pa.array(["\\", long, long + '"', "x\t"]).slice(1, 2)
    assert bytes_present(values, [b"\\", b'"', b"\t"]) == {b'"'}
    assert bytes_present(pa.chunked_array([values, pa.array(["\t"])]), [b"\t"]) == {b"\t"}
    assert bytes_present(pa.array([""]), [b"e"]) == set()
