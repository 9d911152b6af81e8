"""Running parse_file on hand-made bytes and reading back what it wrote."""

from __future__ import annotations

import asyncio
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from service.parsing import ParseFailure, ParseOptions, ParseProgress, ParseResult, parse_file


@dataclass
class Outcome:
    result: ParseResult
    records: list[dict[str, object]]
    errors: list[dict[str, object]]
    progress: list[ParseProgress] = field(default_factory=list)
    result_text: str = ""

    @property
    def columns(self) -> dict[str, str]:
        return {str(column["name"]): str(column["type"]) for column in self.result.columns}


async def parse_bytes(
    directory: Path,
    data: bytes,
    *,
    chunk_size: int | None = None,
    **options: object,
) -> Outcome:
    """Parses `data` as an upload; options are ParseOptions fields (filename defaults to none)."""
    source = directory / "upload.bin"
    source.write_bytes(data)
    result_path = directory / "result.ndjson"
    errors_path = directory / "errors.ndjson"
    seen: list[ParseProgress] = []

    async def on_progress(progress: ParseProgress) -> None:
        seen.append(progress)

    extra = {} if chunk_size is None else {"chunk_size": chunk_size}
    result = await parse_file(
        source,
        result_path,
        errors_path,
        ParseOptions(**options),  # type: ignore[arg-type]
        on_progress,
        **extra,
    )
    text = result_path.read_text(encoding="utf-8")
    # The standard library keeps integers of any size exactly; only "\n" separates records.
    records = [json.loads(line) for line in text.split("\n") if line]
    # No errors file: no row errors were found.
    stored = errors_path.read_text(encoding="utf-8") if errors_path.exists() else ""
    errors = [json.loads(line) for line in stored.split("\n") if line]
    return Outcome(result, records, errors, seen, text)


def parse_in_temp_dir(data: bytes, *, chunk_size: int | None = None, **options: object) -> Outcome:
    """`parse_bytes` in a temporary directory of its own, run to its end: for hypothesis
    tests, which run many examples in one test and so cannot use `tmp_path`."""
    with tempfile.TemporaryDirectory() as directory:
        return asyncio.run(parse_bytes(Path(directory), data, chunk_size=chunk_size, **options))


def as_text_values(outcome: Outcome) -> list[list[object]]:
    """Records with numbers as their exact text, booleans as written by the parser."""
    rows = []
    for line in outcome.result_text.split("\n"):
        if line:
            record = json.loads(line, parse_int=str, parse_float=str)
            rows.append(list(record.values()))
    return rows


async def failure_code(
    directory: Path, data: bytes, *, chunk_size: int | None = None, **options: object
) -> str:
    """The code of the ParseFailure that parsing `data` must raise."""
    with pytest.raises(ParseFailure) as failure:
        await parse_bytes(directory, data, chunk_size=chunk_size, **options)
    return failure.value.code


def csv_bytes(*lines: str, newline: str = "\n") -> bytes:
    return "".join(line + newline for line in lines).encode("utf-8")
