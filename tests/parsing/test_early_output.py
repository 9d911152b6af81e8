"""CSV output written during the scan, and written again by a second pass over the content when
the types changed after it was written."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.parsing.early_output import EarlyOutput, Resume
from tests.parsing.reference import expected_values, reference_type
from tests.parsing.strategies import SETTINGS, typed_value
from tests.parsing.support import (
    Outcome,
    as_text_values,
    csv_bytes,
    parse_bytes,
    parse_in_temp_dir,
)


def write_reports(outcome: Outcome) -> int:
    """Progress reports of a write pass: the one at the very end is not one of them."""
    return sum(p.phase == "write" for p in outcome.progress[:-1])


def test_blocks_are_kept_while_the_types_hold() -> None:
    output = EarlyOutput()
    assert output.accept(["integer", "string"], 10, 100, ["integer", "string"])
    assert output.accept(["integer", "string"], 5, 50, ["integer", "string"])
    assert output.resume(["integer", "string"]) == Resume(row=15, offset=150)


def test_a_narrowed_type_stops_early_output_and_redoes_it_all() -> None:
    output = EarlyOutput()
    assert output.accept(["integer"], 10, 100, ["integer"])
    assert not output.accept(["number"], 10, 120, ["number"])
    assert not output.active
    assert not output.accept(["number"], 10, 120, ["number"])  # stays off
    assert output.resume(["number"]) == Resume(row=0, offset=0)


def test_a_block_rendered_in_stale_types_is_not_kept() -> None:
    output = EarlyOutput()
    assert output.accept(["number"], 10, 100, ["number"])
    # Rendered before the previous block narrowed the column: integer, now number.
    assert not output.accept(["integer"], 10, 90, ["number"])
    assert output.resume(["number"]) == Resume(row=10, offset=100)


def test_a_column_without_values_in_a_block_renders_alike_in_any_type() -> None:
    output = EarlyOutput()
    assert output.accept([None, "string"], 10, 100, ["null", "string"])
    assert output.accept(["integer", "string"], 10, 100, ["integer", "string"])
    assert output.resume(["integer", "string"]) == Resume(row=20, offset=200)


def test_blocks_that_were_not_rendered_are_redone() -> None:
    output = EarlyOutput()
    assert output.accept(["string"], 10, 100, ["string"])
    assert not output.accept(None, 10, 0, ["string"])
    assert output.resume(["string"]) == Resume(row=10, offset=100)


def numbered_rows(count: int) -> list[str]:
    return [f"{i},name {i}" for i in range(count)]


async def test_settled_types_need_no_write_pass(tmp_path: Path) -> None:
    outcome = await parse_bytes(
        tmp_path, csv_bytes("id,name", *numbered_rows(3000)), chunk_size=1024
    )
    assert write_reports(outcome) == 0
    assert outcome.progress[-1].phase == "write"
    assert outcome.records[-1] == {"id": 2999, "name": "name 2999"}
    percents = [p.percent for p in outcome.progress]
    assert percents == sorted(percents)


async def test_a_late_narrowing_rewrites_the_output(tmp_path: Path) -> None:
    data = csv_bytes("id,name", *numbered_rows(3000), "2.5,last")
    outcome = await parse_bytes(tmp_path, data, chunk_size=1024)
    assert write_reports(outcome) > 0
    assert outcome.columns == {"id": "number", "name": "string"}
    assert outcome.records[0] == {"id": 0, "name": "name 0"}
    assert outcome.records[-1] == {"id": 2.5, "name": "last"}
    assert outcome.result_text.count("\n") == 3001
    percents = [p.percent for p in outcome.progress]
    assert percents == sorted(percents)
    assert percents[-1] == 100.0


async def test_a_column_empty_in_the_first_blocks_needs_no_rewrite(tmp_path: Path) -> None:
    rows = [f"{i}," for i in range(2000)] + [f"{i},{i}" for i in range(2000, 3000)]
    outcome = await parse_bytes(tmp_path, csv_bytes("a,b", *rows), chunk_size=1024)
    assert write_reports(outcome) == 0
    assert outcome.columns == {"a": "integer", "b": "integer"}
    assert outcome.records[0] == {"a": 0, "b": None}
    assert outcome.records[-1] == {"a": 2999, "b": 2999}


@pytest.mark.parametrize("chunk_size", [1024, 4096])
async def test_the_write_pass_reads_compressed_and_recoded_content_again(
    tmp_path: Path, chunk_size: int | None
) -> None:
    """The second pass decodes the stored file as the first did: gzip, a BOM, Latin-1, blank
    lines, row errors (logged once) and a header with a name that needs a suffix."""
    rows = [f"{i},caf\xe9 {i}" for i in range(3000)] + ["", "1,2,3", "7.5,fin"]
    text = "\n".join(["id,id", *rows]) + "\n"
    plain = await parse_bytes(tmp_path, text.encode("utf-8"), chunk_size=chunk_size)
    data = gzip.compress(text.encode("latin-1"))
    (tmp_path / "again").mkdir()
    recoded = await parse_bytes(tmp_path / "again", data, chunk_size=chunk_size, encoding="latin-1")
    assert write_reports(recoded) > 0
    assert recoded.columns == {"id": "number", "id_2": "string"}
    assert recoded.result_text == plain.result_text
    assert recoded.records[-1] == {"id": 7.5, "id_2": "fin"}
    assert [(e["line"], e["type"]) for e in recoded.errors] == [(3003, "field_count")]


async def test_booleans_in_any_case_and_nulls(tmp_path: Path) -> None:
    data = csv_bytes("b,k", "TRUE,x", ",x", "fAlSe,x", "True,x", "false,x")
    outcome = await parse_bytes(tmp_path, data)
    assert [record["b"] for record in outcome.records] == [True, None, False, True, False]


async def test_invalid_utf8_after_ascii_blocks_is_a_row_error(tmp_path: Path) -> None:
    data = csv_bytes("id,name", *numbered_rows(500)) + b"500,caf\xe9\n501,ok\n"
    outcome = await parse_bytes(tmp_path, data, chunk_size=1024)
    assert [(e["line"], e["type"]) for e in outcome.errors] == [(502, "decode")]
    assert outcome.result.rows == 501


# Printable, so that a file of mostly control characters is not taken for a binary one.
column_values = st.lists(typed_value.filter(str.isprintable), min_size=30, max_size=30)


@SETTINGS
@given(
    columns=st.lists(column_values, min_size=1, max_size=3),
    chunk_size=st.sampled_from([None, 16, 64, 256]),
)
def test_output_follows_the_final_types_however_they_narrow(
    columns: list[list[str]], chunk_size: int | None
) -> None:
    columns = [*columns, ["k"] * 30]  # no record is a blank line
    rows = [list(row) for row in zip(*columns, strict=True)]
    header = [f"h{i}" for i in range(len(columns))]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([header, *rows])
    outcome = parse_in_temp_dir(buffer.getvalue().encode(), delimiter=",", chunk_size=chunk_size)
    types = [str(column["type"]) for column in outcome.result.columns]
    assert types == [reference_type(values) for values in columns]
    assert as_text_values(outcome) == expected_values(rows, types)
