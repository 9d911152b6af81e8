"""The hostile corpus (`hostile.py`) through parse_file: each file gets its outcome, and what
ends up in the job resource stays small whatever the file holds."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson
import pytest

from service.parsing import ParseFailure, ParseOptions, ParseProgress, ParseResult, parse_file
from service.parsing.contract import MAX_MESSAGE_CHARS
from tests.parsing.hostile import CASES, Case

SMALL_CHUNK = 4096


def _runs() -> list[object]:
    runs: list[object] = []
    for case in CASES:
        runs.append(pytest.param(case, None, id=case.name))
        if case.chunked:
            runs.append(pytest.param(case, SMALL_CHUNK, id=f"{case.name} (small chunks)"))
    return runs


@pytest.mark.parametrize(("case", "chunk_size"), _runs())
async def test_hostile_file(tmp_path: Path, case: Case, chunk_size: int | None) -> None:
    options = ParseOptions(**case.options)  # type: ignore[arg-type]
    source = tmp_path / "upload.bin"
    source.write_bytes(case.make())
    if case.failure is not None:
        with pytest.raises(ParseFailure) as failure:
            await _parse(source, options, chunk_size)
        assert failure.value.code == case.failure, failure.value.message
        assert len(failure.value.message) <= MAX_MESSAGE_CHARS
        return
    result, records, errors = await _parse(source, options, chunk_size)
    assert [(e["line"], e["type"]) for e in errors] == case.errors
    assert result.rows == case.rows
    assert records == case.rows
    assert result.rows_failed == len(case.errors)
    types = {str(column["name"]): str(column["type"]) for column in result.columns}
    assert {name: types.get(name) for name in case.columns} == case.columns
    if case.encoding is not None:
        assert result.encoding == case.encoding
    _assert_small(result, errors, options)


async def _parse(
    source: Path, options: ParseOptions, chunk_size: int | None
) -> tuple[ParseResult, int, list[dict[str, object]]]:
    """The result, how many records were written, and the row errors."""

    async def on_progress(progress: ParseProgress) -> None:
        pass

    result_path, errors_path = source.with_name("result.ndjson"), source.with_name("errors")
    extra = {} if chunk_size is None else {"chunk_size": chunk_size}
    result = await parse_file(source, result_path, errors_path, options, on_progress, **extra)
    with result_path.open("rb") as written:
        records = sum(1 for _ in written)
    stored = errors_path.read_bytes() if errors_path.exists() else b""
    errors = [orjson.loads(line) for line in stored.splitlines()]
    return result, records, errors


def _assert_small(
    result: ParseResult, errors: list[dict[str, object]], options: ParseOptions
) -> None:
    """Column names and their number are bounded by the limits, the rest by a few hundred
    bytes; a row error keeps the start of its record only."""
    assert len(result.columns) <= options.max_columns
    for column in result.columns:
        # A name's undecodable bytes are shown as U+FFFD (3 bytes); repeats get a suffix.
        assert len(str(column["name"]).encode()) <= 3 * options.max_column_name_bytes + 8
    rest = {k: v for k, v in dataclasses.asdict(result).items() if k != "columns"}
    assert len(orjson.dumps(rest)) < 512
    for error in errors:
        assert len(str(error["raw"])) <= 200
        assert len(str(error["message"])) <= 300
