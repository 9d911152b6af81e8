"""The sample CSV files the real-server tests upload, and the checks of their results: every
file `write_csv` makes has the same typed columns and rows that can be told apart by number,
so a result can be checked record by record without keeping the file in memory."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import orjson

MiB = 1024 * 1024
BLOCK_ROWS = 10_000


def csv_line(n: int) -> bytes:
    """Row `n` (0-based, after the header) of every file `write_csv` makes."""
    i = n % BLOCK_ROWS
    flag = b"true" if i % 2 else b"false"
    return b"%d,name-%d,%d.%02d,%s,2024-01-%02d\n" % (
        n,
        n % 977,
        i % 1000,
        i % 100,
        flag,
        1 + i % 28,
    )


def write_csv(path: Path, target_bytes: int) -> int:
    """A CSV of about `target_bytes` with typed columns; returns its row count."""
    header = b"id,name,amount,flag,day\n"
    rows = 0
    with open(path, "wb") as out:
        out.write(header)
        size = len(header)
        while size < target_bytes:
            block = b"".join([csv_line(rows + i) for i in range(BLOCK_ROWS)])
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


def assert_result_matches_csv(chunks: Iterable[bytes], rows: int) -> None:
    """The NDJSON result of a `write_csv` file, streamed: ids 0..rows-1 in order, and the
    first, a middle and the last record equal to what `write_csv` wrote."""
    spot_checks = {0, rows // 2, rows - 1}
    done = 0
    tail = b""
    for chunk in chunks:
        lines = (tail + chunk).split(b"\n")
        tail = lines.pop()
        records = [orjson.loads(line) for line in lines]
        ids = [record["id"] for record in records]
        if ids != list(range(done, done + len(ids))):
            wrong = next(n for n, got in enumerate(ids, done) if got != n)
            raise AssertionError(f"record {wrong} has id {ids[wrong - done]}")
        for n in spot_checks:
            if done <= n < done + len(records):
                assert records[n - done] == csv_record(n), f"record {n}"
        done += len(records)
    assert tail == b"", "the result does not end with a newline"
    assert done == rows, f"{done} records, expected {rows}"
