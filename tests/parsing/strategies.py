"""Hypothesis settings and strategies shared by the parsing property tests."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

SETTINGS = settings(
    max_examples=80,
    deadline=None,
    database=None,  # no .hypothesis directory in the repo
    suppress_health_check=[HealthCheck.too_slow],
)

# Cell text of every family the type check tells apart, with the near misses that must not
# pass for it (a 30th of February, an hour 24, integers past 64 bits, "yes" for a boolean).
typed_value = st.one_of(
    st.just(""),
    st.sampled_from(["true", "FALSE", "True", "yes", "007", "0", "-0", "1e400", "+1", ".5"]),
    st.integers(-(2**64), 2**64).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.dates().map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat(sep="T")),
    st.datetimes().map(lambda d: d.isoformat(sep=" ", timespec="minutes") + "Z"),
    st.sampled_from(["2024-02-30", "2024-01-01T24:00", "2024-01-01 10:00Z", "2024-1-1"]),
    st.text(max_size=4),
)


def draw_block(
    data: st.DataObject,
    families: st.SearchStrategy[st.SearchStrategy[str]],
    candidate_sets: st.SearchStrategy[set[str]],
    rows: int,
    width: int,
) -> tuple[list[pa.ChunkedArray], list[set[str]]]:
    """A block of `width` string columns of `rows` values, each column drawn from one family
    (so that whole columns of a type come often), and the candidate types of each column."""
    columns = []
    for _ in range(width):
        family = data.draw(families)
        values = data.draw(st.lists(family, min_size=rows, max_size=rows))
        columns.append(pa.chunked_array([pa.array(values, pa.string())]))
    return columns, [set(data.draw(candidate_sets)) for _ in range(width)]
