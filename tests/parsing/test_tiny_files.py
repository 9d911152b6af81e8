"""A file that fits in one read is read whole in one thread call, and parses to the same bytes,
errors, summary and progress as when it is read block by block."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import gzip
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from service.parsing import ParseFailure, ParseOptions, ParseProgress, parse_file
from service.parsing import source as source_module
from service.parsing.threads import ON_THE_LOOP_BYTES
from tests.parsing.support import csv_bytes

TYPED_CSV = csv_bytes(
    "id,name,amount,flag,day,created_at,note",
    '1,Ada,41086.03,true,2024-02-17,2024-02-17T03:43:47Z,"with, comma"',
    '2,Alan,-0.5,false,2023-01-01,2023-01-01T00:00:00Z,"say ""hi"""',
    "3,Grace,7,true,2022-12-31,2022-12-31T23:59:59Z,",
)

SAMPLES: dict[str, tuple[bytes, dict[str, Any]]] = {
    "typed csv": (TYPED_CSV, {}),
    "three rows": (csv_bytes("a,b,c", "1,x,2.5", "2,y,3.5", "3,z,4.5"), {}),
    "csv with row errors": (
        csv_bytes("a,b", "1,2", "3", "4,5,6", "\xff,7", "8,9") + b'"open,1\n',
        {},
    ),
    "crlf without a last newline": (b"a;b\r\n1;x\r\n2;y", {}),
    "tsv": (b"a\tb\n1\t2\n", {"format": "tsv"}),
    "no header": (b"1,2\n3,4\n", {"header": False}),
    "gzip csv": (gzip.compress(TYPED_CSV), {}),
    "utf-16 csv": (b"\xff\xfe" + "a,b\n1,\u00e9\n".encode("utf-16-le"), {}),
    "jsonl": (b'{"a": 1, "b": "x"}\n{"a": 2, "b": "y"}\n', {}),
    "jsonl with row errors": (b'{"a": 1, "b": "x"}\n{"a": 2, "b": null}\nnot json\n{"a": 3}', {}),
    "json array": (b'[{"a": 1}, {"a": 2.5}, 3]', {"format": "json"}),
    "too many errors": (csv_bytes("a,b", "1", "2", "3"), {"max_errors": 1}),
    "whitespace only": (b" \n\n", {}),
    "header only": (b"a,b\n", {}),
}


@dataclasses.dataclass
class Outcome:
    result: Any
    output: bytes | None
    errors: bytes | None
    progress: list[ParseProgress]


async def _parse(directory: Path, data: bytes, options: dict[str, Any]) -> Outcome:
    directory.mkdir()
    source = directory / "upload.bin"
    source.write_bytes(data)
    result_path, errors_path = directory / "result.ndjson", directory / "errors.ndjson"
    seen: list[ParseProgress] = []

    async def on_progress(progress: ParseProgress) -> None:
        seen.append(progress)

    try:
        result: Any = await parse_file(
            source, result_path, errors_path, ParseOptions(**options), on_progress
        )
    except ParseFailure as failure:
        result = (failure.code, failure.message)
    return Outcome(
        result,
        result_path.read_bytes() if result_path.exists() else None,
        errors_path.read_bytes() if errors_path.exists() else None,
        seen,
    )


def _count_whole_reads(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Records, for each file the engine tried to read whole, whether it was."""
    calls: list[bool] = []
    read_whole = source_module._read_whole

    def counting(path: Path, size: int) -> bytes | None:
        data = read_whole(path, size)
        calls.append(data is not None)
        return data

    monkeypatch.setattr(source_module, "_read_whole", counting)
    return calls


@pytest.mark.parametrize("name", sorted(SAMPLES))
async def test_read_whole_and_block_by_block_give_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    data, options = SAMPLES[name]
    whole_reads = _count_whole_reads(monkeypatch)
    whole = await _parse(tmp_path / "whole", data, options)
    assert whole_reads == [True], "the file was not read in one call"

    # The same file read as before: opened with aiofiles, read in blocks until the end.
    monkeypatch.setattr(source_module, "_read_whole", lambda path, size: None)
    blocks = await _parse(tmp_path / "blocks", data, options)
    assert whole == blocks


def _counting_thread_calls(monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    calls = 0
    submit = concurrent.futures.ThreadPoolExecutor.submit

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return submit(self, *args, **kwargs)

    monkeypatch.setattr(concurrent.futures.ThreadPoolExecutor, "submit", counting)
    return lambda: calls


@pytest.mark.parametrize("name", ["typed csv", "jsonl"])
async def test_a_tiny_parse_hands_no_work_to_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Each hand-off wakes the event loop, and a tiny job's time is mostly such fixed costs
    (eight of them once, then one to read the file): a file of a few KB is read, parsed and
    written on the loop."""
    data, options = SAMPLES[name]
    assert len(data) <= ON_THE_LOOP_BYTES
    await _parse(tmp_path / "warm", data, options)  # thread pools made once per process
    calls = _counting_thread_calls(monkeypatch)
    await _parse(tmp_path / "counted", data, options)
    assert calls() == 0


def test_a_file_that_grew_past_one_read_is_read_in_blocks(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    assert source_module._read_whole(path, 11) == b"x" * 10
    assert source_module._read_whole(path, 10) is None


class Cancelled(Exception):
    pass


@pytest.mark.parametrize("name", ["csv with row errors", "jsonl with row errors"])
async def test_a_tiny_parse_cancelled_leaves_nothing(tmp_path: Path, name: str) -> None:
    data, options = SAMPLES[name]
    source = tmp_path / "upload.bin"
    source.write_bytes(data)
    result_path, errors_path = tmp_path / "result.ndjson", tmp_path / "errors.ndjson"

    async def cancel(progress: ParseProgress) -> None:
        raise Cancelled

    with pytest.raises(Cancelled):
        await parse_file(source, result_path, errors_path, ParseOptions(**options), cancel)
    assert not result_path.exists()
    assert not errors_path.exists()
