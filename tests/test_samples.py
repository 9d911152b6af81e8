"""The check that the real-server tests run on a big job's result: it must pass on the result
a `write_csv` file becomes, however the download is cut into chunks, and fail on any record
missing, repeated, changed or out of place."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from tests.samples import assert_result_matches_csv, csv_line, csv_record, write_csv

ROWS = 30_000


def result_lines() -> list[bytes]:
    return [orjson.dumps(csv_record(n)) + b"\n" for n in range(ROWS)]


def chunked(lines: list[bytes], size: int) -> list[bytes]:
    data = b"".join(lines)
    return [data[start : start + size] for start in range(0, len(data), size)]


@pytest.mark.parametrize("size", [13, 7_000, 1 << 20])
def test_the_whole_result_passes_however_it_is_cut(size: int) -> None:
    assert_result_matches_csv(chunked(result_lines(), size), ROWS)


def _changed(lines: list[bytes], n: int, record: bytes) -> list[bytes]:
    return [*lines[:n], record, *lines[n + 1 :]]


DAMAGE: dict[str, Callable[[list[bytes]], list[bytes]]] = {
    "a record missing": lambda lines: lines[:100] + lines[101:],
    "a record repeated": lambda lines: lines[:101] + lines[100:-1],
    "two records swapped": lambda lines: [*lines[:5], lines[6], lines[5], *lines[7:]],
    "a field changed": lambda lines: _changed(
        lines, ROWS // 2, lines[ROWS // 2].replace(b"name-", b"nome-")
    ),
    "the id not first": lambda lines: _changed(lines, 7, b'{"name":"x","id":7}\n'),
    "a blank line": lambda lines: [*lines[:10], b"\n", *lines[10:]],
    "the last record cut short": lambda lines: [*lines[:-1], lines[-1][:-1]],
    "the end missing": lambda lines: lines[:-5],
}


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_a_damaged_result_fails(damage: Callable[[list[bytes]], list[bytes]]) -> None:
    with pytest.raises(AssertionError):
        assert_result_matches_csv(chunked(damage(result_lines()), 7_000), ROWS)


def test_write_csv_writes_the_rows_csv_line_describes(tmp_path: Path) -> None:
    path = tmp_path / "sample.csv"
    rows = write_csv(path, 100_000)
    lines = path.read_bytes().splitlines(keepends=True)
    assert lines[0] == b"id,name,amount,flag,day\n"
    assert lines[1:] == [csv_line(n) for n in range(rows)]
    assert csv_line(10_001) == b"10001,name-231,1.01,true,2024-01-02\n"
