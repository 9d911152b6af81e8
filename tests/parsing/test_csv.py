"""CSV/TSV per RFC 4180: dialects, quoting, headers, blank lines, row errors and their lines."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from tests.parsing.support import csv_bytes, failure_code, parse_bytes

CHUNK_SIZES = [None, 1, 7, 64]


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
async def test_quoted_delimiters_quotes_and_newlines(
    tmp_path: Path, chunk_size: int | None
) -> None:
    data = csv_bytes(
        "id,text,n",
        '1,"a, b",10',
        '2,"say ""hi""",20',
        '3,"two\nlines",30',
        '4,"crlf\r\ninside",40',
    )
    outcome = await parse_bytes(tmp_path, data, chunk_size=chunk_size)
    assert outcome.records == [
        {"id": 1, "text": "a, b", "n": 10},
        {"id": 2, "text": 'say "hi"', "n": 20},
        {"id": 3, "text": "two\nlines", "n": 30},
        {"id": 4, "text": "crlf\r\ninside", "n": 40},
    ]
    assert outcome.result.format == "csv"
    assert outcome.result.dialect == {"delimiter": ",", "quotechar": '"', "header": True}
    assert outcome.errors == []


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
async def test_crlf_and_lf_line_ends_and_a_missing_final_newline(
    tmp_path: Path, chunk_size: int | None
) -> None:
    data = b"a,b\r\n1,x\r\n2,y\n3,z"
    outcome = await parse_bytes(tmp_path, data, chunk_size=chunk_size)
    assert outcome.records == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}, {"a": 3, "b": "z"}]


async def test_cr_only_line_ends(tmp_path: Path) -> None:
    outcome = await parse_bytes(tmp_path, b"a,b\r1,x\r2,y\r")
    assert outcome.records == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
async def test_field_count_errors_carry_the_physical_line_where_the_record_starts(
    tmp_path: Path, chunk_size: int | None
) -> None:
    data = csv_bytes(
        "a,b,c",  # line 1
        '1,"multi',  # line 2: one record over two lines
        'line",x',  # line 3
        "",  # line 4: blank, skipped
        "2,only-two",  # line 5
        '"three',  # line 6: two fields over two lines
        'lines",',  # line 7
        '"",x,y,z',  # line 8
        "3,y,z",  # line 9
    )
    outcome = await parse_bytes(tmp_path, data, chunk_size=chunk_size)
    assert outcome.records == [
        {"a": 1, "b": "multi\nline", "c": "x"},
        {"a": 3, "b": "y", "c": "z"},
    ]
    assert [(e["line"], e["type"], e["message"]) for e in outcome.errors] == [
        (5, "field_count", "expected 3 fields, got 2"),
        (6, "field_count", "expected 3 fields, got 2"),
        (8, "field_count", "expected 3 fields, got 4"),
    ]
    assert outcome.errors[1]["raw"] == '"three\nlines",'
    assert outcome.result.rows == 2
    assert outcome.result.rows_failed == 3


async def test_raw_text_of_an_error_is_cut_at_200_characters(tmp_path: Path) -> None:
    data = csv_bytes("a,b", "x" * 500)
    outcome = await parse_bytes(tmp_path, data)
    assert outcome.errors[0]["raw"] == "x" * 200


async def test_stray_quote_inside_an_unquoted_field_is_literal(tmp_path: Path) -> None:
    data = csv_bytes("a,b", 'x"y,2', '5" screen,3', 'ok,"q,uoted"', '"ab"cd,4')
    outcome = await parse_bytes(tmp_path, data, chunk_size=8)
    assert outcome.records == [
        {"a": 'x"y', "b": "2"},
        {"a": '5" screen', "b": "3"},
        {"a": "ok", "b": "q,uoted"},
        {"a": "abcd", "b": "4"},
    ]
    expected = list(csv.reader(io.StringIO(data.decode(), newline="")))[1:]
    assert [[str(v) for v in record.values()] for record in outcome.records] == expected


async def test_stray_quote_does_not_swallow_the_rows_after_it(tmp_path: Path) -> None:
    body = [f'{i}"inch,{i}' for i in range(200)]
    data = csv_bytes("size,n", *body, '"quoted\nfield",7')
    outcome = await parse_bytes(tmp_path, data, chunk_size=100)
    assert len(outcome.records) == 201
    assert outcome.records[-1] == {"size": "quoted\nfield", "n": 7}
    assert outcome.records[3] == {"size": '3"inch', "n": 3}


async def test_header_false_names_columns_col1_to_coln(tmp_path: Path) -> None:
    outcome = await parse_bytes(tmp_path, csv_bytes("1,x", "2,y,extra", "3,z"), header=False)
    assert outcome.records == [{"col1": 1, "col2": "x"}, {"col1": 3, "col2": "z"}]
    assert outcome.errors[0]["line"] == 2
    assert outcome.result.dialect == {"delimiter": ",", "quotechar": '"', "header": False}


@pytest.mark.parametrize("name_bytes", [10, 70_000])
async def test_header_ending_within_or_past_the_start_of_a_large_first_buffer(
    tmp_path: Path, name_bytes: int
) -> None:
    """The header is looked for in the first 64 KiB of the buffer, then in all of it: a
    quoted name over several lines that runs past that start is read whole either way."""
    long_name = "x\n" * (name_bytes // 2)
    rows = 20_000 if name_bytes < 100 else 20  # either way the first buffer passes 64 KiB
    body = "".join(f"{n},{n % 7}\n" for n in range(rows))
    data = csv_bytes('"' + long_name + '",b') + body.encode()
    outcome = await parse_bytes(tmp_path, data, max_column_name_bytes=100_000)
    assert list(outcome.columns) == [long_name, "b"]
    assert len(outcome.records) == rows
    assert outcome.records[-1] == {long_name: rows - 1, "b": (rows - 1) % 7}


async def test_blank_and_duplicate_header_names_are_made_unique(tmp_path: Path) -> None:
    outcome = await parse_bytes(tmp_path, csv_bytes("id,,name,id,name,", "1,2,3,4,5,6"))
    assert list(outcome.records[0]) == ["id", "col2", "name", "id_2", "name_2", "col6"]


async def test_blank_lines_are_skipped_anywhere(tmp_path: Path) -> None:
    data = b"\n\na,b\n\n1,2\r\n\r\n\n3,4\n\n"
    outcome = await parse_bytes(tmp_path, data)
    assert outcome.records == [{"a": 1, "b": 2}, {"a": 3, "b": 4}]


async def test_header_without_rows_succeeds_with_zero_rows(tmp_path: Path) -> None:
    outcome = await parse_bytes(tmp_path, b"id,name\n")
    assert outcome.result.rows == 0
    assert outcome.records == []
    assert outcome.result.columns == [
        {"name": "id", "type": "null", "nulls": 0},
        {"name": "name", "type": "null", "nulls": 0},
    ]


async def test_tsv_by_extension_and_by_option(tmp_path: Path) -> None:
    data = csv_bytes("a\tb", "1,5\tx y")
    by_name = await parse_bytes(tmp_path, data, filename="table.tsv")
    by_option = await parse_bytes(tmp_path, data, format="tsv")
    for outcome in (by_name, by_option):
        assert outcome.result.format == "tsv"
        assert outcome.records == [{"a": "1,5", "b": "x y"}]
        assert outcome.result.dialect is not None
        assert outcome.result.dialect["delimiter"] == "\t"


async def test_delimiter_option_wins_over_sniffing(tmp_path: Path) -> None:
    outcome = await parse_bytes(tmp_path, csv_bytes("a;b|c", "1;2|3"), delimiter="|")
    assert outcome.records == [{"a;b": "1;2", "c": 3}]


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
async def test_delimiter_is_sniffed(tmp_path: Path, delimiter: str) -> None:
    rows = [["id", "note", "price"], ["1", "a,b;c|d\te", "1.5"], ["2", "plain", "2"]]
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\n").writerows(rows)
    outcome = await parse_bytes(tmp_path, buffer.getvalue().encode())
    assert outcome.result.dialect is not None
    assert outcome.result.dialect["delimiter"] == delimiter
    assert outcome.records[0] == {"id": 1, "note": "a,b;c|d\te", "price": 1.5}


SNIFFER_TRAPS = {
    # csv.Sniffer picks " ": quoted fields followed by text look like space-separated data.
    "quote-then-text": (",", csv_bytes("a,b,c", *[f'"x" y,{i},"z"' for i in range(30)])),
    # csv.Sniffer picks ",": it finds `"a", "b"` and trusts the comma between quotes.
    "pipe-with-quoted-pairs": ("|", csv_bytes("id|text", *[f'{i}|"a", "b"' for i in range(30)])),
    # csv.Sniffer picks ";" for the same reason.
    "comma-with-quoted-pairs": (",", csv_bytes("id,text", *[f'{i},"x";"y"' for i in range(30)])),
    # csv.Sniffer picks "{": JSON in a quoted field.
    "json-in-field": (",", csv_bytes("k,v", *[f'{i},"{{""a"": 1, ""b"": 2}}"' for i in range(30)])),
}


@pytest.mark.parametrize("trap", SNIFFER_TRAPS)
async def test_sniffing_beats_python_sniffer(tmp_path: Path, trap: str) -> None:
    expected, data = SNIFFER_TRAPS[trap]
    assert csv.Sniffer().sniff(data.decode()).delimiter != expected
    outcome = await parse_bytes(tmp_path, data)
    assert outcome.result.dialect is not None
    assert outcome.result.dialect["delimiter"] == expected
    assert outcome.result.rows == 30
    assert outcome.errors == []


async def test_bom_and_semicolon_dialect(tmp_path: Path) -> None:
    data = '\ufeffname;amount\nÄpfel;1,5\n"x;y";2\n'.encode()
    outcome = await parse_bytes(tmp_path, data)
    assert outcome.result.encoding == "utf-8"
    assert outcome.result.dialect is not None
    assert outcome.result.dialect["delimiter"] == ";"
    assert outcome.records == [{"name": "Äpfel", "amount": "1,5"}, {"name": "x;y", "amount": "2"}]


@pytest.mark.parametrize("chunk_size", [None, 1 << 16])
async def test_a_five_megabyte_single_field(tmp_path: Path, chunk_size: int | None) -> None:
    big = "x" * (5 * 2**20)
    data = csv_bytes("id,blob,n", f'1,"{big}\n{big[:10]}",2', "2,small,3")
    outcome = await parse_bytes(tmp_path, data, chunk_size=chunk_size)
    assert outcome.records[0]["blob"] == big + "\n" + big[:10]
    assert outcome.records[1] == {"id": 2, "blob": "small", "n": 3}


@pytest.mark.parametrize("chunk_size", [3, 10, 33])
async def test_quoted_newlines_across_every_chunk_boundary(tmp_path: Path, chunk_size: int) -> None:
    rows = [[str(i), f"line one\nline two {i}\r\nthree, with comma", f'q"{i}"'] for i in range(40)]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows([["n", "text", "quote"], *rows])
    outcome = await parse_bytes(tmp_path, buffer.getvalue().encode(), chunk_size=chunk_size)
    assert [[str(v) for v in r.values()] for r in outcome.records] == rows
    assert outcome.errors == []


async def test_field_count_error_line_after_many_quoted_newlines(tmp_path: Path) -> None:
    rows = [f'{i},"a\nb\nc"' for i in range(100)]
    data = csv_bytes("n,text", *rows, "bad")
    outcome = await parse_bytes(tmp_path, data, chunk_size=50)
    assert outcome.errors[0]["line"] == 2 + 3 * 100
    assert outcome.result.rows == 100


async def test_too_many_errors_fails_the_job(tmp_path: Path) -> None:
    data = csv_bytes("a,b", *["only-one"] * 6, "1,2")
    assert await failure_code(tmp_path, data, max_errors=5) == "too_many_errors"
    assert not (tmp_path / "result.ndjson").exists()


async def test_errors_are_all_counted_but_stored_up_to_the_cap(tmp_path: Path) -> None:
    data = csv_bytes("a,b", *["only-one"] * 6, "1,2")
    outcome = await parse_bytes(tmp_path, data, max_errors=10, max_errors_stored=4)
    assert outcome.result.rows_failed == 6
    assert [e["line"] for e in outcome.errors] == [2, 3, 4, 5]
    assert outcome.records == [{"a": 1, "b": 2}]


async def test_single_column_file(tmp_path: Path) -> None:
    outcome = await parse_bytes(tmp_path, b'name\nada\n\n""\ngrace\n')
    assert outcome.records == [{"name": "ada"}, {"name": None}, {"name": "grace"}]


async def test_whitespace_is_kept_in_string_values(tmp_path: Path) -> None:
    outcome = await parse_bytes(tmp_path, b"a,b\n 1 ,x \n2,\t\n")
    assert outcome.records == [{"a": " 1 ", "b": "x "}, {"a": "2", "b": "\t"}]


@pytest.mark.parametrize("delimiter", ["::", '"', "\n"])
async def test_an_impossible_delimiter_is_refused(tmp_path: Path, delimiter: str) -> None:
    assert await failure_code(tmp_path, b"a,b\n1,2\n", delimiter=delimiter) == "unsupported_format"
