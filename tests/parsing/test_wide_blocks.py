"""A block of thousands of columns is type-checked as one array; it must decide exactly as
the column-by-column check does."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from service.parsing.column_types import count_by_column, count_wide_block
from service.parsing.type_rules import BOOLEAN, DATE, DATETIME, INTEGER, NUMBER
from tests.parsing.strategies import draw_block, typed_value

ALL = {BOOLEAN, INTEGER, NUMBER, DATE, DATETIME}
candidate_sets = st.sampled_from([ALL, {INTEGER, NUMBER}, {NUMBER}, {DATE}, {DATETIME}, set()])
# Integers and dates are the families the rules bite in, so they come often.
families = st.sampled_from(
    [
        typed_value,
        st.integers(-(2**64), 2**64).map(str) | st.just(""),
        st.sampled_from(["9223372036854775807", "-9223372036854775808", "9223372036854775808"]),
        st.dates().map(lambda d: d.isoformat()) | st.sampled_from(["2024-02-30", ""]),
    ]
)


@settings(max_examples=60, deadline=None, database=None)
@given(st.data(), st.integers(1, 80), st.integers(1, 5))
def test_wide_check_agrees_with_the_column_by_column_one(
    data: st.DataObject, rows: int, width: int
) -> None:
    columns, candidates = draw_block(data, families, candidate_sets, rows, width)
    one_by_one = [
        count_by_column([column], [possible])[0]
        for column, possible in zip(columns, candidates, strict=True)
    ]
    assert count_wide_block(columns, candidates) == one_by_one
