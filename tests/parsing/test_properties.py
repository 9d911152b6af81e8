"""Property tests: what csv.writer writes comes back, the fast path agrees with Python's csv,
and the vectorised type check agrees with a plain Python one."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from service.parsing import ParseFailure
from service.parsing.column_types import ColumnProfile, profile_batch
from tests.parsing.reference import expected_values, reference_type
from tests.parsing.strategies import SETTINGS, typed_value
from tests.parsing.support import as_text_values, parse_in_temp_dir

# A bare CR is left out: csv.writer does not quote it when the line ends are LF only, so its
# own reader would not read such a table back either.
cell = st.lists(st.sampled_from([*"ab1.-\"',;|\t \nxé€\\", "\r\n"]), max_size=8).map("".join)
dialects = st.fixed_dictionaries(
    {
        "delimiter": st.sampled_from([",", ";", "\t", "|"]),
        "lineterminator": st.sampled_from(["\n", "\r\n"]),
        "quoting": st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
    }
)


@SETTINGS
@given(
    dialect=dialects,
    width=st.integers(1, 5),
    data=st.data(),
    chunk_size=st.sampled_from([None, 1, 7, 50]),
)
def test_csv_writer_tables_come_back(
    dialect: dict[str, object], width: int, data: st.DataObject, chunk_size: int | None
) -> None:
    rows = data.draw(st.lists(st.lists(cell, min_size=width, max_size=width), max_size=12))
    header = [f"h{i}" for i in range(width)]
    buffer = io.StringIO()
    csv.writer(buffer, **dialect).writerows([header, *rows])  # type: ignore[arg-type]
    outcome = parse_in_temp_dir(
        buffer.getvalue().encode(), delimiter=dialect["delimiter"], chunk_size=chunk_size
    )
    types = [str(column["type"]) for column in outcome.result.columns]
    assert outcome.errors == []
    assert as_text_values(outcome) == expected_values(rows, types)


messy = st.text(alphabet=st.sampled_from(list('a1,"\n\r ;')), min_size=1, max_size=160)


class _Lines:
    """Hands out lines from `start` and notes when the reader asks for more than there are."""

    def __init__(self, lines: list[str], start: int) -> None:
        self._lines = lines[start:]
        self.exhausted = False

    def __iter__(self) -> Iterator[str]:
        yield from self._lines
        self.exhausted = True


def python_csv_records(text: str) -> tuple[list[tuple[int, list[str]]], list[int]]:
    """(line, row) for each record Python's csv reads, and the lines of records it reads cut
    off by the end of the file inside a quoted field: such a record is an error instead, and
    reading resumes after its first line."""
    lines = io.StringIO(text, newline="").readlines()
    records: list[tuple[int, list[str]]] = []
    cut_off: list[int] = []
    start = 0
    while start < len(lines):
        feed = _Lines(lines, start)
        reader = csv.reader(feed, delimiter=",")
        previous_line = 0
        cut = False
        for row in reader:
            if feed.exhausted:
                cut_off.append(start + previous_line + 1)
                cut = True
                break
            if row:
                records.append((start + previous_line + 1, row))
            previous_line = reader.line_num
        if not cut:
            break
        start += previous_line + 1
    return records, cut_off


@SETTINGS
@given(text=messy, chunk_size=st.sampled_from([None, 1, 5, 23]))
def test_any_text_parses_as_pythons_csv_reads_it(text: str, chunk_size: int | None) -> None:
    """Records, row errors and their line numbers match Python's csv on arbitrary input, but
    for a quoted field left open at the end of the file."""
    records, cut_off = python_csv_records(text)
    try:
        outcome = parse_in_temp_dir(text.encode(), delimiter=",", chunk_size=chunk_size)
    except ParseFailure as failure:
        if failure.code == "header_unterminated_quote":
            assert cut_off and (not records or cut_off[0] < records[0][0])
            return
        assert failure.code == "empty_file"
        assert not text.strip()
        return
    width = len(records[0][1])
    good = [row for _, row in records[1:] if len(row) == width]
    bad_lines = [line for line, row in records[1:] if len(row) != width]
    types = [str(column["type"]) for column in outcome.result.columns]
    assert as_text_values(outcome) == expected_values(good, types)
    assert [error["line"] for error in outcome.errors] == sorted(bad_lines + cut_off)
    assert all(
        error["type"] == ("unterminated_quote" if error["line"] in cut_off else "field_count")
        for error in outcome.errors
    )


@SETTINGS
@given(st.lists(st.lists(typed_value, max_size=20), min_size=1, max_size=3))
def test_vectorised_types_match_a_plain_python_check(batches: list[list[str]]) -> None:
    # All values of a column often share a family, which is when the interesting rules bite.
    profile = ColumnProfile("v")
    for batch in batches:
        profile_batch([profile], [pa.array(batch, pa.string())])
    assert profile.type == reference_type([v for batch in batches for v in batch])


json_text = st.text(alphabet=st.sampled_from(list('ab{}[],:" \n\\é')), max_size=6)
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**66), 2**66), json_text)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(json_text, inner, max_size=3),
    max_leaves=8,
)
array_element = st.one_of(
    st.dictionaries(st.sampled_from(["id", "x", "}, {"]), json_value, max_size=3),
    json_leaf,
)


@SETTINGS
@given(
    elements=st.lists(array_element, max_size=12),
    indent=st.sampled_from([None, 1]),
    chunk_size=st.sampled_from([None, 1, 13, 64]),
)
def test_json_arrays_come_back_element_by_element(
    elements: list[object], indent: int | None, chunk_size: int | None
) -> None:
    text = json.dumps(elements, indent=indent, ensure_ascii=False)
    outcome = parse_in_temp_dir(text.encode(), chunk_size=chunk_size)
    assert outcome.records == [e for e in elements if isinstance(e, dict)]
    lines = text.split("\n")
    not_objects = [e for e in elements if not isinstance(e, dict)]
    assert [error["type"] for error in outcome.errors] == ["not_object"] * len(not_objects)
    for error, element in zip(outcome.errors, not_objects, strict=True):
        number = error["line"]
        assert isinstance(number, int), error
        line = lines[number - 1]
        assert json.dumps(element, ensure_ascii=False) in line
