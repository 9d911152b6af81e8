"""The Arrow fast paths agree with the record-by-record readers they stand in for."""

from __future__ import annotations

import json

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from service.parsing.csv_arrow import read_fast
from service.parsing.csv_framing import count_lines, safe_records_end
from service.parsing.csv_records import read_records
from service.parsing.json_arrow import (
    _matches,
    _template,
    learn_schema,
    read_lines,
    read_lines_fast,
    read_lines_with_arrow,
)
from service.parsing.json_values import JsonSummary, check_record
from service.parsing.limits import DEFAULT_LIMITS
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
    "line",
    [
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": [-Inf]}',
        b'{"a": {"b": -NaN}}',
        b'{"a": "\xed\xa0\x80"}',
        b"null",
        b"\t null \r",
        b'null {"a": 1}',
        b'{"a": 1} null',
        b"",
    ],
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


# JSON text of flat values, some of which a schema's template refuses (nulls in a typed key,
# integers past 18 digits, positive exponents, escapes, raw control characters, NaN).
json_values = st.one_of(
    st.integers(-(2**64), 2**64).map(lambda n: str(n).encode()),
    st.sampled_from([b"-0", b"0", b"123456789012345678", b"-999999999999999999", b"007"]),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda x: json.dumps(x).encode()),
    st.sampled_from([b"1.50", b"1e5", b"1E-5", b"-0.0e-0", b"12345678901234567890.5", b"NaN"]),
    st.booleans().map(lambda b: json.dumps(b).encode()),
    st.just(b"null"),
    st.text(max_size=4).map(lambda t: json.dumps(t).encode()),
    st.text(max_size=4).map(lambda t: json.dumps(t, ensure_ascii=False).encode()),
    st.sampled_from([b'"\\ud800"', b'"a\\/b"', b'"\t"', b'"\\x"', b'"\xff"', b'"2024-01-02"']),
)
spaces = st.sampled_from([b"", b" ", b"\t", b"\r", b"  "])


@st.composite
def flat_lines(draw: st.DrawFn, keys: list[bytes]) -> bytes:
    order = keys if draw(st.booleans()) else draw(st.permutations(keys))
    members = []
    for key in order:
        colon = draw(spaces) + b":" + draw(spaces)
        members.append(draw(spaces) + key + colon + draw(json_values) + draw(spaces))
    return draw(spaces) + b"{" + b",".join(members) + b"}" + draw(spaces)


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@PROPERTY
@given(st.data())
def test_the_schemas_template_agrees_with_arrow(data: st.DataObject) -> None:
    keys = data.draw(st.sampled_from([[b'"a"'], [b'"a"', b'"b c"'], [b'"x.y"', b'"a"', b'"_"']]))
    block = data.draw(st.lists(flat_lines(keys), min_size=1, max_size=6))
    ending = data.draw(st.sampled_from([b"\n", b"\r\n", b""]))
    piece = b"\n".join(block) + ending
    schema = learn_schema(data.draw(flat_lines(keys)))
    if schema is None:
        return
    summary, reference = JsonSummary(), JsonSummary()
    fast = read_lines(piece, summary, limits=DEFAULT_LIMITS, schema=schema)
    by_arrow = read_lines_with_arrow(piece, reference, limits=DEFAULT_LIMITS, schema=schema)
    template = _template(schema, DEFAULT_LIMITS.max_column_name_bytes)
    took = template is not None and _utf8(piece) and _matches(template, piece, len(piece))
    event("the template took the block" if took else "the template declined the block")
    if not took:
        return
    assert fast is not None
    assert by_arrow is not None, "the template took a block Arrow would not"
    assert (fast.data, fast.rows, fast.schema) == (by_arrow.data, by_arrow.rows, by_arrow.schema)
    assert summary.columns() == reference.columns()
    assert fast.data == slow_json_lines(piece)[0]
