"""The Arrow fast paths agree with the record-by-record readers they stand in for."""

from __future__ import annotations

import json

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from service.parsing.csv_arrow import read_fast
from service.parsing.csv_framing import count_lines, safe_records_end
from service.parsing.csv_records import read_records
from service.parsing.json_arrow import read_lines_fast
from service.parsing.json_values import JsonSummary, check_record
from service.parsing.row_errors import RowError

PROPERTY = settings(max_examples=150, deadline=None, database=None)


def slow_json_lines(piece: bytes) -> tuple[bytes, list[dict[str, object]]]:
    summary = JsonSummary()
    kept = []
    for number, line in enumerate(piece.split(b"\n"), start=1):
        record = line[:-1] if line.endswith(b"\r") else line
        if not record.strip(b" \t\r\n"):
            continue
        checked = check_record(record, number, "utf-8")
        if not isinstance(checked, RowError):
            summary.add(checked)
            kept.append(record + b"\n")
    return b"".join(kept), summary.columns()


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)
records = st.dictionaries(st.sampled_from(["a", "b", "c", "é"]), values, max_size=4)
lines = st.one_of(
    records.map(lambda r: json.dumps(r, ensure_ascii=False).encode()),
    records.map(lambda r: json.dumps(r, separators=(",", ":")).encode()),
    st.sampled_from(
        [
            b"",
            b"  ",
            b"[1]",
            b"nope",
            b"null",
            b" null\r",
            b'{"a": NaN}',
            b'{"a": 1}\r',
            b'{"a":"\xff"}',
        ]
    ),
)


@PROPERTY
@given(st.lists(lines, min_size=1, max_size=8))
def test_arrow_json_lines_agree_with_the_line_reader(block: list[bytes]) -> None:
    piece = b"\n".join(block) + b"\n"
    summary = JsonSummary()
    fast = read_lines_fast(piece, summary)
    event("arrow took the block" if fast is not None else "arrow declined the block")
    if fast is None:
        return  # the block goes to the line reader, which is the reference itself
    slow_output, slow_columns = slow_json_lines(piece)
    assert fast == slow_output
    assert summary.columns() == slow_columns


@pytest.mark.parametrize(
    "line", [b'{"a": NaN}', b'{"a": Infinity}', b'{"a": "\xed\xa0\x80"}', b"null", b"\t null \r"]
)
def test_arrow_is_not_trusted_with_what_strict_json_refuses(line: bytes) -> None:
    assert read_lines_fast(b'{"a": 1}\n' + line + b"\n", JsonSummary()) is None


cells = st.text(alphabet=st.sampled_from(list('ab1,"\n\r ')), max_size=6)


@PROPERTY
@given(st.lists(st.lists(cells, min_size=2, max_size=2), min_size=1, max_size=10))
def test_arrow_csv_agrees_with_pythons_csv_on_safe_records(rows: list[list[str]]) -> None:
    text = "".join(",".join(row) + "\n" for row in rows).encode()
    end = safe_records_end(text, ",", at_eof=True)
    if end == 0:
        return  # an unclosed quote right away: all of it is for the record reader
    piece = text[:end]
    table = read_fast(piece, delimiter=",", field_count=2)
    slow = read_records(piece, delimiter=",", expected_fields=2, first_line=1, at_eof=True)
    if table is None:
        assert slow.errors  # Arrow only refuses blocks that hold a row error
        return
    assert [list(r.values()) for r in table.to_pylist()] == slow.rows
    assert slow.lines == count_lines(piece)
    assert not slow.errors
