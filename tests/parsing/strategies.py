"""Hypothesis settings and strategies shared by the parsing property tests."""

from __future__ import annotations

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
