"""The sample CSV files the real-server tests upload, and the checks of their results: every
file `write_csv` makes has the same typed columns and rows that can be told apart by number,
so a result can be checked record by record without keeping the file in memory."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import orjson

MiB = 1024 * 1024
BLOCK_ROWS = 10_000


def _row_tail(i: int) -> bytes:
    """What follows the name in every row `n` with `n % BLOCK_ROWS == i`."""
    flag = b"true" if i % 2 else b"false"
    return b"%d.%02d,%s,2024-01-%02d\n" % (i % 1000, i % 100, flag, 1 + i % 28)


_ROW_TAILS = [_row_tail(i) for i in range(BLOCK_ROWS)]


def csv_line(n: int) -> bytes:
    """Row `n` (0-based, after the header) of every file `write_csv` makes."""
    return b"%d,name-%d,%s" % (n, n % 977, _ROW_TAILS[n % BLOCK_ROWS])


def write_csv(path: Path, target_bytes: int) -> int:
    """A CSV of about `target_bytes` with typed columns; returns its row count."""
    header = b"id,name,amount,flag,day\n"
    rows = 0
    with open(path, "wb") as out:
        out.write(header)
        size = len(header)
        while size < target_bytes:
            block = b"".join(map(csv_line, range(rows, rows + BLOCK_ROWS)))
            out.write(block)
            size += len(block)
            rows += BLOCK_ROWS
    return rows


def csv_record(n: int) -> dict[str, Any]:
    """The result record row `n` of a `write_csv` file must become, typed per its column."""
    id_, name, amount, flag, day = csv_line(n).decode().rstrip("\n").split(",")
    return {
        "id": int(id_),
        "name": name,
        "amount": float(amount),
        "flag": flag == "true",
        "day": day,
    }


def assert_succeeded_with_csv(client: httpx.Client, job_id: str, rows: int) -> None:
    """The job succeeded and its result is exactly the `rows` rows `write_csv` wrote."""
    job = client.get(f"/jobs/{job_id}").json()
    assert job["status"] == "succeeded", job
    assert job["result"]["rows"] == rows
    with client.stream("GET", f"/jobs/{job_id}/result") as result:
        assert result.status_code == 200
        assert_result_matches_csv(result.iter_bytes(4 * MiB), rows)


# Every record of such a result starts with its id (the columns keep the file's order); a
# search for a line feed followed by it is several times faster than one for a line start.
_RECORD_ID = re.compile(rb'\n\{"id":(\d+),')


def assert_result_matches_csv(chunks: Iterable[bytes], rows: int) -> None:
    """The NDJSON result of a `write_csv` file, streamed: one record per line with ids
    0..rows-1 in order, and the first, a middle and the last record equal to what
    `write_csv` wrote."""
    spot_checks = {0, rows // 2, rows - 1}
    done = 0
    tail = b""
    for chunk in chunks:
        whole, newline, tail = (tail + chunk).rpartition(b"\n")
        if not newline:
            continue
        lines = whole.count(b"\n") + 1
        ids = list(map(int, _RECORD_ID.findall(b"\n" + whole)))
        assert len(ids) == lines, f"a line among records {done}..{done + lines} has no id first"
        if ids != list(range(done, done + lines)):
            wrong = next(n for n, got in enumerate(ids, done) if got != n)
            raise AssertionError(f"record {wrong} has id {ids[wrong - done]}")
        due = [n for n in spot_checks if done <= n < done + lines]
        if due:
            records = whole.split(b"\n")
            for n in due:
                assert orjson.loads(records[n - done]) == csv_record(n), f"record {n}"
        done += lines
    assert tail == b"", "the result does not end with a newline"
    assert done == rows, f"{done} records, expected {rows}"
