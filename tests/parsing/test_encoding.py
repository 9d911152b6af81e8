"""BOMs, the encoding option, and undecodable rows as `decode` errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.parsing.support import parse_bytes

TEXT = "name,city\nZoë,Köln\nJosé,São Paulo\n"
RECORDS = [{"name": "Zoë", "city": "Köln"}, {"name": "José", "city": "São Paulo"}]


@pytest.mark.parametrize(
    ("codec", "reported"),
    [
        ("utf-8-sig", "utf-8"),
        ("utf-16", "utf-16-le"),
        ("utf-16-be", "utf-16-be"),
        ("utf-32", "utf-32-le"),
    ],
)
@pytest.mark.parametrize("chunk_size", [None, 3])
async def test_a_bom_decides_the_encoding(
    tmp_path: Path, codec: str, reported: str, chunk_size: int | None
) -> None:
    data = TEXT.encode(codec)
    if codec == "utf-16-be":
        data = b"\xfe\xff" + data
    outcome = await parse_bytes(tmp_path, data, chunk_size=chunk_size, encoding="latin-1")
    assert outcome.result.encoding == reported
    assert outcome.records == RECORDS


async def test_latin1_with_the_encoding_option(tmp_path: Path) -> None:
    outcome = await parse_bytes(tmp_path, TEXT.encode("latin-1"), encoding="latin-1")
    assert outcome.result.encoding == "latin-1"
    assert outcome.records == RECORDS


async def test_cp1252_option(tmp_path: Path) -> None:
    outcome = await parse_bytes(tmp_path, "a\n€5\n".encode("cp1252"), encoding="windows-1252")
    assert outcome.result.encoding == "cp1252"
    assert outcome.records == [{"a": "€5"}]


@pytest.mark.parametrize("chunk_size", [None, 5])
async def test_undecodable_bytes_make_that_row_an_error(
    tmp_path: Path, chunk_size: int | None
) -> None:
    data = b'name,n\nok,1\nbad \xff\xfe,2\n"multi\nline \xe9",3\nfine,4\n'
    outcome = await parse_bytes(tmp_path, data, chunk_size=chunk_size)
    assert outcome.result.encoding == "utf-8"
    assert outcome.records == [{"name": "ok", "n": 1}, {"name": "fine", "n": 4}]
    assert [(e["line"], e["type"]) for e in outcome.errors] == [(3, "decode"), (4, "decode")]
    assert outcome.errors[0]["raw"] == "bad \ufffd\ufffd,2"
    assert outcome.errors[0]["message"] == "bytes that are not valid utf-8"


async def test_bytes_invalid_in_the_chosen_encoding(tmp_path: Path) -> None:
    outcome = await parse_bytes(tmp_path, b"a,b\nx,\xe9\ny,z\n", encoding="ascii")
    assert outcome.records == [{"a": "y", "b": "z"}]
    assert outcome.errors[0]["type"] == "decode"
    assert outcome.errors[0]["line"] == 2
    assert outcome.errors[0]["message"] == "bytes that are not valid ascii"


async def test_truncated_utf16_tail_is_a_decode_error(tmp_path: Path) -> None:
    data = "a,b\n1,2\n3,4".encode("utf-16") + b"\x00"
    outcome = await parse_bytes(tmp_path, data)
    assert outcome.records == [{"a": 1, "b": 2}]
    assert [(e["line"], e["type"]) for e in outcome.errors] == [(3, "decode")]


async def test_undecodable_json_line(tmp_path: Path) -> None:
    data = b'{"a": "ok"}\n{"a": "\xff"}\n'
    outcome = await parse_bytes(tmp_path, data)
    assert outcome.records == [{"a": "ok"}]
    assert outcome.errors[0]["type"] == "decode"
    assert outcome.errors[0]["line"] == 2


async def test_utf16_json_lines_with_bom(tmp_path: Path) -> None:
    data = '{"a": "ü"}\n{"a": 2}\n'.encode("utf-16")
    outcome = await parse_bytes(tmp_path, data)
    assert outcome.result.format == "jsonl"
    assert outcome.result.encoding == "utf-16-le"
    assert outcome.records == [{"a": "ü"}, {"a": 2}]
