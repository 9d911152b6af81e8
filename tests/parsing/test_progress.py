"""Progress reports, cancellation and temporary files."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.parsing import ParseOptions, ParseProgress, parse_file
from tests.parsing.support import parse_bytes


def big_csv(rows: int) -> bytes:
    return b"id,name\n" + b"".join(b"%d,name %d\n" % (i, i) for i in range(rows))


async def test_progress_goes_through_scan_then_write_and_never_backwards(tmp_path: Path) -> None:
    outcome = await parse_bytes(tmp_path, big_csv(20_000), chunk_size=8192)
    progress = outcome.progress
    phases = [p.phase for p in progress]
    assert "scan" in phases
    assert phases[-1] == "write"
    assert phases.index("write", phases.index("scan")) > phases.index("scan")
    assert [p.percent for p in progress] == sorted(p.percent for p in progress)
    assert [p.rows_done for p in progress] == sorted(p.rows_done for p in progress)
    assert progress[-1].percent == 100.0
    assert progress[-1].rows_done == 20_000
    assert progress[-1].bytes_done == progress[-1].bytes_total


async def test_json_progress_is_one_write_phase(tmp_path: Path) -> None:
    data = b"".join(b'{"i": %d}\n' % i for i in range(5000))
    outcome = await parse_bytes(tmp_path, data, chunk_size=4096)
    assert {p.phase for p in outcome.progress} == {"write"}
    assert outcome.progress[-1].percent == 100.0


async def test_rows_failed_is_reported(tmp_path: Path) -> None:
    outcome = await parse_bytes(tmp_path, b"a,b\n1\n2\n3,4\n")
    assert outcome.progress[-1].rows_failed == 2


class Cancelled(Exception):
    pass


@pytest.mark.parametrize("phase", ["scan", "write"])
async def test_a_raising_callback_stops_the_parse_and_leaves_nothing(
    tmp_path: Path, phase: str
) -> None:
    source = tmp_path / "upload.csv"
    source.write_bytes(big_csv(20_000))
    result_path, errors_path = tmp_path / "out.ndjson", tmp_path / "errors.ndjson"

    async def cancel(progress: ParseProgress) -> None:
        if progress.phase == phase and progress.rows_done > 0:
            raise Cancelled

    with pytest.raises(Cancelled):
        await parse_file(source, result_path, errors_path, ParseOptions(), cancel, chunk_size=4096)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["upload.csv"]


@pytest.mark.parametrize("late", [False, True], ids=["one pass", "with a write pass"])
@pytest.mark.parametrize("bad_row", [False, True], ids=["no row errors", "a row error"])
async def test_a_parse_leaves_its_result_and_errors_only_if_any(
    tmp_path: Path, late: bool, bad_row: bool
) -> None:
    data = big_csv(3000) + (b"1,2,3,4,5\n" if bad_row else b"") + (b"007,late\n" if late else b"")
    outcome = await parse_bytes(tmp_path, data, chunk_size=4096)
    assert outcome.columns["id"] == ("string" if late else "integer")
    assert len(outcome.errors) == bad_row
    expected = ["errors.ndjson"] if bad_row else []
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        *expected,
        "result.ndjson",
        "upload.bin",
    ]


async def test_cancelled_in_the_write_pass_leaves_nothing(tmp_path: Path) -> None:
    source = tmp_path / "upload.csv"
    # Larger than the delimiter sniffer's sample, so the write pass reads in several steps.
    source.write_bytes(big_csv(120_000) + b"007,late\n")
    result_path, errors_path = tmp_path / "out.ndjson", tmp_path / "errors.ndjson"
    seen: list[ParseProgress] = []

    async def cancel(progress: ParseProgress) -> None:
        seen.append(progress)
        if progress.phase == "write" and progress.percent < 100.0 and progress.rows_done > 0:
            raise Cancelled

    with pytest.raises(Cancelled):
        await parse_file(source, result_path, errors_path, ParseOptions(), cancel, chunk_size=4096)
    assert seen[-1].phase == "write"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["upload.csv"]
