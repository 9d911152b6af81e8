"""Format detection order, empty and binary input, and gzip."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.parsing import detect
from tests.parsing.support import failure_code, parse_bytes

CSV = b"a,b\n1,2\n"
JSONL = b'{"a": 1}\n'
ARRAY = b'[{"a": 1}]'


@pytest.mark.parametrize(
    ("data", "options", "expected"),
    [
        (JSONL, {"format": "csv", "media_type": "application/x-ndjson"}, "csv"),
        (CSV, {"media_type": "text/tab-separated-values", "filename": "x.csv"}, "tsv"),
        (CSV, {"media_type": "text/csv; charset=utf-8", "filename": "x.jsonl"}, "csv"),
        (CSV, {"media_type": "application/octet-stream", "filename": "x.TSV"}, "tsv"),
        (JSONL, {"filename": "data.ndjson.gz"}, "jsonl"),
        (CSV, {"filename": "notes.txt"}, "csv"),
        (JSONL, {}, "jsonl"),
        (b"  \n" + ARRAY, {}, "json"),
        (CSV, {}, "csv"),
        # A JSON media type or extension names the family; the first character picks the member.
        (JSONL, {"media_type": "application/json"}, "jsonl"),
        (ARRAY, {"filename": "x.jsonl"}, "json"),
    ],
)
async def test_detection_order(
    tmp_path: Path, data: bytes, options: dict[str, Any], expected: str
) -> None:
    outcome = await parse_bytes(tmp_path, data, **options)
    assert outcome.result.format == expected


@pytest.mark.parametrize("data", [b"", b"   \n\t\r\n  ", b"\xef\xbb\xbf", "  \n".encode("utf-16")])
async def test_empty_file(tmp_path: Path, data: bytes) -> None:
    assert await failure_code(tmp_path, data) == "empty_file"


async def test_gzip_of_nothing_is_an_empty_file(tmp_path: Path) -> None:
    assert await failure_code(tmp_path, gzip.compress(b"")) == "empty_file"


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00",
        bytes(range(256)) * 4,
        "a,b\n1,2\n".encode("utf-16-le"),  # UTF-16 without a BOM or an encoding option
    ],
)
async def test_binary_input_is_unsupported(tmp_path: Path, data: bytes) -> None:
    assert await failure_code(tmp_path, data) == "unsupported_format"


async def test_unknown_encoding_is_refused(tmp_path: Path) -> None:
    assert await failure_code(tmp_path, CSV, encoding="no-such-codec") == "unsupported_format"


@pytest.mark.parametrize("chunk_size", [None, 10])
async def test_gzip_is_detected_by_magic_bytes(tmp_path: Path, chunk_size: int | None) -> None:
    data = gzip.compress(b"a,b\n1,2\n3,4\n")
    outcome = await parse_bytes(tmp_path, data, filename="upload.csv", chunk_size=chunk_size)
    assert outcome.records == [{"a": 1, "b": 2}, {"a": 3, "b": 4}]


async def test_concatenated_gzip_members(tmp_path: Path) -> None:
    data = gzip.compress(b"a,b\n1,2\n") + gzip.compress(b"3,4\n")
    outcome = await parse_bytes(tmp_path, data, chunk_size=8)
    assert outcome.records == [{"a": 1, "b": 2}, {"a": 3, "b": 4}]


async def test_gzip_bomb_is_stopped(tmp_path: Path) -> None:
    bomb = gzip.compress(b"a,b\n" + b"1,2\n" * 2_000_000)
    assert (
        await failure_code(tmp_path, bomb, max_decompressed_bytes=1_000_000)
        == "decompressed_too_large"
    )
    assert not (tmp_path / "result.ndjson").exists()


async def test_truncated_gzip_is_an_io_error(tmp_path: Path) -> None:
    data = gzip.compress(b"a,b\n" + b"1,2\n" * 1000)
    assert await failure_code(tmp_path, data[: len(data) // 2]) == "io_error"


async def test_corrupt_gzip_is_an_io_error(tmp_path: Path) -> None:
    data = bytearray(gzip.compress(b"a,b\n" + b"1,2\n" * 1000))
    data[20:30] = b"\xff" * 10
    assert await failure_code(tmp_path, bytes(data)) == "io_error"


async def test_progress_counts_compressed_bytes(tmp_path: Path) -> None:
    body = b"a,b\n" + b"".join(b"%d,%d\n" % (i, i * 7) for i in range(50_000))
    data = gzip.compress(body)
    outcome = await parse_bytes(tmp_path, data, chunk_size=4096)
    assert outcome.result.rows == 50_000
    assert all(p.bytes_total == len(data) for p in outcome.progress)
    assert all(p.bytes_done <= len(data) for p in outcome.progress)
    assert zlib.crc32(outcome.result_text.encode()) != 0


_SNIFF_PIECES = ["a", "b", ",", ";", "|", "\t", '"', "\n", "\r", "\r\n", " ", "é"]


@given(
    st.lists(st.sampled_from(_SNIFF_PIECES), max_size=300).map(lambda pieces: "".join(pieces)),
    st.integers(min_value=0, max_value=1),
    st.integers(min_value=1, max_value=120),
    st.booleans(),
)
@settings(max_examples=500, deadline=None)
def test_sniffing_a_prefix_chooses_as_the_whole_sample(
    text: str, drop: int, prefix: int, at_eof: bool
) -> None:
    """The sniffer reads the start of the sample first; whatever it decides from that start
    must be what the whole sample decides (few records and short starts here, so both the
    early answer and the fallback are exercised; `drop` may cut the last character short)."""
    encoded = text.encode("utf-8")
    sample = encoded[: len(encoded) - drop]
    with (
        mock.patch.object(detect, "_SNIFF_FIRST_BYTES", prefix),
        mock.patch.object(detect, "_SNIFF_RECORDS", 4),
        mock.patch.object(detect._field_counts, "__defaults__", (4,)),
    ):
        whole = detect._sniff(sample, at_eof=at_eof, prefix=False) or ","
        assert detect.sniff_delimiter(sample, at_eof=at_eof) == whole


def test_binary_check_counts_control_bytes() -> None:
    text = b"a,b\n" * 10
    assert not detect.looks_binary(text + b"\x01" * 10)
    assert detect.looks_binary(text + b"\x01\x02\x1f" * 10)
    assert not detect.looks_binary(text + b"\t\x0b\x0c\x1b\r" * 10)
